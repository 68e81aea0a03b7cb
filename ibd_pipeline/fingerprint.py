"""What a headless run's results depend on, so that a run with nothing new does nothing
(issue 14: "a run with nothing new in the inboxes"; one-center updates rerun that center).

A center's results are a function of its archive (the manifest: every accepted,
duplicate and rejected file with its content hash; the files the coordinator confirmed),
the pseudonymization key, and the project's code and configuration (the CRF, the center
profiles, the study settings and published figures, the SQL models, the package source,
the versions of the libraries that compute). The pooled study is a function of every
center's fingerprint and the same code and configuration.

After a successful run :func:`record` writes these fingerprints to
``<data dir>/run_state.json`` together with the state of the outputs (size and
modification time of the working warehouse, the analysts' snapshot and the study
report) and the ERROR-level check results of the run. A later run skips a center whose
fingerprint is unchanged and whose inbox gave nothing, and the study when no center ran
and its fingerprint is unchanged - but only while the outputs are exactly as that run
left them: any other writer (a run from the UI, a restored or deleted file) makes
everything run again. Conservative by design: a doubt reruns, never skips.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .config import PROJECT_ROOT, DataPaths, centers_dir, published_path, pseudonym_key_path, settings_path
from .intake import confirmations_path, manifest_path

STATE_FILE = "run_state.json"
# the libraries whose version can change a computed figure (a new install recomputes)
COMPUTING_LIBRARIES = ("dagster", "duckdb", "pandas", "numpy", "scipy", "pandera", "lifelines", "statsmodels",
                       "scikit-learn", "firthmodels", "great-expectations", "duckdb-engine", "sqlalchemy", "matplotlib")
_CODE_SUFFIXES = {".py", ".yaml", ".yml", ".sql", ".html", ".css", ".j2", ".json"}


def _hash_files(h, files) -> None:
    for f in files:
        h.update(str(f.relative_to(PROJECT_ROOT) if f.is_relative_to(PROJECT_ROOT) else f).encode())
        h.update(b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest() if f.is_file() else b"-")


def _tree(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _CODE_SUFFIXES and "__pycache__" not in p.parts)


def _code_and_config(settings: str, published: str, centers: str) -> str:
    h = hashlib.sha256()
    _hash_files(h, _tree(PROJECT_ROOT / "ibd_pipeline") + _tree(PROJECT_ROOT / "schemas")
                + _tree(PROJECT_ROOT / "dbt_like_sql") + _tree(Path(centers)) + [Path(settings), Path(published)])
    for lib in COMPUTING_LIBRARIES:
        try:
            h.update(f"{lib}=={metadata.version(lib)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{lib}:absent".encode())
    return h.hexdigest()


def code_and_config() -> str:
    """One hash of the package source, the project's configuration files and the
    computing libraries' versions (read each time: ~40 ms, and an edited setting counts)."""
    return _code_and_config(str(settings_path()), str(published_path()), str(centers_dir()))


def center_fingerprint(paths: DataPaths, center: str, base: str | None = None) -> str:
    """A center's inputs: its archive journal, its confirmations, the key, code and configuration."""
    h = hashlib.sha256((base or code_and_config()).encode())
    for p in (manifest_path(paths, center), confirmations_path(paths, center), pseudonym_key_path(paths)):
        h.update(p.name.encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest() if p.is_file() else b"-")
    return h.hexdigest()


def study_fingerprint(center_fps: dict[str, str], base: str | None = None) -> str:
    h = hashlib.sha256((base or code_and_config()).encode())
    for c in sorted(center_fps):
        h.update(f"{c}={center_fps[c]};".encode())
    return h.hexdigest()


def outputs_state(paths: DataPaths) -> dict[str, list[int] | None]:
    """Size and modification time (ns) of what the runs write; None when absent."""
    out = {}
    for p in (paths.warehouse, Path(str(paths.warehouse) + ".wal"), paths.snapshot, paths.reports / "study_report.html"):
        try:
            st = p.stat()
            out[p.name] = [st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            out[p.name] = None
    return out


def load_state(paths: DataPaths) -> dict:
    """The last recorded run state ({} when none or unreadable: everything runs)."""
    try:
        state = json.loads((paths.root / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def record(paths: DataPaths, *, done: dict[str, str], check_errors: dict[str, list[str]], finished_at: str) -> None:
    """Write the run state (atomically: a torn write leaves no state, so everything runs).
    ``done``: job (a center, or "study") -> the fingerprint of its inputs at its last
    successful run; ``check_errors``: job -> its ERROR-level check failures then."""
    state = {"done": done, "outputs": outputs_state(paths), "check_errors": check_errors, "finished_at": finished_at}
    tmp = paths.root / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, paths.root / STATE_FILE)



@dataclass
class Plan:
    to_run: list[str]  # centers whose job runs
    run_study: bool
    unchanged: list[str]  # jobs skipped (centers, then the study job's name)
    done: dict[str, str] = field(default_factory=dict)  # still current: job -> fingerprint
    check_errors: dict[str, list[str]] = field(default_factory=dict)  # job -> its last ERROR-level failures


def plan(state: dict, outputs_now: dict, fingerprints: dict[str, str], with_data: list[str], touched: set[str],
         *, study: bool, study_job: str = "study") -> Plan:
    """Which jobs a run runs. ``fingerprints``: job -> the fingerprint of its inputs now
    (every center, and ``study_job``); ``with_data``: the centers asked for that have an
    accepted delivery; ``touched``: centers whose inbox gave something this run.

    A center runs when its inbox gave something or its fingerprint differs from its last
    successful run; the study runs when a center runs or its own fingerprint differs.
    Nothing counts as done when the outputs are not as the recorded run left them."""
    if not state or state.get("outputs") != outputs_now:
        state = {}
    done = dict(state.get("done") or {})
    errors = {k: list(v) for k, v in (state.get("check_errors") or {}).items()}
    to_run = [c for c in with_data if c in touched or done.get(c) != fingerprints[c]]
    run_study = study and (bool(to_run) or (bool(with_data) and done.get(study_job) != fingerprints[study_job]))
    unchanged = [c for c in with_data if c not in to_run] + ([study_job] if study and with_data and not run_study else [])
    return Plan(to_run, run_study, unchanged, done, errors)
