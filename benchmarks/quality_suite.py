"""The quality suite alone at scale, both paths side by side: a clean synthetic cohort of
N patients with ~100 lab rows each (``tests/quality/test_quality_scale.synthetic_core``) written
to a DuckDB warehouse, then validated

* ``pandas`` - as before: the core tables read into pandas (``SELECT *``, as
  defs/quality.py did), GX's pandas engine (``quality.run_quality_suite``);
* ``sql`` - in the database: GX's SQL engine on the warehouse connection
  (``quality.sql.run_quality_suite_sql``).

    python benchmarks/quality_suite.py --patients 10000 [--paths pandas,sql] [--docs]

Each path runs in its own fresh process (the warehouse opened there, GX imported there):
wall time, CPU time (user + system) and the peak memory of that process (ru_maxrss) are
its own. The two results tables are compared (sorted by check_id, every column); exits 1
if they differ or a check of the clean cohort fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _write_warehouse(path: Path, patients: int) -> dict:
    import duckdb

    from tests.quality.test_quality_scale import synthetic_core

    tables = synthetic_core(patients)
    con = duckdb.connect(str(path))
    for name, df in tables.items():
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {name.split('.')[0]}")
        con.register("_frame", df)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _frame")
        con.unregister("_frame")
    con.close()
    return {name: len(df) for name, df in tables.items()}


def _worker(path: str, db: str, out: str, docs: str | None) -> None:
    """One path in this process; writes the results (parquet) and its figures (json)."""
    t0, c0 = time.perf_counter(), os.times()
    import duckdb

    from ibd_pipeline.config import load_crf, load_settings
    from ibd_pipeline.store.reads import read_table

    con = duckdb.connect(db)
    settings, crf = load_settings(), load_crf()
    if path == "pandas":
        from ibd_pipeline.quality import run_quality_suite_detailed

        tables = {t: read_table(con, t) for t in ("core.patients", "core.medications", "core.surgeries",
                                                   "core.assessments", "core.labs", "core.adverse_events",
                                                   "analytics.eligibility")}
        run = run_quality_suite_detailed(tables, settings, crf, docs_dir=docs)
    else:
        from ibd_pipeline.quality.sql import run_quality_suite_sql_detailed

        run = run_quality_suite_sql_detailed(con, settings, crf, docs_dir=docs)
    c1 = os.times()
    run.results.to_parquet(out + ".parquet")
    Path(out + ".json").write_text(json.dumps({
        "wall_s": time.perf_counter() - t0,
        "suite_s": run.seconds,
        "cpu_s": (c1.user - c0.user) + (c1.system - c0.system),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "frame_seconds": run.frame_seconds,
    }))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=10000)
    ap.add_argument("--paths", default="pandas,sql", help="comma-separated: pandas, sql")
    ap.add_argument("--docs", action="store_true", help="also build the GX Data Docs (in a temporary directory)")
    ap.add_argument("--db", help="the warehouse file: reused if it exists (same --patients), else written there "
                                 "(default: a temporary file)")
    ap.add_argument("--worker", nargs=3, metavar=("PATH", "DB", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--docs-dir", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        _worker(*a.worker, a.docs_dir)
        return 0

    import pandas as pd

    paths = [p.strip() for p in a.paths.split(",") if p.strip()]
    with tempfile.TemporaryDirectory() as td:
        db = Path(a.db) if a.db else Path(td) / "warehouse.duckdb"
        t0 = time.perf_counter()
        if db.exists():
            import duckdb

            with duckdb.connect(str(db), read_only=True) as con:
                counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("core.labs", "core.assessments")}
            print(f"warehouse {db} reused")
        else:
            counts = _write_warehouse(db, a.patients)
        print(f"patients {a.patients}: {counts['core.labs']:,} lab rows, {counts['core.assessments']:,} assessments "
              f"(warehouse ready in {time.perf_counter() - t0:.1f} s; load {os.getloadavg()[0]:.2f})")
        results, figures = {}, {}
        for p in paths:
            out = str(Path(td) / p)
            cmd = [sys.executable, __file__, "--worker", p, str(db), out]
            if a.docs:
                cmd += ["--docs-dir", str(Path(td) / f"docs_{p}")]
            subprocess.run(cmd, check=True, cwd=ROOT)
            results[p] = pd.read_parquet(out + ".parquet")
            figures[p] = json.loads(Path(out + ".json").read_text())
            f = figures[p]
            print(f"{p:7s} process {f['wall_s']:6.1f} s wall (suite {f['suite_s']:.1f} s), {f['cpu_s']:6.1f} s CPU, "
                  f"peak RSS {f['peak_rss_mib']:,.0f} MiB")
            for frame, sec in sorted(f["frame_seconds"].items(), key=lambda x: -x[1])[:6]:
                print(f"          {frame:40s} {sec:7.2f} s")
    status = 0
    for p, r in results.items():
        bad = r[~r["passed"]]
        if len(bad):
            print(f"{p}: failing checks on the clean cohort\n" + bad[["check_id", "n_failed", "examples"]].to_string())
            status = 1
    if len(results) == 2:
        x, y = (r.sort_values("check_id").reset_index(drop=True) for r in results.values())
        same = x.equals(y)
        if not same:
            diff = (x != y) & ~(x.isna() & y.isna())
            print("results differ:\n" + x[diff.any(axis=1)][["check_id"]].to_string())
            status = 1
        print(f"results tables identical: {same} ({len(x)} checks)")
    return status


if __name__ == "__main__":
    sys.exit(main())
