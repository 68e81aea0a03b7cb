"""Headless runs for cron and scripts: the same jobs the UI runs, in this process.

``run_pipeline`` takes whatever is complete in the inboxes into the archive, runs each
center's job (extraction, reconciliation) and then the pooled study job; runs are
recorded in the Dagster instance of ``$DAGSTER_HOME`` (default ``<data dir>/dagster_home``)
so the UI shows them, and tagged with the archive position they processed
(``ibd/archive_seq``) so the inbox sensor does not request them again.
``rebuild`` replays the archive alone into a fresh warehouse.

A job whose inputs are unchanged since the last successful headless run is skipped
(:mod:`ibd_pipeline.fingerprint`): a run with nothing new does nothing, a one-center
update reruns that center and the study. ``force=True`` (``ibd-pipeline run --force``)
runs everything.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import fingerprint as fp
from .config import DataPaths, data_paths, load_centers, load_crf, load_settings
from .intake import accepted_deliveries, drain_inbox, stray_entries
from .privacy import redact

# the project's instance settings (run queue of one), ensured in every DAGSTER_HOME it uses
# (in the package, not the repository root: `dagster dev` warns about a dagster.yaml in its
# working directory that is not $DAGSTER_HOME's)
INSTANCE_SETTINGS_FILE = Path(__file__).with_name("dagster.yaml")


def dagster_home(paths: DataPaths) -> Path:
    """The Dagster instance directory: ``$DAGSTER_HOME`` when set, else
    ``<data dir>/dagster_home`` - one instance for the CLI, ``ibd-pipeline ui`` and
    ``dagster dev``."""
    env = os.environ.get("DAGSTER_HOME")
    return Path(env).expanduser().resolve() if env else paths.dagster_home


def instance_config(existing: dict | None) -> dict:
    """``existing`` (a user's dagster.yaml, or None) with the project's settings
    (ibd_pipeline/dagster.yaml) laid over it: a queued run coordinator with one run
    at a time; storage and the rest are kept. Dagster refuses the coordinator's
    ``max_concurrent_runs`` beside a ``concurrency`` section, so a file that has one gets
    the limit as ``concurrency: runs: max_concurrent_runs: 1`` instead."""
    project = yaml.safe_load(INSTANCE_SETTINGS_FILE.read_text(encoding="utf-8"))
    cfg = {k: v for k, v in (existing or {}).items() if k != "run_queue"}
    conc = dict(cfg.get("concurrency") or {})
    if "runs" in conc or "pools" in conc:
        limit = project["run_coordinator"]["config"]["max_concurrent_runs"]
        cfg.update({k: v for k, v in project.items() if k != "run_coordinator"})
        cfg["run_coordinator"] = {k: v for k, v in project["run_coordinator"].items() if k != "config"}
        cfg["concurrency"] = {**conc, "runs": {**(conc.get("runs") or {}), "max_concurrent_runs": limit}}
        return cfg
    cfg.update(project)
    return cfg


def ensure_dagster_home(paths: DataPaths) -> Path:
    """Create the instance directory and make sure its dagster.yaml carries the
    project's settings (written on first use, amended if a user's file lacks them)."""
    home = dagster_home(paths)
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        shutil.copyfile(INSTANCE_SETTINGS_FILE, cfg)
        return home
    existing = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
    wanted = instance_config(existing)
    if wanted != existing:
        cfg.write_text(
            "# amended by ibd-pipeline: the project's run queue of one (see ibd_pipeline/dagster.yaml)\n"
            + yaml.safe_dump(wanted, sort_keys=False),
            encoding="utf-8",
        )
    return home


def get_instance(paths: DataPaths):
    """The persistent Dagster instance of ``dagster_home`` (DAGSTER_HOME is set to it
    for this process when it was unset, so every child process uses it too)."""
    from dagster import DagsterInstance

    home = ensure_dagster_home(paths)
    os.environ.setdefault("DAGSTER_HOME", str(home))
    return DagsterInstance.from_config(str(home))


@dataclass
class RunSummary:
    intake: list = field(default_factory=list)
    center_runs: dict = field(default_factory=dict)  # center -> (success, message)
    study_run: tuple | None = None
    seconds: float = 0.0
    notes: list = field(default_factory=list)  # repairs and clear stops, one line each
    unchanged: list = field(default_factory=list)  # centers (and "study") skipped: nothing changed
    unchanged_since: str = ""
    stopped: bool = False  # a clear stop: nothing ran
    check_errors: list = field(default_factory=list)  # failed ERROR-level checks of runs that succeeded

    @property
    def exit_status(self) -> int:
        """0 all good; 1 a run failed or nothing could run; 2 the runs succeeded but an
        ERROR-level (non-blocking) quality check failed (issue 18: not silent)."""
        if not self.success:
            return 1
        return 2 if self.check_errors else 0

    @property
    def success(self) -> bool:
        if self.stopped:
            return False
        ok = all(s for s, _ in self.center_runs.values())
        return ok and (self.study_run is None or self.study_run[0])

    def lines(self) -> list[str]:
        """The run's summary; every line passes the privacy redaction (docs/STUDY_RULES.md#privacy)."""
        out = list(self.notes)
        out += [f"intake {o.center}/{o.file_name}: {o.status}{' - ' + o.message if o.message else ''}" for o in self.intake]
        for c, (ok, msg) in self.center_runs.items():
            out.append(f"center {c}: {'ok' if ok else 'FAILED'}{' - ' + msg if msg else ''}")
        since = f" since the run of {self.unchanged_since}" if self.unchanged_since else ""
        out += [f"{'study' if c == STUDY else 'center ' + c}: unchanged{since} (nothing new; --force reruns)"
                for c in self.unchanged]
        if self.study_run is not None:
            out.append(f"study: {'ok' if self.study_run[0] else 'FAILED'}{' - ' + self.study_run[1] if self.study_run[1] else ''}")
        out += [f"ERROR-level check failed: {m}" for m in self.check_errors]
        out.append(f"finished in {self.seconds:.1f} s")
        return [redact(line) for line in out]


