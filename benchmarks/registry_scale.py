"""Registry size and how cost grows: synthetic deliveries of N patients (the demo's
per-patient density), the whole headless pipeline, and the bare-DuckDB floor on the
same files, for each N.

    python benchmarks/registry_scale.py --sizes 1000 10000 100000 [--out DIR] [--max-load L]

Per size, each step a separate cold process:

1. `ibd-pipeline synth --patients N` into a fresh data directory's inboxes (timed too).
2. The floor: `benchmarks/duckdb_floor.py` loads every delivered file into a DuckDB
   table (read_csv / read_xlsx, GB18030 transcoded to UTF-8 first, counted).
3. `ibd-pipeline run --settle 0`: intake, the three center jobs, the study job.
   Wall time, peak RSS of the process tree (psutil, every 0.1 s), and Dagster's step
   stats per run -> seconds and rows per second per stage.

"Ingestion + SQL models" = the run's wall time minus the Python analysis steps of the
study job (cohort, endpoints, statistics, quality, report, snapshot): process start,
imports, intake, every center job, the reference tables and the core SQL models.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lib as B  # noqa: E402

SQL_STEPS_PREFIX = ("reference_tables", "core__")


def is_sql_step(step: str) -> bool:
    return step.startswith(SQL_STEPS_PREFIX)


def _peak(series, t0: float, t1: float) -> float | None:
    vals = [r for t, r in series if t0 <= t <= t1]
    return max(vals) if vals else None


def summarize(pipeline: dict, runs: list[dict]) -> dict:
    wall = pipeline["seconds"]
    center = [r for r in runs if r["job"] == "center_job"]
    study = [r for r in runs if r["job"] == "study_job"]
    in_runs = sum(r["seconds"] for r in runs)
    sql = sum(s["seconds"] for r in study for s in r["steps"] if is_sql_step(s["step"]))
    analysis = sum(s["seconds"] for r in study for s in r["steps"] if not is_sql_step(s["step"]))
    stages = {}
    for r in runs:
        for s in r["steps"]:
            key = s["step"] if r["job"] == "study_job" else f"{s['step']}"
            st = stages.setdefault(key, {"seconds": 0.0, "rows": 0, "rows_kind": s["rows_kind"], "job": r["job"]})
            st["seconds"] += s["seconds"]
            st["rows"] += s["rows"]
            peak = _peak(pipeline.get("rss_series") or [], s.get("start", 0), s.get("end", 0))
            if peak is not None:
                st["peak_rss_gib"] = max(st.get("peak_rss_gib") or 0.0, peak)
    for st in stages.values():
        st["seconds"] = round(st["seconds"], 3)
        st["rows_per_s"] = round(st["rows"] / st["seconds"]) if st["seconds"] > 0 and st["rows"] else None
    return {
        "wall_s": wall,
        "outside_runs_s": round(wall - in_runs, 2),  # process start, imports, intake, definitions
        "center_jobs_s": round(sum(r["seconds"] for r in center), 2),
        "study_job_s": round(sum(r["seconds"] for r in study), 2),
        "sql_models_s": round(sql, 2),
        "analysis_s": round(analysis, 2),
        "ingestion_and_sql_s": round(wall - analysis, 2),
        "stages": stages,
    }


def one_size(n: int, work: Path, max_load: float | None, max_wait: float, keep: bool, log=print) -> dict:
    data = B.fresh_dir(work / f"n{n}")
    env = B.cli_env(data)
    res: dict = {"patients": n}
    r = B.run_measured(B.cli(data, "init-key"), env=env)
    B.wait_for_quiet(max_load, max_wait, log)
    synth = B.run_measured(B.cli(data, "synth", "--patients", str(n)), env=env)
    res["synth"] = synth.as_dict()
    log(f"  synth {n}: {synth.seconds:.1f} s, peak {synth.peak_rss_gib:.2f} GiB (exit {synth.returncode}; load {B.fmt_load(synth)})")
    if synth.returncode:
        res["error"] = f"synth failed: {synth.stderr_tail}"
        log(res["error"])
        return res
    res["delivered"] = B.delivered_rows(data / "inbox")
    log(f"  delivered: {res['delivered']['rows']:,} rows in {res['delivered']['files']} files, "
        f"{res['delivered']['bytes'] / 1e6:.1f} MB")

    B.wait_for_quiet(max_load, max_wait, log)
    floor_json = data / "floor.json"
    fl = B.run_measured([sys.executable, str(Path(__file__).with_name("duckdb_floor.py")), str(data / "inbox"),
                         "--db", str(data / "floor.duckdb"), "--json", str(floor_json)], env=env)
    res["floor_process"] = fl.as_dict()
    res["floor"] = json.loads(floor_json.read_text()) if floor_json.exists() else None
    for p in (data / "floor.duckdb", data / "floor.duckdb.wal"):
        if p.exists():
            p.unlink()
    if res["floor"]:
        res["floor"].pop("per_file", None)
        log(f"  DuckDB floor: {res['floor']['seconds']:.1f} s ({res['floor']['rows']:,} rows; transcoding "
            f"{res['floor']['transcode_seconds']:.1f} s, csv {res['floor']['csv_seconds']:.1f} s, xlsx "
            f"{res['floor']['xlsx_seconds']:.1f} s; process {fl.seconds:.1f} s, peak {fl.peak_rss_gib:.2f} GiB)")
    else:
        log(f"  DuckDB floor failed: {fl.stderr_tail}")

    B.wait_for_quiet(max_load, max_wait, log)
    run = B.run_measured(B.cli(data, "run", "--settle", "0"), env=env, interval=0.1)
    res["pipeline"] = run.as_dict()
    log(f"  pipeline: {run.seconds:.1f} s, peak {run.peak_rss_gib:.2f} GiB (main process {run.peak_rss_main_gib:.2f}) "
        f"(exit {run.returncode}; load {B.fmt_load(run)})")
    if run.returncode:
        log(run.stdout_tail + "\n" + run.stderr_tail)
    runs = B.timings_dict(B.dagster_timings(data, run.started_at - 1))
    res["runs"] = runs
    res["summary"] = summarize(res["pipeline"], runs)
    if res["floor"]:
        res["summary"]["floor_s"] = res["floor"]["seconds"]
        res["summary"]["ingestion_and_sql_over_floor"] = round(res["summary"]["ingestion_and_sql_s"] / res["floor"]["seconds"], 2)
        res["summary"]["wall_over_floor"] = round(run.seconds / res["floor"]["seconds"], 2)
    res["summary"]["ms_per_patient"] = round(1000 * run.seconds / n, 3)
    wh = data / "warehouse.duckdb"
    res["warehouse_mb"] = round(wh.stat().st_size / 1e6, 1) if wh.exists() else None
    if not keep:
        shutil.rmtree(data, ignore_errors=True)
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--out", default=str(B.DEFAULT_OUT / "scale"))
    ap.add_argument("--max-load", type=float, default=None)
    ap.add_argument("--max-wait", type=float, default=900)
    ap.add_argument("--keep", action="store_true", help="keep each size's data directory")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    out = {"sizes": [], "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    for n in a.sizes:
        print(f"registry scale: {n:,} patients")
        out["sizes"].append(one_size(n, Path(a.out), a.max_load, a.max_wait, a.keep))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    r = main()
    print(json.dumps([s.get("summary") for s in r["sizes"]], indent=1))
