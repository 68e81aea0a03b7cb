"""The quality suite frame by frame: a frame whose input tables are unchanged is not
validated again (issue 14: only what changed is recomputed).

A one-center correction of lab values changes ``core.labs`` and nothing else the suite
reads, yet the whole suite used to run again (133 expectations, ~9 s of the update). The
suite's frames (:mod:`ibd_pipeline.quality.frames`) each read one to three tables, so
after the run of a frame its result rows and its Great Expectations validation results
are kept in ``cache_dir`` (one JSON file per frame) under the frame's *fingerprint*:

* the content **and row order** of every table the frame reads (:func:`frame_inputs`;
  the order matters because the failing rows reported as ``examples`` are the first ones
  in the table's order), counted in the database (``hash(rowid, row)``: no row leaves
  DuckDB);
* the frame's checks as declared (id, expectation, arguments, threshold, ...);
* ``version``: the caller's code-and-configuration hash (settings, checks.yaml, the
  package and the libraries' versions).

A frame with the same fingerprint gets its saved rows back, and its saved validation
results go back into the run's Great Expectations store, so the Data Docs built after
list every check of the suite, the reused ones with the time they were validated. The
rows are those a new validation would give: the same checks on the same rows in the same
order (tests/quality/test_quality_reuse.py compares with a full run).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from .checks import QualityCheck

log = logging.getLogger(__name__)

FORMAT = 1  # of the cached files; another value is never read


def frame_inputs(frame: str) -> list[str]:
    """The tables a frame reads (:func:`ibd_pipeline.quality.sql.frame_sql`): its table,
    core.patients when joined with it, and for ``baseline@included`` the eligibility, the
    patients and the assessments."""
    base = frame.partition("@")[0]
    if base == "baseline":
        return ["analytics.eligibility", "core.assessments", "core.patients"]
    table, _, join = base.partition("+")
    return sorted({table, "core.patients"} if join else {table})


def _table_state(cur, qualified: str) -> str:
    schema, name = qualified.split(".", 1)
    kind = cur.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                       [schema, name]).fetchone()
    if kind is None:
        return f"{qualified}:absent"
    # a view has no rowid: its rows in the order it gives them
    order = "rowid, " if kind[0] == "BASE TABLE" else ""
    n, h = cur.execute(f'SELECT count(*), coalesce(sum(hash({order}t)::HUGEINT), 0) FROM "{schema}"."{name}" t').fetchone()
    return f"{qualified}:{n}:{h}"


def _check_text(c: QualityCheck) -> str:
    return json.dumps([c.check_id, c.frame, repr(c)], default=str)


class SuiteCache:
    """The saved results of the suite's frames (module docstring)."""

    def __init__(self, cache_dir: Path | str, version: str, enabled: bool = True):
        self.dir = Path(cache_dir)
        self.version = version
        self.enabled = enabled  # False: nothing is reused (every frame validated), all saved
        self.reused: list[str] = []

    def fingerprint(self, cur, frame: str, checks: list[QualityCheck]) -> str:
        h = hashlib.sha256(f"{FORMAT}|{self.version}|{frame}".encode())
        for t in frame_inputs(frame):
            h.update(_table_state(cur, t).encode() + b";")
        for c in checks:
            h.update(_check_text(c).encode() + b";")
        return h.hexdigest()

    def _path(self, frame: str) -> Path:
        from .suite import asset_name

        return self.dir / f"{asset_name(frame)}.json"

    def load(self, frame: str, fingerprint: str, checks: list[QualityCheck]) -> dict | None:
        """``{"rows": {check_id: row}, "gx": [[key, result], ...]}`` saved for this
        fingerprint with a row for every check, else None."""
        if not self.enabled:
            return None
        p = self._path(frame)
        try:
            saved = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if saved.get("format") != FORMAT or saved.get("fingerprint") != fingerprint:
            return None
        rows = saved.get("rows") or {}
        if any(c.check_id not in rows for c in checks):
            return None
        return saved

    def save(self, frame: str, fingerprint: str, rows: dict[str, dict], gx_results: list) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        p = self._path(frame)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format": FORMAT, "fingerprint": fingerprint, "rows": rows, "gx": gx_results},
                                  default=str), encoding="utf-8")
        tmp.replace(p)

    def forget(self, frame: str) -> None:
        self._path(frame).unlink(missing_ok=True)
