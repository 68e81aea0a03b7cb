"""Shared helpers of the benchmarks: the machine, its load, timed subprocesses with the
peak memory of their process tree, and the step timings Dagster recorded for a run.

Nothing here imports the pipeline at module level: every measured command runs in its
own cold process (`.venv/bin/ibd-pipeline ...`), as a user or cron would run it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLI = str(BIN / "ibd-pipeline")
DEFAULT_OUT = ROOT / "benchmarks" / "out"  # git-ignored
GIB = 1024**3


# ------------------------------------------------------------------ machine and load
def load() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())


CPU_REFERENCE = """
import time
import numpy as np
import pandas as pd
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    sum(i * i for i in range(6_000_000))                      # the interpreter
    np.sort(np.random.default_rng(1).random(2_000_000))       # numpy
    df = pd.DataFrame({"k": np.arange(1_000_000) % 1000, "v": np.arange(1_000_000.0)})
    df.groupby("k")["v"].mean()                               # pandas
    best = min(best, time.perf_counter() - t)
print(round(best, 3))
"""


def cpu_reference() -> float | None:
    """Seconds of a fixed single-thread workload (Python loop, numpy sort, pandas groupby;
    best of 3, in a new process): the machine's speed at the time of a measurement. The
    machine is shared and its speed drifts by 2x from one day to the next, so figures of
    different days compare only through this."""
    r = subprocess.run([sys.executable, "-c", CPU_REFERENCE], capture_output=True, text=True)
    try:
        return float(r.stdout.strip())
    except ValueError:
        return None


def machine() -> dict:
    import importlib.metadata as md

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("dagster", "duckdb", "pandas", "pandera", "great-expectations", "scikit-learn", "lifelines"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    commit = ""
    dirty = False
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "ibd_pipeline"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": commit + (" (+ uncommitted changes in ibd_pipeline/)" if dirty else ""),
        "cpu_reference_s": cpu_reference(),
    }


def wait_for_quiet(max_load: float | None, max_wait: float, log=print) -> tuple[float, float, float]:
    """Wait (up to ``max_wait`` seconds) until the 1-minute load average is at most
    ``max_load``; return the load when the measurement starts."""
    if not max_load:
        return load()
    deadline = time.time() + max_wait
    announced = False
    while load()[0] > max_load and time.time() < deadline:
        if not announced:
            log(f"  waiting for the 1-min load to fall to {max_load} (now {load()[0]}; at most {max_wait:.0f} s)")
            announced = True
        time.sleep(10)
    return load()


# ------------------------------------------------------------------ timed processes
@dataclass
class Measured:
    cmd: list[str]
    seconds: float
    returncode: int
    peak_rss_gib: float  # sum of RSS over the process tree, at its largest sample
    peak_rss_main_gib: float  # the command's own process
    peak_pss_gib: float  # sum of PSS over the tree (shared pages counted once), at its largest sample
    load_before: tuple
    load_after: tuple
    load_max_1min: float  # the largest 1-minute load average seen while it ran
    stdout_tail: str = ""
    stderr_tail: str = ""
    started_at: float = 0.0
    rss_series: list = field(default_factory=list)  # [(epoch s, tree RSS GiB)], thinned

    def peak_between(self, t0: float, t1: float) -> float | None:
        vals = [r for t, r in self.rss_series if t0 <= t <= t1]
        return max(vals) if vals else None

    def as_dict(self) -> dict:
        return asdict(self)


def _pss(pid: int) -> int:
    """Proportional set size of a process (Linux smaps_rollup), 0 if unavailable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeSampler:
    """Samples the RSS of a process and all its descendants (psutil) every ``interval``
    seconds in a background thread; forked workers count with their full RSS (pages
    shared with the parent are counted twice, so the sum is an upper bound)."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.peak_main = 0
        self.max_load = 0.0
        self.series: list[tuple[float, int]] = []  # (epoch seconds, tree RSS) of every sample
        self.peak_pss = 0
        self._n = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            p = psutil.Process(self.pid)
            procs = [p] + p.children(recursive=True)
        except psutil.Error:
            return
        total = 0
        for q in procs:
            try:
                rss = q.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            if q.pid == self.pid:
                self.peak_main = max(self.peak_main, rss)
        self.peak = max(self.peak, total)
        self._n += 1
        if len(procs) > 1 or self._n % 5 == 0:  # PSS: shared pages split between the processes
            pss = sum(_pss(q.pid) for q in procs)
            self.peak_pss = max(self.peak_pss, pss)
        self.series.append((time.time(), total))
        self.max_load = max(self.max_load, os.getloadavg()[0])

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def run_measured(cmd: list[str], env: dict | None = None, cwd: Path | None = None, interval: float = 0.1) -> Measured:
    """Run ``cmd``; wall time, exit status, peak RSS of its process tree, machine load."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    before = load()
    t0 = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=full_env, cwd=str(cwd or ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid, interval) as s:
        out, err = proc.communicate()
    seconds = time.perf_counter() - start
    return Measured(
        cmd=[str(c) for c in cmd], seconds=round(seconds, 2), returncode=proc.returncode,
        peak_rss_gib=round(s.peak / GIB, 3), peak_rss_main_gib=round(s.peak_main / GIB, 3),
        peak_pss_gib=round(s.peak_pss / GIB, 3),
        load_before=before, load_after=load(), load_max_1min=round(max(s.max_load, before[0]), 2),
        stdout_tail="\n".join(out.strip().splitlines()[-8:]), stderr_tail=_stderr_tail(err), started_at=t0,
        rss_series=[(round(t, 2), round(r / GIB, 3)) for t, r in s.series[:: max(1, len(s.series) // 5000)]],
    )


def _stderr_tail(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if "UserWarning" not in ln and "warnings.warn" not in ln]
    return "\n".join(lines[-15:])


def fresh_dir(path: Path) -> Path:
    path = Path(path).resolve()  # DAGSTER_HOME must be absolute (an --out relative to the cwd)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def cli(data_dir: Path, *args: str) -> list[str]:
    return [CLI, "--data-dir", str(data_dir), *args]


def cli_env(data_dir: Path) -> dict:
    # each benchmark's data directory has its own Dagster instance and key
    return {
        "IBD_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(data_dir / "dagster_home"),
        "IBD_PSEUDONYM_KEY_FILE": str(data_dir / "secrets" / "pseudonym.key"),
        "PYTHONWARNINGS": "ignore",
    }


# ------------------------------------------------------------------ Dagster's own timings
@dataclass
class StepTiming:
    run: str  # job name (+ partition)
    step: str
    seconds: float
    rows: int  # rows read (staging: delivered rows of the current deliveries) or written
    rows_kind: str
    start: float = 0.0
    end: float = 0.0


@dataclass
class RunTiming:
    run_id: str
    job: str
    partition: str | None
    status: str
    seconds: float
    steps: list[StepTiming] = field(default_factory=list)


def dagster_timings(data_dir: Path, since: float) -> list[RunTiming]:
    """The runs recorded in the data directory's Dagster instance since ``since`` (epoch
    seconds), in start order, each with its steps' durations from the instance's step
    stats (STEP_START -> STEP_SUCCESS) and the rows its materializations report."""
    code = f"""
import json, os, sys
os.environ["DAGSTER_HOME"] = {str(data_dir / "dagster_home")!r}
from dagster import DagsterInstance, DagsterEventType, EventRecordsFilter
inst = DagsterInstance.get()
out = []
for r in inst.get_runs(limit=200):
    st = inst.get_run_stats(r.run_id)
    if not st.start_time or st.start_time < {since!r}:
        continue
    rows = {{}}
    kinds = {{}}
    for e in inst.all_logs(r.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        mat = e.dagster_event.event_specific_data.materialization
        md = {{k: getattr(v, "value", v) for k, v in (mat.metadata or {{}}).items()}}
        step = e.dagster_event.step_key
        if "rows_in_current_deliveries" in md:
            rows[step] = rows.get(step, 0) + int(md["rows_in_current_deliveries"] or 0)
            kinds[step] = "read"
        elif "dagster/row_count" in md and kinds.get(step) != "read":
            rows[step] = rows.get(step, 0) + int(md["dagster/row_count"] or 0)
            kinds[step] = "written"
    steps = [
        {{"step": s.step_key, "seconds": round((s.end_time or 0) - (s.start_time or 0), 3), "start": s.start_time or 0,
          "end": s.end_time or 0,
          "rows": rows.get(s.step_key, 0), "rows_kind": kinds.get(s.step_key, "")}}
        for s in inst.get_run_step_stats(r.run_id)
    ]
    steps.sort(key=lambda s: s["start"])
    out.append({{"run_id": r.run_id, "job": r.job_name, "partition": r.tags.get("dagster/partition"),
                "status": r.status.value, "start": st.start_time, "seconds": round((st.end_time or 0) - st.start_time, 3),
                "steps": steps}})
out.sort(key=lambda r: r["start"])
print(json.dumps(out))
"""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=str(ROOT))
    if res.returncode != 0:
        raise RuntimeError(f"reading the Dagster instance failed: {res.stderr[-2000:]}")
    runs = []
    for r in json.loads(res.stdout.strip().splitlines()[-1]):
        name = r["job"] + (f"[{r['partition']}]" if r["partition"] else "")
        runs.append(RunTiming(r["run_id"], r["job"], r["partition"], r["status"], r["seconds"], [
            StepTiming(name, s["step"], s["seconds"], s["rows"], s["rows_kind"], s["start"], s["end"]) for s in r["steps"]
        ]))
    return runs


def timings_dict(runs: list[RunTiming]) -> list[dict]:
    return [asdict(r) for r in runs]


# ------------------------------------------------------------------ data sizes
def delivered_rows(inbox_or_archive: Path) -> dict:
    """Data rows and bytes of every delivered file under a directory (CSV lines minus the
    header; workbook rows via python-calamine minus each sheet's header)."""
    out = {"files": 0, "bytes": 0, "rows": 0}
    for f in sorted(inbox_or_archive.rglob("*")):
        if not f.is_file() or f.suffix.lower() not in (".csv", ".xlsx"):
            continue
        out["files"] += 1
        out["bytes"] += f.stat().st_size
        if f.suffix.lower() == ".csv":
            with open(f, "rb") as fh:
                out["rows"] += max(sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 22), b"")) - 1, 0)
        else:
            import python_calamine as pc

            wb = pc.CalamineWorkbook.from_path(str(f))
            for name in wb.sheet_names:
                sh = wb.get_sheet_by_name(name)
                out["rows"] += max(sh.height - 1, 0)
    return out


def fmt_s(x: float | None) -> str:
    return "-" if x is None else (f"{x:.1f} s" if x >= 10 else f"{x:.2f} s")


def fmt_load(m: Measured | dict) -> str:
    d = m if isinstance(m, dict) else m.as_dict()
    return f"{d['load_before'][0]:.2f} before, max {d['load_max_1min']:.2f} during"
