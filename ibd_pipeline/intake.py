"""The drop folder: coordinators' files move from ``inbox/<center>/`` into the archive.

STUDY.md "Who uses it": coordinators drop extract files into their center's inbox. A
file is taken only when complete (size and modification time unchanged since the
previous look, and older than the settle time); editor lock files and temporary
names are ignored. Each accepted file is copied to ``archive/<center>/<sha256>.<ext>``
and recorded in ``archive/<center>/manifest.jsonl`` (append-only: the archive alone
rebuilds the warehouse). A file identical to one already loaded is recorded as a
duplicate and skipped; a file whose name does not follow the center's pattern is
rejected with a message in the outbox. Nothing here touches the warehouse, so the
sensor can run while a pipeline run holds it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import time
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from .config import CenterProfile, DataPaths

IGNORED_PATTERNS = ("~$*", ".~lock*", ".*", "*.tmp", "*.part", "*.crdownload", "*.swp", "*~")


@dataclass(frozen=True)
class Delivery:
    """One accepted file in a center's archive."""

    center: str
    seq: int
    sha256: str
    file_name: str
    received_at: str
    size: int
    archive_name: str
    status: str = "accepted"  # accepted | duplicate | rejected
    message: str = ""

    def archive_path(self, paths: DataPaths) -> Path:
        return paths.archive(self.center) / self.archive_name


@dataclass(frozen=True)
class IntakeOutcome:
    center: str
    file_name: str
    status: str  # accepted | duplicate | rejected
    message: str
    delivery: Delivery | None = None


def is_ignored(name: str) -> bool:
    """Editor lock files, hidden files and temporary names are never taken."""
    return any(fnmatch.fnmatch(name, p) for p in IGNORED_PATTERNS)


def unsafe_name_reason(name: str) -> str | None:
    """Why a file name cannot be accepted at all (path tricks, control characters)."""
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name:
        return "the name contains a path separator or '..'"
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        return "the name contains control characters"
    if len(name.encode("utf-8")) > 200:
        return "the name is longer than 200 bytes"
    return None


