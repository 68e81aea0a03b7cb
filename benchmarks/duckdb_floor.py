"""The floor: the time bare DuckDB needs to load the same delivered files into tables.

    python benchmarks/duckdb_floor.py DELIVERIES_DIR [--db FILE] [--json OUT]

Every file of every center under DELIVERIES_DIR (an inbox root: <center>/<file>) is
loaded into its own table of a new on-disk DuckDB database - CSV with
``read_csv(..., all_varchar = true)``, every sheet of a workbook with the excel
extension's ``read_xlsx(..., sheet = ..., all_varchar = true)`` (text, as the pipeline
reads them; typed sniffing fails on the workbooks' mixed date/text cells). DuckDB's
``read_csv`` has no GB18030 decoder, so those files are first transcoded to UTF-8 in
Python (1 MiB blocks); that time is part of the floor and also reported on its own.

The excel extension is loaded from the pip package ``duckdb_extension_excel`` by path
(no network). Prints one JSON object: seconds (total, transcode, csv, xlsx), rows, files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import yaml

ROOT = Path(__file__).resolve().parents[1]


def excel_extension() -> Path:
    import duckdb_extension_excel

    return Path(duckdb_extension_excel.__file__).parent / "extensions" / f"v{duckdb.__version__}" / "excel.duckdb_extension"


def center_encodings() -> dict[str, str]:
    out = {}
    for f in sorted((ROOT / "centers").glob("*.yaml")):
        prof = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        if "id" not in prof:
            continue
        out[prof["id"]] = (prof.get("encoding") or "utf-8-sig").lower()
    return out


def transcode(src: Path, dst: Path, encoding: str) -> None:
    with open(src, encoding=encoding, newline="") as i, open(dst, "w", encoding="utf-8", newline="") as o:
        while True:
            block = i.read(1 << 20)
            if not block:
                break
            o.write(block)


def _q(s: str) -> str:
    return "'" + str(s).replace("'", "''") + "'"


def floor(deliveries: Path, db: Path, tmp: Path) -> dict:
    encs = center_encodings()
    if db.exists():
        db.unlink()
    t0 = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(f"LOAD {_q(excel_extension())}")
    load_s = time.perf_counter() - t0
    res = {"seconds": 0.0, "transcode_seconds": 0.0, "csv_seconds": 0.0, "xlsx_seconds": 0.0,
           "extension_load_seconds": round(load_s, 3), "rows": 0, "files": 0, "tables": 0, "per_file": []}
    k = 0
    for center_dir in sorted(p for p in deliveries.iterdir() if p.is_dir()):
        enc = encs.get(center_dir.name, "utf-8")
        for f in sorted(center_dir.iterdir()):
            if f.suffix.lower() == ".csv":
                res["files"] += 1
                src = f
                tt = 0.0
                if enc not in ("utf-8", "utf-8-sig", "utf8"):
                    t = time.perf_counter()
                    src = tmp / f"{center_dir.name}_{f.stem}.utf8.csv"
                    transcode(f, src, enc)
                    tt = time.perf_counter() - t
                    res["transcode_seconds"] += tt
                t = time.perf_counter()
                k += 1
                con.execute(f"CREATE TABLE t{k} AS SELECT * FROM read_csv({_q(src)}, header = true, all_varchar = true)")
                n = con.execute(f"SELECT count(*) FROM t{k}").fetchone()[0]
                dt = time.perf_counter() - t
                res["csv_seconds"] += dt
                res["rows"] += n
                res["tables"] += 1
                res["per_file"].append({"center": center_dir.name, "file": f.name, "rows": n, "seconds": round(dt + tt, 3)})
                if src != f:
                    src.unlink()
            elif f.suffix.lower() == ".xlsx":
                res["files"] += 1
                import python_calamine as pc

                sheets = pc.CalamineWorkbook.from_path(str(f)).sheet_names
                for s in sheets:
                    t = time.perf_counter()
                    k += 1
                    con.execute(
                        f"CREATE TABLE t{k} AS SELECT * FROM read_xlsx({_q(f)}, sheet = {_q(s)}, header = true, all_varchar = true)"
                    )
                    n = con.execute(f"SELECT count(*) FROM t{k}").fetchone()[0]
                    dt = time.perf_counter() - t
                    res["xlsx_seconds"] += dt
                    res["rows"] += n
                    res["tables"] += 1
                    res["per_file"].append({"center": center_dir.name, "file": f"{f.name}:{s}", "rows": n, "seconds": round(dt, 3)})
    con.execute("CHECKPOINT")
    con.close()
    res["seconds"] = round(time.perf_counter() - t0, 3)
    for k2 in ("transcode_seconds", "csv_seconds", "xlsx_seconds"):
        res[k2] = round(res[k2], 3)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("deliveries", help="inbox root with one folder per center")
    ap.add_argument("--db", default=None, help="DuckDB file to create (default: a temporary file, removed)")
    ap.add_argument("--json", default=None, help="also write the result here")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ibd_floor_") as td:
        tmp = Path(td)
        db = Path(a.db) if a.db else tmp / "floor.duckdb"
        res = floor(Path(a.deliveries), db, tmp)
        if not a.db:
            for p in (db, Path(str(db) + ".wal")):
                if p.exists():
                    os.unlink(p)
    text = json.dumps(res)
    if a.json:
        Path(a.json).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
