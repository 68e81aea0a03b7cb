"""Throughput of extraction on a synthetic registry-scale labs delivery.

    python benchmarks/ingest_throughput.py [--rows 1000000] [--center zcmu1|hzfph|zju2] [--dir /tmp/x]

Writes a labs file in the center's real format (CSV in its encoding, or a workbook),
extracts it and prints rows/second and the peak resident memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from ibd_pipeline.config import load_centers, load_crf
from ibd_pipeline.ingest import extract_file, iter_extract


def make_labs(path: Path, center: str, rows: int, seed: int = 1, bad: float = 0.0) -> Path:
    rng = np.random.default_rng(seed)
    prof = load_centers()[center]
    crf = load_crf()
    fields = ["mrn", "abstractor_id", "sample_date", "test", "value", "unit"]
    header = [prof.header_for("labs", f) for f in fields]
    tests = list(crf.lab_tests)
    rev = {v: k for k, v in prof.code_map("test").items()}
    n_pat = max(rows // 200, 1)
    i = np.arange(rows)
    pat = i % n_pat  # (patient, test, day) is unique per row
    test_i = (i // n_pat) % len(tests)
    day = i // (n_pat * len(tests))
    start = np.datetime64("2020-01-01")
    dates = (start + day.astype("timedelta64[D]")).astype(str)
    vals = np.round(rng.gamma(2.0, 10.0, rows), 2).astype(str)
    vals[rng.random(rows) < 0.01] = "<0.5"
    mrn = np.char.add("MRN", pat.astype(str))
    tnames = np.array([rev.get(t, t) for t in tests], dtype=object)[test_i]
    units = np.array([crf.lab_tests[t]["unit"] for t in tests], dtype=object)[test_i]
    conv = {t: next(iter(u)) for t, u in (prof.units or {}).items()}
    for t, u in conv.items():
        units[np.array(tests, dtype=object)[test_i] == t] = u
    if bad:  # spread failures: bad dates, unknown units, negative values, missing mrn, duplicates
        k = rng.random(rows)
        dates = dates.astype(object)
        dates[k < bad / 5] = "2024-02-30"
        units[(k >= bad / 5) & (k < 2 * bad / 5)] = "mmol/mol"
        vals[(k >= 2 * bad / 5) & (k < 3 * bad / 5)] = "-1"
        mrn = mrn.astype(object)
        mrn[(k >= 3 * bad / 5) & (k < 4 * bad / 5)] = ""
        dup = np.flatnonzero((k >= 4 * bad / 5) & (k < bad))
        for arr in (mrn, dates, tnames, units):
            arr[dup[dup > 0]] = arr[dup[dup > 0] - 1]
    if center == "hzfph":
        dates = np.array([d.replace("-", "/") for d in np.unique(dates)], dtype=object)[np.unique(dates, return_inverse=True)[1]]
    if prof.format == "csv":
        import pandas as pd

        df = pd.DataFrame(dict(zip(header, [mrn, np.full(rows, "inv1"), dates, tnames, vals, units])))
        # full sequential: (patient, date, test) may repeat by chance -> a few unique_key rejections, realistic
        df.to_csv(path, index=False, encoding=prof.encoding or "utf-8")
    else:
        import xlsxwriter

        wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
        sheet = prof.sheet_for("labs")
        ws = wb.add_worksheet(sheet)
        fmt = wb.add_format({"num_format": "yyyy-mm-dd"})
        ws.write_row(0, 0, header)
        for i in range(rows):
            ws.write_string(i + 1, 0, mrn[i])
            ws.write_string(i + 1, 1, "inv1")
            ws.write_datetime(i + 1, 2, dt.datetime.fromisoformat(dates[i]), fmt)
            ws.write_string(i + 1, 3, tnames[i])
            v = vals[i]
            ws.write_number(i + 1, 4, float(v)) if not v.startswith("<") else ws.write_string(i + 1, 4, v)
            ws.write_string(i + 1, 5, units[i])
        wb.close()
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--center", default="zcmu1")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--stream", action="store_true", help="iterate chunks without keeping them (iter_extract)")
    ap.add_argument("--reuse", action="store_true", help="reuse the file of an earlier run in --dir")
    ap.add_argument("--bad", type=float, default=0.0, help="share of rows with an error (5 kinds)")
    a = ap.parse_args(argv)
    d = Path(a.dir or tempfile.mkdtemp())
    d.mkdir(parents=True, exist_ok=True)
    prof = load_centers()[a.center]
    crf = load_crf()
    name = "A_labs_20250401.csv" if prof.format == "csv" else "A_20250401.xlsx"
    path = d / name
    t0 = time.perf_counter()
    if not (a.reuse and path.exists()):
        make_labs(path, a.center, a.rows, bad=a.bad)
    t1 = time.perf_counter()
    key = os.urandom(32)
    if a.stream:
        n_valid = n_q = n_in = 0
        for ch in iter_extract(path, prof, key=key, delivery_id="bench", crf=crf):
            n_in += ch.rows_in
            n_valid += len(ch.valid)
            n_q += len(ch.quarantine)
    else:
        ex = extract_file(path, prof, key=key, delivery_id="bench", crf=crf)
        n_in = sum(e.rows_in for e in ex)
        n_valid = sum(len(e.valid) for e in ex)
        n_q = sum(len(e.quarantine) for e in ex)
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"center={a.center} rows={n_in} valid={n_valid} quarantine_rows={n_q} size={path.stat().st_size / 1e6:.1f} MB "
        f"write={t1 - t0:.1f}s extract={t2 - t1:.2f}s -> {n_in / (t2 - t1):,.0f} rows/s; peak RSS {rss:.0f} MB"
    )


if __name__ == "__main__":
    main()