STUDY = "study"  # the pooled study job's entry in RunSummary.unchanged

# headless runs print a summary; the full event log stays in the Dagster instance (UI)
QUIET = {"loggers": {"console": {"config": {"log_level": os.environ.get("IBD_LOG_LEVEL", "WARNING")}}}}


def _error_checks(result) -> list[str]:
    """The ERROR-level checks that failed in a run, blocking or not."""
    out = []
    for ev in result.all_events:
        if ev.event_type_value == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if not data.passed and data.severity.value == "ERROR":
                m = (data.metadata or {}).get("message")
                out.append(f"{data.asset_key.to_user_string()} {data.check_name}" + (f": {m.value}" if m is not None else ""))
    return out


def _failure_message(result) -> str:
    msgs = []
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error
            msgs.append(f"{ev.step_key}: {err.message.strip() if err else ''}")
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if not data.passed and data.severity.value == "ERROR":
                meta = data.metadata or {}
                m = meta.get("message")
                msgs.append(f"check {data.check_name} failed" + (f": {m.value}" if m is not None else ""))
    return " | ".join(msgs)


def clear_stop(paths: DataPaths, centers_with_files: list[str]) -> str | None:
    """Why nothing can run at all (one sentence: cause and fix), or None (issue 18):
    the pseudonymization key is missing, unreadable or short - every center would fail
    on it and the study job would run on an empty warehouse."""
    if not centers_with_files:
        return None
    from .config import MissingKeyError, read_pseudonym_key

    try:
        read_pseudonym_key(paths)
    except MissingKeyError as exc:
        return f"stop: {exc}"
    return None


def _has_patients(paths: DataPaths) -> bool:
    """Whether the working warehouse holds any staged patient (read-only look)."""
    if not paths.warehouse.exists():
        return False
    from .store.reads import has_staged_patients

    return has_staged_patients(paths.warehouse)  # cannot tell (a run holds it): True, the study job decides


