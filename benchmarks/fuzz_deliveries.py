"""Fuzz of bad deliveries (issue 18 acceptance): seeded mutations of the synthetic
deliveries of all three centers (CSV utf-8, CSV gb18030, xlsx) go through intake and
loading, each in a copy of one baseline data directory; counted are crashes, accepted
records lost (a record of the baseline missing afterwards) and identifiers published
(the seeded name / phone / record number found in the analysts' surface: the warehouse's
analytics schema without quarantine.value, the outbox, the reports and every text the
load returns).

Not part of the test suite (minutes of CPU). Only center loading runs (no Dagster, no
statistics): ``drain_inbox`` + ``load_center`` as the center job calls them.

    PYTHONPATH=$PWD nice python benchmarks/fuzz_deliveries.py --cases 1000 --seed 1 --work /tmp/fuzz
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import shutil
import time
import traceback
from pathlib import Path

# seeded identifiers in the synthetic generator's style (ibd_pipeline.synth.names): a
# Chinese name, a mobile number and a record number of each center's local style
NAME, PHONE = "欧阳娜娜", "13812345678"
MRNS = {"zcmu1": "ZY03102594", "zju2": "0031025947", "hzfph": "2019310259"}
SECRETS = (NAME, PHONE, *MRNS.values())
NEW_DATE = "20250402"  # mutated files are dated after the baseline delivery (they may replace it)


def _mrn(rng: random.Random) -> str:
    return rng.choice(list(MRNS.values()))


MUTATIONS = (
    "truncate", "bad_code", "identifier_in_field", "identifier_in_header", "identifier_in_file_name",
    "date_2099", "bad_date", "encoding", "empty_cells", "huge_cell", "header_only", "drop_rows",
    "duplicate_rows", "garbage_bytes",
)


def _baseline(work: Path, patients: int):
    from ibd_pipeline.config import data_paths, ensure_pseudonym_key, load_centers, load_crf, load_settings, read_pseudonym_key
    from ibd_pipeline.ingest import delivery_name_check
    from ibd_pipeline.intake import drain_inbox
    from ibd_pipeline.loading import load_center
    from ibd_pipeline.synth import generate_deliveries
    from ibd_pipeline.store import warehouse as wh

    base = work / "baseline"
    if base.exists():
        shutil.rmtree(base)
    paths = data_paths(base).ensure()
    ensure_pseudonym_key(paths)
    generate_deliveries(base / "inbox", n_patients=patients, truth_dir=work / "truth")
    shutil.copytree(base / "inbox", work / "source", dirs_exist_ok=True)
    profiles, crf, key, settings = load_centers(), load_crf(), read_pseudonym_key(paths), load_settings()
    for c, p in profiles.items():
        drain_inbox(paths, p, 0.0, delivery_name_check(crf), max_wait=5)
        with wh.connect(paths.warehouse) as con:
            load_center(con, paths, p, crf, key, settings)
    return base


def _records(db: Path, center: str) -> set:
    import duckdb

    from ibd_pipeline.config import load_crf
    from ibd_pipeline.ingest.schemas import key_columns

    crf = load_crf()
    out = set()
    con = duckdb.connect(str(db), read_only=True)
    try:
        for t in crf.data_tables:
            cols = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in ["round", *key_columns(t, crf)])
            for r in con.execute(f'SELECT {cols} FROM staging."{t}" WHERE center = ?', [center]).fetchall():
                out.add((t, *r))
    finally:
        con.close()
    return out


def _published_texts(root: Path, extra: list[str]) -> list[str]:
    import duckdb

    from ibd_pipeline.defs.publication import SNAPSHOT_DROP_COLUMNS

    texts = [("load output", t) for t in extra]
    for d in ("outbox", "reports"):
        for f in (root / d).rglob("*") if (root / d).exists() else []:
            if f.is_file():
                texts.append((f"{d} file name", f.name))
                texts.append((f"{d}/{f.name}", f.read_bytes().decode("utf-8", "replace")))
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'analytics'"
        ).fetchall():
            df = con.execute(f'SELECT * FROM analytics."{t}"').df()
            # what the snapshot leaves out (raw quarantined values, withdrawal free text)
            df = df.drop(columns=SNAPSHOT_DROP_COLUMNS.get(f"analytics.{t}", []))
            texts.append((f"analytics.{t} columns", " ".join(map(str, df.columns))))
            for col in df.columns:
                texts.append((f"analytics.{t}.{col}", "\n".join(df[col].astype(str))))
    finally:
        con.close()
    return texts


# ------------------------------------------------------------------ mutations
def _read_csv(path: Path, enc: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode(enc).lstrip("\ufeff"))))


def _write_csv(rows: list[list[str]], enc: str) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode(enc, "replace")


def _mutate_rows(rows: list[list], kind: str, rng: random.Random) -> list[list]:
    header, data = rows[0], [list(r) for r in rows[1:]]
    if not data:
        return rows
    r = rng.randrange(len(data))
    c = rng.randrange(len(header))
    if kind == "bad_code":
        data[r][c] = rng.choice(["XX", "??", "Crohn-ish", "-1", "999999"])
    elif kind == "identifier_in_field":
        data[r][c] = rng.choice([NAME, PHONE, _mrn(rng), f"{NAME} {PHONE}"])
    elif kind == "identifier_in_header":
        header = list(header)
        header[c] = rng.choice([NAME, PHONE, _mrn(rng), f"{header[c]}{NAME}"])
    elif kind == "date_2099":
        for j, v in enumerate(data[r]):
            if isinstance(v, str) and len(v) >= 8 and v[:2] in ("19", "20") and not v.isdigit():
                data[r][j] = "2099" + v[4:]
            elif hasattr(v, "year"):
                data[r][j] = v.replace(year=2099)
    elif kind == "bad_date":
        data[r][c] = rng.choice(["2024-02-30", "31/31/2024", "yesterday", "0000-00-00"])
    elif kind == "empty_cells":
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))][rng.randrange(len(header))] = ""
    elif kind == "huge_cell":
        data[r][c] = (NAME if rng.random() < 0.5 else "x") * rng.choice([1000, 32000])
    elif kind == "header_only":
        data = []
    elif kind == "drop_rows":
        data = [d for d in data if rng.random() > 0.5]
    elif kind == "duplicate_rows":
        data = data + [list(data[r])] * rng.randint(1, 5)
    return [header] + data


def _mutate(src: Path, fmt: str, enc: str, kind: str, rng: random.Random) -> tuple[str, bytes]:
    """(new file name, bytes) of one mutated delivery file."""
    name = src.name.replace("20250401", NEW_DATE)
    raw = src.read_bytes()
    if kind == "identifier_in_file_name":
        stem, dot, ext = name.rpartition(".")
        name = rng.choice([f"{stem}_{NAME}.{ext}", f"{stem}_{PHONE}.{ext}", f"{NAME}{PHONE}_{name}", f"{_mrn(rng)}.{ext}"])
        return name, raw
    if kind == "truncate":
        return name, raw[: rng.randrange(1, max(2, len(raw)))]
    if kind == "garbage_bytes":
        b = bytearray(raw)
        for _ in range(rng.randint(1, 50)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return name, bytes(b)
    if fmt == "csv":
        if kind == "encoding":
            other = rng.choice(["utf-16", "latin-1", "gb18030", "utf-8"])
            text = raw.decode(enc, "replace").replace("\ufeff", "")
            return name, text.encode(other, "replace")
        rows = _mutate_rows(_read_csv(src, enc), kind, rng)
        return name, _write_csv(rows, enc)
    return name, _mutate_xlsx(src, kind, rng)


def _mutate_xlsx(src: Path, kind: str, rng: random.Random) -> bytes:
    import python_calamine as pc
    import xlsxwriter

    wb = pc.CalamineWorkbook.from_path(str(src))
    sheets = {n: wb.get_sheet_by_name(n).to_python() for n in wb.sheet_names}
    target = rng.choice([n for n, rows in sheets.items() if len(rows) > 1] or list(sheets))
    if kind == "encoding":  # an xlsx has no encoding: mojibake in text cells instead
        kind = "identifier_in_field"
    sheets[target] = _mutate_rows(sheets[target], kind, rng)
    buf = io.BytesIO()
    out = xlsxwriter.Workbook(buf, {"in_memory": True})
    datefmt = out.add_format({"num_format": "yyyy-mm-dd"})
    for n, rows in sheets.items():
        ws = out.add_worksheet(n)
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                if hasattr(v, "year"):
                    import datetime as dt

                    if not isinstance(v, dt.datetime):
                        v = dt.datetime(v.year, v.month, v.day)
                    ws.write_datetime(i, j, v, datefmt)
                elif v != "" and v is not None:
                    ws.write(i, j, v)
    out.close()
    return buf.getvalue()


def _keep(case_dir: Path, dst: Path) -> None:
    """Keep a failing case's data directory for inspection (the first few only)."""
    if len(list(dst.parent.glob("failed-*"))) < 5:
        shutil.copytree(case_dir, dst, dirs_exist_ok=True)


