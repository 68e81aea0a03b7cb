"""``ibd-pipeline verify``: the archive and the warehouse checked against each other.

The archive is the study's source of truth (every accepted file under its SHA-256, the
manifest, a record per file); the working warehouse is rebuilt from it. Checked:

* the manifest: whole lines only (no torn tail), distinct sequence numbers;
* every accepted record: its archive file exists and hashes to its name;
* every archived file: an accepted record in the manifest (else ``rebuild`` would miss it);
* the warehouse: a delivery record for every accepted file and none for a file the
  archive does not hold; staged rows only from accepted files.

Read-only: nothing is repaired here (``rebuild`` repairs the manifest first).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .config import DataPaths
from .intake import manifest_path, read_manifest, records_dir, sha256_file
from .store import reads
from .store import warehouse as wh

_ARCHIVED = re.compile(r"^[0-9a-f]{64}\.[A-Za-z0-9]+$")


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    checked_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        head = f"verify: {self.checked_files} archived file(s) checked, " + (
            "archive and warehouse agree" if self.ok else f"{len(self.problems)} problem(s)"
        )
        return [head] + [f"  - {p}" for p in self.problems]


def verify_archive(paths: DataPaths, center: str, report: VerifyReport) -> set[str]:
    """Check one center's archive; returns the SHA-256 of its accepted files."""
    m = manifest_path(paths, center)
    if m.exists():
        data = m.read_bytes()
        if data and not data.endswith(b"\n"):
            report.problems.append(f"{center}: the manifest ends in a torn record (run `ibd-pipeline rebuild` to repair it)")
        for i, line in enumerate(data.decode("utf-8", "replace").split("\n")[:-1], start=1):
            try:
                json.loads(line)
            except ValueError:
                report.problems.append(f"{center}: manifest line {i} is not a whole record")
    records = read_manifest(paths, center)
    seqs = [d.seq for d in records]
    if len(seqs) != len(set(seqs)):
        report.problems.append(f"{center}: manifest sequence numbers repeat")
    accepted = {d.sha256: d for d in records if d.status == "accepted"}
    for sha, d in accepted.items():
        p = d.archive_path(paths)
        report.checked_files += 1
        if not p.exists():
            report.problems.append(f"{center}: accepted file #{sha[:12]} (seq {d.seq}) is missing from the archive")
        elif sha256_file(p) != sha:
            report.problems.append(f"{center}: archive file #{sha[:12]} does not hash to its name (damaged)")
    archive = paths.archive(center)
    if archive.exists():
        for p in sorted(archive.iterdir()):
            if p.is_file() and _ARCHIVED.match(p.name) and p.name.split(".")[0] not in accepted:
                has_record = (records_dir(paths, center) / f"{p.name.split('.')[0]}.json").exists()
                report.problems.append(
                    f"{center}: archive file #{p.name[:12]} has no manifest record"
                    + (" (its own record exists: `ibd-pipeline rebuild` recovers it)" if has_record else "")
                )
    return set(accepted)


def verify(paths: DataPaths, centers) -> VerifyReport:
    """Archive against manifest, and warehouse against archive (see module docstring)."""
    report = VerifyReport()
    accepted = {c: verify_archive(paths, c, report) for c in centers}
    if not paths.warehouse.exists():
        report.problems.append(f"no working warehouse at {paths.warehouse}: run `ibd-pipeline run` (or `rebuild`)")
        return report
    try:
        con = wh.open_read_only(paths.warehouse)
    except wh.DatabaseError as exc:
        report.problems.append(f"the warehouse cannot be opened read-only ({type(exc).__name__}); is a run holding it?")
        return report
    try:
        if not wh.table_exists(con, "analytics.deliveries"):
            report.problems.append("the warehouse has no delivery records: run `ibd-pipeline rebuild`")
            return report
        for c in centers:
            loaded = reads.loaded_deliveries(con, c)
            for sha in sorted(accepted[c] - loaded):
                report.problems.append(f"{c}: accepted file #{sha[:12]} is not in the warehouse (run `ibd-pipeline run`)")
            for sha in sorted(loaded - accepted[c]):
                report.problems.append(f"{c}: the warehouse holds file #{sha[:12]}, which the archive does not")
            for t in reads.staging_tables(con):
                ids = reads.staged_delivery_ids(con, t, c)
                for sha in sorted(ids - accepted[c] - {None}):
                    report.problems.append(f"{c}: staging.{t} holds rows of file #{str(sha)[:12]}, which the archive does not")
    finally:
        con.close()
    return report
