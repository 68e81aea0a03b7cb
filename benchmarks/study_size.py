"""Study size (122 patients, the demo deliveries): the cold headless run and the
one-center update.

    python benchmarks/study_size.py [--repeat 3] [--out DIR] [--center zcmu1] [--max-load L]

1. Cold run: a fresh data directory, a pseudonymization key, `ibd-pipeline synth` (the
   demo's 122 patients) into the inboxes, then the measured command
   `ibd-pipeline run --settle 0` - one new process: imports, intake, the three center
   jobs, the study job (every asset, every check, the report, the analysts' snapshot).
2. One-center update, right after: a modified delivery of one center (its current
   round-A labs file with one lab value changed, under the next day's date) is dropped
   into that center's inbox and `ibd-pipeline run --center C --settle 0` is measured -
   the center's staging, reconciliation and every pooled table, the report and the
   snapshot rebuilt. Also recorded: when the analysts' snapshot (`analytics.duckdb`) was
   renamed into place, counted from the start of that command (the correction's latency
   to the analysts: issue 14's first target).
3. A run with nothing new in the inboxes (`ibd-pipeline run --settle 0` again).
4. `ibd-pipeline --help` (start-up of the command line).

`--settle 0`: intake otherwise waits until a file has been unchanged for
`ingestion.settle_seconds` (2 s) - a deliberate wait for files still being copied, not
work; add it to the figures for the latency a coordinator sees.

Per-stage figures are Dagster's own: the step stats of each run in the data directory's
instance (STEP_START -> STEP_SUCCESS). Prints JSON (and writes it with --json).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lib as B  # noqa: E402

N_PATIENTS = 122


def modify_delivery(data_dir: Path, center: str, date: str = "20250402") -> Path:
    """Drop a modified copy of the center's current round-A labs delivery into its
    inbox: one lab value changed, file name dated ``date``. CSV centers only."""
    manifest = data_dir / "archive" / center / "manifest.jsonl"
    entries = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    labs = [e for e in entries if e.get("status") == "accepted" and e["file_name"].startswith("A_labs_")]
    if not labs:
        raise SystemExit(f"{center}: no round-A labs CSV in the archive (pick a CSV center)")
    e = labs[-1]
    src = next((data_dir / "archive" / center).glob(e["sha256"] + ".*"))
    from ibd_pipeline.config import load_centers

    prof = load_centers()[center]
    enc = prof.encoding or "utf-8-sig"
    with open(src, encoding=enc, newline="") as fh:
        rows = list(csv.reader(fh))
    header = [h.replace("\ufeff", "").strip() for h in rows[0]]
    vcol = header.index(prof.header_for("labs", "value"))
    for r in rows[1:]:
        try:
            r[vcol] = f"{float(r[vcol]) + 0.1:g}"
            break
        except (ValueError, IndexError):
            continue
    dst = data_dir / "inbox" / center / e["file_name"].replace(e["file_name"].rsplit("_", 1)[1][:8], date)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst, "w", encoding=enc, newline="") as fh:
        csv.writer(fh, lineterminator="\r\n" if b"\r\n" in src.read_bytes()[:4096] else "\n").writerows(rows)
    return dst


def one_round(work: Path, center: str, max_load: float | None, max_wait: float, log=print) -> dict:
    data = B.fresh_dir(work)
    env = B.cli_env(data)
    for args in (("init-key",), ("synth", "--patients", str(N_PATIENTS))):
        r = B.run_measured(B.cli(data, *args), env=env)
        if r.returncode:
            raise SystemExit(f"{' '.join(args)} failed:\n{r.stderr_tail}")
    B.wait_for_quiet(max_load, max_wait, log)
    cold = B.run_measured(B.cli(data, "run", "--settle", "0"), env=env)
    log(f"  cold run: {cold.seconds:.1f} s (exit {cold.returncode}; load {B.fmt_load(cold)})")
    if cold.returncode:
        log(cold.stdout_tail + "\n" + cold.stderr_tail)
    cold_runs = B.dagster_timings(data, cold.started_at - 1)
    dropped = modify_delivery(data, center)
    B.wait_for_quiet(max_load, max_wait, log)
    inc = B.run_measured(B.cli(data, "run", "--center", center, "--settle", "0"), env=env)
    log(f"  one-center update ({center}, {dropped.name}): {inc.seconds:.1f} s (exit {inc.returncode}; load {B.fmt_load(inc)})")
    if inc.returncode:
        log(inc.stdout_tail + "\n" + inc.stderr_tail)
    inc_runs = B.dagster_timings(data, inc.started_at - 1)
    snap = data / "analytics.duckdb"
    # the snapshot is renamed into place: its mtime is when the analysts could see the correction
    published = snap.stat().st_mtime if snap.exists() else 0.0
    snapshot_s = round(published - inc.started_at, 2) if published > inc.started_at else None
    log(f"  drop -> analysts' snapshot: {B.fmt_s(snapshot_s)}")
    B.wait_for_quiet(max_load, max_wait, log)
    idle = B.run_measured(B.cli(data, "run", "--settle", "0"), env=env)
    log(f"  run with nothing new: {idle.seconds:.1f} s (exit {idle.returncode})")
    helped = B.run_measured([B.CLI, "--help"], env=env)
    log(f"  ibd-pipeline --help: {helped.seconds:.2f} s (exit {helped.returncode})")
    return {
        "cold": cold.as_dict(), "cold_runs": B.timings_dict(cold_runs),
        "update": inc.as_dict(), "update_runs": B.timings_dict(inc_runs), "update_file": dropped.name,
        "update_to_snapshot_s": snapshot_s,
        "idle": {k: v for k, v in idle.as_dict().items() if k != "rss_series"},
        "help": {k: v for k, v in helped.as_dict().items() if k != "rss_series"},
        "delivered": B.delivered_rows(data / "archive"),
    }


def _median(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(B.DEFAULT_OUT / "study"))
    ap.add_argument("--center", default="zcmu1")
    ap.add_argument("--max-load", type=float, default=None, help="wait until the 1-min load is at most this")
    ap.add_argument("--max-wait", type=float, default=900)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    rounds = []
    for i in range(a.repeat):
        print(f"study size, round {i + 1}/{a.repeat}")
        rounds.append(one_round(Path(a.out) / f"round{i + 1}", a.center, a.max_load, a.max_wait))
    ok = [r for r in rounds if r["cold"]["returncode"] == 0 and r["update"]["returncode"] == 0]
    res = {
        "patients": N_PATIENTS, "center": a.center, "rounds": rounds,
        "cold_median_s": statistics.median(r["cold"]["seconds"] for r in ok) if ok else None,
        "cold_min_s": min((r["cold"]["seconds"] for r in ok), default=None),
        "update_median_s": statistics.median(r["update"]["seconds"] for r in ok) if ok else None,
        "update_min_s": min((r["update"]["seconds"] for r in ok), default=None),
        "update_to_snapshot_median_s": _median([r.get("update_to_snapshot_s") for r in ok]),
        "idle_median_s": _median([r["idle"]["seconds"] for r in ok if r["idle"]["returncode"] == 0]),
        "help_median_s": _median([r["help"]["seconds"] for r in ok if r["help"]["returncode"] == 0]),
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    r = main()
    print(json.dumps({k: v for k, v in r.items() if k != "rounds"}, indent=1))