def run(cases: int, seed: int, work: Path, progress: Path | None = None, patients: int = 122) -> dict:
    from ibd_pipeline.config import data_paths, load_centers, load_crf, load_settings, read_pseudonym_key
    from ibd_pipeline.ingest import delivery_name_check
    from ibd_pipeline.intake import drain_inbox
    from ibd_pipeline.loading import load_center
    from ibd_pipeline.store import warehouse as wh

    t0 = time.time()
    work.mkdir(parents=True, exist_ok=True)
    base = _baseline(work, patients)
    profiles, crf, settings = load_centers(), load_crf(), load_settings()
    before = {c: _records(base / "warehouse.duckdb", c) for c in profiles}
    files = {c: sorted((work / "source" / c).iterdir()) for c in profiles}
    rng = random.Random(seed)
    stats = {"cases": 0, "crashes": 0, "records_lost": 0, "cases_losing_records": 0, "identifiers_published": 0,
             "by_format": {}, "by_mutation": {}, "failures": []}
    case_dir = work / "case"
    for i in range(cases):
        c = list(profiles)[i % len(profiles)]
        p = profiles[c]
        src = rng.choice(files[c])
        kind = rng.choice(MUTATIONS)
        fmt, enc = p.format, (p.encoding or "utf-8")
        label = f"{c}/{p.format}/{enc}"
        stats["by_format"][label] = stats["by_format"].get(label, 0) + 1
        stats["by_mutation"][kind] = stats["by_mutation"].get(kind, 0) + 1
        if progress is not None and i % 25 == 0:
            progress.write_text(json.dumps({**stats, "seconds": round(time.time() - t0, 1)}, ensure_ascii=False, indent=1))
        if case_dir.exists():
            shutil.rmtree(case_dir)
        shutil.copytree(base, case_dir, ignore=shutil.ignore_patterns("dagster_home", "*.wal"))
        paths = data_paths(case_dir)
        texts: list[str] = []
        try:
            name, data = _mutate(src, fmt, enc, kind, rng)
            (paths.inbox(c) / name).write_bytes(data)
            for o in drain_inbox(paths, p, 0.0, delivery_name_check(crf), max_wait=2):  # the line `ibd-pipeline run` prints
                texts.append(f"intake {o.center}/{o.file_name}: {o.status}{' - ' + o.message if o.message else ''}")
            with wh.connect(paths.warehouse) as con:
                rep = load_center(con, paths, p, crf, read_pseudonym_key(paths), settings)
            texts += rep.errors + rep.held + rep.older + rep.new_deliveries
        except Exception:  # noqa: BLE001 - a crash is what we count
            stats["crashes"] += 1
            stats["failures"].append({"case": i, "center": c, "file": src.name, "mutation": kind,
                                      "crash": traceback.format_exc(limit=3)[-600:]})
            continue
        finally:
            stats["cases"] += 1
        lost = before[c] - _records(paths.warehouse, c)
        if lost:
            stats["records_lost"] += len(lost)
            stats["cases_losing_records"] += 1
            stats["failures"].append({"case": i, "center": c, "file": src.name, "mutation": kind, "lost": len(lost)})
            _keep(case_dir, work / f"failed-{i}")
        pub = _published_texts(case_dir, texts)
        where = sorted({w for w, t in pub for s in SECRETS if s in t})
        if where:
            stats["identifiers_published"] += 1
            stats["failures"].append({"case": i, "center": c, "file": src.name, "mutation": kind, "published_in": where})
            _keep(case_dir, work / f"failed-{i}")
    stats["seconds"] = round(time.time() - t0, 1)
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/fuzz-deliveries"))
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--patients", type=int, default=122, help="patients of the baseline study (fewer: faster cases)")
    a = ap.parse_args()
    stats = run(a.cases, a.seed, a.work, a.json, a.patients)
    text = json.dumps(stats, indent=1, ensure_ascii=False)
    if a.json:
        a.json.write_text(text, encoding="utf-8")
    print(json.dumps({k: v for k, v in stats.items() if k != "failures"}, indent=1, ensure_ascii=False))
    for f in stats["failures"][:20]:
        print(json.dumps(f, ensure_ascii=False))


if __name__ == "__main__":
    main()