def run_pipeline(
    data_dir: str | Path | None = None,
    centers: list[str] | None = None,
    settle_seconds: float | None = None,
    study: bool = True,
    take_inbox: bool = True,
    instance=None,
    force: bool = False,
) -> RunSummary:
    """Ingest what is in the inboxes and materialize what changed (see module docstring)."""
    t0 = time.time()
    paths = data_paths(data_dir).ensure()
    profiles = load_centers()
    centers = centers or list(profiles)
    settle = load_settings()["ingestion"]["settle_seconds"] if settle_seconds is None else settle_seconds
    summary = RunSummary()
    if take_inbox:
        from .ingest.names import delivery_name_check

        summary.intake += stray_entries(paths, profiles)
        check = delivery_name_check(load_crf())
        for c in centers:
            summary.intake += drain_inbox(paths, profiles[c], settle, check)
    stop = clear_stop(paths, [c for c in centers if accepted_deliveries(paths, c)])
    if stop is not None:  # one message naming cause and fix; no job runs on nothing
        summary.notes.append(stop)
        summary.stopped = True
        summary.seconds = time.time() - t0
        return summary
    # skip what is unchanged since the last successful run (module docstring)
    state = {} if force else fp.load_state(paths)
    base = fp.code_and_config()
    fps = {c: fp.center_fingerprint(paths, c, base) for c in profiles}
    fps[STUDY] = fp.study_fingerprint(fps, base)
    touched = {o.center for o in summary.intake if o.status not in ("retry", "gone")}  # the inbox gave something
    plan = fp.plan(state, fp.outputs_state(paths), fps, [c for c in centers if accepted_deliveries(paths, c)],
                   touched, study=study, study_job=STUDY)
    to_run, run_study, done, errors = plan.to_run, plan.run_study, plan.done, plan.check_errors
    summary.unchanged = plan.unchanged
    summary.unchanged_since = str(state.get("finished_at") or "") if summary.unchanged else ""
    for job in summary.unchanged:  # still failing: the exit status says so
        summary.check_errors += errors.get(job, [])
    if not to_run and not run_study:
        summary.seconds = time.time() - t0
        return summary
    from .definitions import build_definitions  # Dagster and the assets: only when a job runs
    from .defs.sensors import ARCHIVE_SEQ_TAG, CENTER_TAG, TRIGGER_TAG
    from .defs.tables import RECOMPUTE_TAG

    recompute = {RECOMPUTE_TAG: "true"} if force else {}  # --force: derived tables recomputed too

    defs = build_definitions(paths.root)
    instance = instance or get_instance(paths)
    center_job = defs.resolve_job_def("center_job")
    done.pop(STUDY, None)  # the study is current again only when it succeeds below
    for c in to_run:
        accepted = accepted_deliveries(paths, c)
        tags = {CENTER_TAG: c, TRIGGER_TAG: "cli", ARCHIVE_SEQ_TAG: str(accepted[-1].seq), **recompute}
        r = center_job.execute_in_process(partition_key=c, instance=instance, raise_on_error=False, run_config=QUIET, tags=tags)
        summary.center_runs[c] = (r.success, "" if r.success else _failure_message(r))
        done.pop(c, None)
        errors[c] = _error_checks(r) if r.success else []
        summary.check_errors += errors[c]
        if r.success:
            done[c] = fps[c]
    if run_study and not _has_patients(paths):
        summary.notes.append(
            "stop: the warehouse holds no patient (every center run failed, or every patients delivery was rejected "
            "or unreadable: see the center lines above and the outbox reports), so the study job was not run; "
            "fix those, then `ibd-pipeline run` again"
        )
        summary.stopped = True
    elif run_study:
        r = defs.resolve_job_def("study_job").execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET,
                                                                  tags={TRIGGER_TAG: "cli", **recompute})
        summary.study_run = (r.success, "" if r.success else _failure_message(r))
        errors[STUDY] = _error_checks(r) if r.success else []
        summary.check_errors += errors[STUDY]
        if r.success and all(ok for ok, _ in summary.center_runs.values()):
            done[STUDY] = fps[STUDY]
    fp.record(paths, done=done, check_errors=errors, finished_at=time.strftime("%H:%M on %Y-%m-%d"))
    summary.seconds = time.time() - t0
    return summary


def rebuild(data_dir: str | Path | None = None, instance=None) -> RunSummary:
    """Rebuild the warehouse from the archive alone: the old warehouse is moved aside
    (kept as ``warehouse.duckdb.before-rebuild``) and every center is replayed."""
    from .intake import center_lock, repair_manifest

    paths = data_paths(data_dir)
    repaired = []
    for c in load_centers():  # a torn manifest tail is cut, every archived file recorded again
        with center_lock(paths, c):
            repaired += repair_manifest(paths, c)
    for suffix in ("", ".wal"):
        src = Path(str(paths.warehouse) + suffix)
        if src.exists():
            shutil.move(str(src), str(paths.warehouse) + ".before-rebuild" + suffix)
    summary = run_pipeline(paths.root, take_inbox=False, instance=instance, force=True)
    summary.notes = repaired + summary.notes
    return summary