def display_name(name: str) -> str:
    """A file name as text that can be recorded and shown: bytes of a name that are not
    UTF-8 (``os.scandir`` hands them over as lone surrogates) become ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ manifest
def manifest_path(paths: DataPaths, center: str) -> Path:
    return paths.archive(center) / "manifest.jsonl"


def read_manifest(paths: DataPaths, center: str) -> list[Delivery]:
    """Every intake event of a center, in arrival order (a torn last line is skipped)."""
    p = manifest_path(paths, center)
    if not p.exists():
        return []
    out = []
    # records end with "\n" only: a file name may hold other line breaks (U+0085, U+2028)
    for line in p.read_text(encoding="utf-8").split("\n"):
        line = line.strip()
        if not line:
            continue
        try:
            out.append(Delivery(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return out


def accepted_deliveries(paths: DataPaths, center: str) -> list[Delivery]:
    """The accepted (archived, distinct) deliveries of a center in arrival order."""
    return [d for d in read_manifest(paths, center) if d.status == "accepted"]


def _append_manifest(paths: DataPaths, center: str, d: Delivery) -> None:
    p = manifest_path(paths, center)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(d), ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_outbox_message(paths: DataPaths, center: str, file_name: str, title: str, body: str) -> Path:
    """A short text note for the coordinator (UTF-8 with BOM so Excel/Notepad show Chinese)."""
    out = paths.outbox(center)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in file_name)[:80]
    p = out / f"{stamp}_{safe}.{title}.txt"
    p.write_text(f"{title.upper()}: {file_name}\n\n{body}\n", encoding="utf-8-sig")
    return p


# ------------------------------------------------------------------ scanning
def inbox_snapshot(inbox: Path) -> dict[str, list[int]]:
    """{file name: [size, mtime_ns]} of the candidate files in an inbox."""
    snap: dict[str, list[int]] = {}
    if not inbox.exists():
        return snap
    for entry in os.scandir(inbox):
        if is_ignored(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        st = entry.stat(follow_symlinks=False)
        snap[entry.name] = [st.st_size, st.st_mtime_ns]
    return snap


def complete_files(
    current: dict[str, list[int]],
    previous: dict[str, list[int]] | None,
    settle_seconds: float,
    now: float | None = None,
) -> list[str]:
    """Files that are complete: unchanged since the previous look (when there was one)
    and not modified for ``settle_seconds``. A file still being written changes size or
    modification time between looks and is left for a later tick."""
    now = time.time() if now is None else now
    ready = []
    for name, (size, mtime_ns) in sorted(current.items()):
        if previous is not None and previous.get(name) != [size, mtime_ns]:
            continue
        if now - mtime_ns / 1e9 < settle_seconds:
            continue
        ready.append(name)
    return ready


def accept_file(
    paths: DataPaths,
    profile: CenterProfile,
    name: str,
    name_check=None,
) -> IntakeOutcome:
    """Take one complete file from a center's inbox into its archive.

    ``name_check(profile, name)`` raises ``ValueError`` with a message when the name does
    not follow the center's pattern (defaults to ``ingest.parse_delivery_name``)."""
    center = profile.id
    inbox = paths.inbox(center)
    src = inbox / name
    archive = paths.archive(center)
    archive.mkdir(parents=True, exist_ok=True)
    # Only a plain entry of this inbox is ever read, moved or removed: a name that
    # points elsewhere ("../x", "a/b", "..") is rejected without touching its target.
    in_inbox = name not in ("", ".", "..") and src.parent == inbox and "/" not in name and "\x00" not in name
    reason = unsafe_name_reason(name)
    if reason is None:
        if name_check is None:
            from .ingest import parse_delivery_name as name_check  # noqa: N813
        try:
            name_check(profile, name)
        except ValueError as exc:
            reason = str(exc)
    if reason is None and src.is_symlink():
        reason = "the file is a symbolic link"
    if reason is None and not src.is_file():
        return IntakeOutcome(center, name, "retry", "the file is gone or is not a regular file")
    try:
        sha = sha256_file(src) if reason is None else hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
    except OSError as exc:  # removed or replaced since the inbox was scanned, unreadable
        return IntakeOutcome(center, name, "retry", f"the file cannot be read ({type(exc).__name__}); next look")
    seq = len(read_manifest(paths, center)) + 1
    shown = display_name(name)
    if reason is not None:
        rejected_dir = archive / "rejected"
        rejected_dir.mkdir(exist_ok=True)
        target = rejected_dir / f"{seq:06d}_{sha[:16]}"
        try:
            if in_inbox and src.is_symlink():
                src.unlink()  # the link only, never its target
            elif in_inbox and src.is_file():
                shutil.move(str(src), target)
        except OSError:
            pass  # gone meanwhile: the rejection is still recorded
        d = Delivery(center, seq, sha, shown, _now(), 0, str(target.relative_to(archive)), "rejected", reason)
        _append_manifest(paths, center, d)
        write_outbox_message(
            paths,
            center,
            shown,
            "rejected",
            f"The file was not accepted: {reason}.\n"
            f"Expected file names for this center: {profile.file_pattern}\n"
            f"文件未被接收：文件名不符合本中心的命名规则 ({profile.file_pattern})。",
        )
        return IntakeOutcome(center, name, "rejected", reason, d)

    ext = "".join(Path(name).suffixes[-1:]).lower() or ".dat"
    archive_name = f"{sha}{ext}"
    known = {d.sha256: d for d in accepted_deliveries(paths, center)}
    try:
        size = src.stat().st_size
    except OSError as exc:
        return IntakeOutcome(center, name, "retry", f"the file cannot be read ({type(exc).__name__}); next look")
    if sha in known:
        first = known[sha]
        msg = f"identical (SHA-256) to {first.file_name} received {first.received_at}; not loaded again"
        d = Delivery(center, seq, sha, name, _now(), size, archive_name, "duplicate", msg)
        _append_manifest(paths, center, d)
        src.unlink(missing_ok=True)
        write_outbox_message(paths, center, name, "duplicate", msg + "\n与已接收的文件完全相同，未重复导入。")
        return IntakeOutcome(center, name, "duplicate", msg, d)

    target = archive / archive_name
    tmp = archive / f".{archive_name}.tmp"
    try:
        if not target.exists():
            shutil.copyfile(src, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            if sha256_file(tmp) != sha:  # changed while copying: leave it for the next look
                tmp.unlink()
                return IntakeOutcome(center, name, "retry", "file changed while being archived")
            os.replace(tmp, target)
    except OSError as exc:  # removed while being archived, disk full ...: nothing recorded, next look
        tmp.unlink(missing_ok=True)
        return IntakeOutcome(center, name, "retry", f"the file could not be archived ({type(exc).__name__}); next look")
    d = Delivery(center, seq, sha, name, _now(), size, archive_name, "accepted", "")
    _append_manifest(paths, center, d)
    src.unlink(missing_ok=True)
    return IntakeOutcome(center, name, "accepted", "", d)


def take_complete_files(
    paths: DataPaths,
    profile: CenterProfile,
    previous: dict[str, list[int]] | None,
    settle_seconds: float,
) -> tuple[list[IntakeOutcome], dict[str, list[int]]]:
    """One look at a center's inbox: accept the complete files, return the outcomes
    and the snapshot to compare with at the next look."""
    snap = inbox_snapshot(paths.inbox(profile.id))
    outcomes = [accept_file(paths, profile, n) for n in complete_files(snap, previous, settle_seconds)]
    taken = {o.file_name for o in outcomes if o.status != "retry"}
    return outcomes, {k: v for k, v in snap.items() if k not in taken}


def drain_inbox(paths: DataPaths, profile: CenterProfile, settle_seconds: float, max_wait: float = 60.0) -> list[IntakeOutcome]:
    """Headless intake: take every complete file now in the inbox, waiting (up to
    ``max_wait``) for files that are still settling."""
    outcomes: list[IntakeOutcome] = []
    previous = None
    deadline = time.time() + max_wait
    while True:
        got, previous = take_complete_files(paths, profile, previous, settle_seconds)
        outcomes.extend(got)
        if not previous or time.time() > deadline:
            return outcomes
        time.sleep(min(settle_seconds, 1.0) or 0.2)
