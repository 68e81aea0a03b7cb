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

Issue 18: a file is archived only when its content is complete (a CSV whose last row
is torn, a workbook whose zip directory is missing, is held and reported - a check that
does not depend on the settle time alone); one center's intake runs under a file lock
(two ``ibd-pipeline run`` never take the same file or repeat a sequence number); every
accepted file has a record beside it (``records/<sha256>.json``), so a manifest with a
torn tail is repaired (:func:`repair_manifest`) and ``rebuild`` recovers every accepted
file; an unreadable file, an inbox the pipeline cannot write, and entries in the wrong
place (inbox root, unknown center, subfolder, symlink) get a note in the outbox and a
line in the run output (:func:`stray_entries`). File names are shown only after the PHI
check (``privacy.safe_file_name``).
"""

from __future__ import annotations

import contextlib
import fcntl
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
from .privacy import redact, safe_file_name

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
    """What one look did with one inbox entry. ``file_name`` is the name as it may be
    shown (PHI-checked); ``inbox_name`` the entry's real name (never printed)."""

    center: str
    file_name: str
    # accepted | duplicate | rejected | retry (look again) | held (incomplete content) |
    # unreadable | blocked (inbox not writable) | ignored (wrong place) | gone (taken by another run)
    status: str
    message: str
    delivery: Delivery | None = None
    inbox_name: str = ""


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


def confirmations_path(paths: DataPaths, center: str) -> Path:
    """``archive/<center>/confirmed.jsonl``: files the coordinator confirmed (kept in the
    archive, so ``rebuild`` applies them too)."""
    return paths.archive(center) / "confirmed.jsonl"


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


def records_dir(paths: DataPaths, center: str) -> Path:
    return paths.archive(center) / "records"


@contextlib.contextmanager
def center_lock(paths: DataPaths, center: str):
    """One center's intake at a time, across processes (``flock`` on the archive's
    ``.intake.lock``): two concurrent runs never take the same file twice nor repeat a
    manifest sequence number."""
    archive = paths.archive(center)
    archive.mkdir(parents=True, exist_ok=True)
    with open(archive / ".intake.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def repair_manifest(paths: DataPaths, center: str) -> list[str]:
    """Make the manifest whole again (call under :func:`center_lock`): a torn last line
    (power loss, full disk) is moved to ``manifest.torn-<time>`` and cut off, and every
    accepted file whose record (``records/<sha256>.json``) is not in the manifest is
    recorded again. Returns what was repaired (empty when nothing was)."""
    notes: list[str] = []
    p = manifest_path(paths, center)
    if p.exists():
        data = p.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            torn = p.with_name(f"manifest.torn-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}")
            torn.write_bytes(data[cut:])
            with open(p, "r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())
            notes.append(f"manifest of {center}: a torn last record ({len(data) - cut} bytes) was cut off and kept in {torn.name}")
    rec = records_dir(paths, center)
    if rec.is_dir():
        listed = {d.sha256 for d in read_manifest(paths, center) if d.status == "accepted"}
        for r in sorted(rec.glob("*.json")):
            try:
                d = Delivery(**json.loads(r.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                notes.append(f"record {r.name} of {center} is unreadable; its file stays in the archive")
                continue
            if d.sha256 in listed or not d.archive_path(paths).exists():
                continue
            seq = len(read_manifest(paths, center)) + 1
            d = Delivery(**{**asdict(d), "seq": seq})
            _write_record(paths, d)
            _append_line(p, d)
            listed.add(d.sha256)
            notes.append(f"manifest of {center}: accepted file #{d.sha256[:12]} was missing from the manifest and is recorded again (seq {seq})")
    return notes


def _append_line(p: Path, d: Delivery) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(d), ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _write_record(paths: DataPaths, d: Delivery) -> None:
    """The accepted file's own record beside the archive (atomic: temporary + rename)."""
    rec = records_dir(paths, d.center)
    rec.mkdir(parents=True, exist_ok=True)
    tmp = rec / f".{d.sha256}.json.tmp"
    tmp.write_text(json.dumps(asdict(d), ensure_ascii=False), encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, rec / f"{d.sha256}.json")


def _append_manifest(paths: DataPaths, center: str, d: Delivery) -> None:
    p = manifest_path(paths, center)
    if p.exists() and p.stat().st_size and not p.read_bytes().endswith(b"\n"):
        repair_manifest(paths, center)  # never append onto a torn line
    if d.status == "accepted":
        _write_record(paths, d)
    _append_line(p, d)


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


def incomplete_reason(path: Path, profile: CenterProfile) -> str | None:
    """Why the content of a file looks cut off (a copy that stalled or was interrupted),
    independent of how long it has been unchanged: a CSV whose last record is torn (an
    open quoted value, or fewer fields than the header line and no line end), a
    workbook whose zip central directory cannot be read. None when it looks whole."""
    fmt = profile.format
    try:
        if fmt == "xlsx" or path.suffix.lower() == ".xlsx":
            import zipfile

            with open(path, "rb") as fh:
                if fh.read(4) != b"PK\x03\x04":
                    return None  # not a zip at all: the reader explains what it is
            try:
                with zipfile.ZipFile(path) as z:
                    z.infolist()
            except (zipfile.BadZipFile, OSError, EOFError):
                return "the workbook ends before its zip directory (the copy is incomplete)"
            return None
        if fmt == "csv":
            from .ingest.readers import csv_tail_problem

            return csv_tail_problem(path, profile.encoding or "utf-8-sig")
    except OSError:
        return None  # unreadable files are handled by the caller
    return None


def _note_once(paths: DataPaths, center: str, key: str, shown: str, title: str, body: str) -> None:
    """An outbox note written once per (entry, state), not at every look."""
    out = paths.outbox(center)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / f".note-{hashlib.sha256(key.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}"
    if marker.exists():
        return
    write_outbox_message(paths, center, shown, title, body)
    marker.touch()


def accept_file(
    paths: DataPaths,
    profile: CenterProfile,
    name: str,
    name_check,
) -> IntakeOutcome:
    """Take one complete file from a center's inbox into its archive (under the
    center's intake lock; see :func:`_accept_file`)."""
    try:
        with center_lock(paths, profile.id):
            repair_manifest(paths, profile.id)
            return _accept_file(paths, profile, name, name_check)
    except OSError as exc:  # archive not writable, disk full ...: nothing recorded, reported
        return IntakeOutcome(
            profile.id, safe_file_name(profile, display_name(name)), "retry",
            f"the archive of {profile.id} cannot be written ({type(exc).__name__}); check the data directory's "
            "permissions and free space", inbox_name=name,
        )


def _accept_file(paths: DataPaths, profile: CenterProfile, name: str, name_check) -> IntakeOutcome:
    """``name_check(profile, name)`` raises ``ValueError`` with a message when the name does
    not follow the center's pattern (the study's ``ingest.delivery_name_check(crf)``)."""
    center = profile.id
    inbox = paths.inbox(center)
    src = inbox / name
    archive = paths.archive(center)
    archive.mkdir(parents=True, exist_ok=True)
    shown = safe_file_name(profile, display_name(name))

    def outcome(status, message, d=None):
        return IntakeOutcome(center, shown, status, message, d, inbox_name=name)

    # Only a plain entry of this inbox is ever read, moved or removed: a name that
    # points elsewhere ("../x", "a/b", "..") is rejected without touching its target.
    in_inbox = name not in ("", ".", "..") and src.parent == inbox and "/" not in name and "\x00" not in name
    reason = unsafe_name_reason(name)
    if reason is None:
        try:
            name_check(profile, name)
        except ValueError as exc:
            reason = str(exc)
    if reason is not None:  # the name itself is never repeated unless it passed the PHI check
        reason = redact(reason.replace(repr(name), repr(shown)).replace(name, shown))
    if reason is None and src.is_symlink():
        reason = "the file is a symbolic link"
    if reason is None and not os.path.lexists(src):
        return outcome("gone", "taken by another run or removed before it was taken")
    if reason is None and not src.is_file():
        return outcome("retry", "the file is gone or is not a regular file")
    if reason is None:
        if not os.access(src, os.R_OK):
            return _unreadable(paths, profile, name, shown, "permission denied")
        held = incomplete_reason(src, profile)
        if held is not None:
            st = src.stat()
            _note_once(
                paths, center, f"held\x1f{name}\x1f{st.st_size}\x1f{st.st_mtime_ns}", shown, "held",
                f"The file was not taken yet: {held}. Copy the whole file into the inbox again "
                "(it is taken as soon as it is complete).\n文件暂未接收：内容不完整（复制可能中断）。请重新完整复制该文件到收件箱。",
            )
            return outcome("held", held)
    try:
        sha = sha256_file(src) if reason is None else hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
    except PermissionError:
        return _unreadable(paths, profile, name, shown, "permission denied")
    except OSError as exc:  # removed or replaced since the inbox was scanned
        return outcome("retry", f"the file cannot be read ({type(exc).__name__}); next look")
    seq = len(read_manifest(paths, center)) + 1
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
            pass  # gone meanwhile, or the inbox is not writable: the rejection is still recorded
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
        return outcome("rejected", reason, d)

    ext = "".join(Path(name).suffixes[-1:]).lower() or ".dat"
    archive_name = f"{sha}{ext}"
    known = {d.sha256: d for d in accepted_deliveries(paths, center)}
    try:
        size = src.stat().st_size
    except OSError as exc:
        return outcome("retry", f"the file cannot be read ({type(exc).__name__}); next look")
    if sha in known:
        first = known[sha]
        msg = f"identical (SHA-256) to {first.file_name} received {first.received_at}; not loaded again"
        removed = _remove_from_inbox(src)
        if removed is not None:  # an archived file the inbox cannot give up: one line, no note per run
            return outcome("blocked", f"already archived (identical to {first.file_name}); {removed}")
        d = Delivery(center, seq, sha, name, _now(), size, archive_name, "duplicate", msg)
        _append_manifest(paths, center, d)
        write_outbox_message(paths, center, name, "duplicate", msg + "\n与已接收的文件完全相同，未重复导入。")
        return outcome("duplicate", msg, d)

    target = archive / archive_name
    tmp = archive / f".{archive_name}.tmp"
    try:
        if not target.exists():
            shutil.copyfile(src, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            if sha256_file(tmp) != sha:  # changed while copying: leave it for the next look
                tmp.unlink()
                return outcome("retry", "file changed while being archived")
            os.replace(tmp, target)
    except OSError as exc:  # removed while being archived, disk full ...: nothing recorded, next look
        tmp.unlink(missing_ok=True)
        return outcome("retry", f"the file could not be archived ({type(exc).__name__}); next look")
    d = Delivery(center, seq, sha, name, _now(), size, archive_name, "accepted", "")
    _append_manifest(paths, center, d)
    removed = _remove_from_inbox(src)
    return outcome("accepted", "" if removed is None else f"archived; but {removed}", d)


def _remove_from_inbox(src: Path) -> str | None:
    """Remove an archived file from the inbox; a sentence naming cause and fix when the
    inbox does not allow it (the file is archived and recorded all the same)."""
    try:
        src.unlink(missing_ok=True)
        return None
    except OSError as exc:
        return (
            f"it cannot be removed from {src.parent} ({type(exc).__name__}): give the pipeline's user write "
            f"permission on that folder (e.g. chmod u+w {src.parent})"
        )


def _unreadable(paths: DataPaths, profile: CenterProfile, name: str, shown: str, why: str) -> IntakeOutcome:
    src = paths.inbox(profile.id) / name
    try:
        st = src.stat()
        key = f"unreadable\x1f{name}\x1f{st.st_size}\x1f{st.st_mtime_ns}"
    except OSError:
        key = f"unreadable\x1f{name}"
    msg = f"the file cannot be read ({why}); it stays in the inbox until the pipeline's user may read it (e.g. chmod a+r)"
    _note_once(paths, profile.id, key, shown, "unreadable",
               f"The file could not be read: {why}. Make it readable (or deliver it again).\n文件无法读取（权限不足）。请修改文件权限或重新提交。")
    return IntakeOutcome(profile.id, shown, "unreadable", msg, inbox_name=name)


# statuses after which a look need not wait for the entry (it was dealt with, or cannot change by waiting)
SETTLED = ("accepted", "duplicate", "rejected", "held", "unreadable", "blocked", "gone", "ignored")


def take_complete_files(
    paths: DataPaths,
    profile: CenterProfile,
    previous: dict[str, list[int]] | None,
    settle_seconds: float,
    name_check,
) -> tuple[list[IntakeOutcome], dict[str, list[int]]]:
    """One look at a center's inbox: accept the complete files, return the outcomes
    (a file taken by a concurrent run is not reported) and the snapshot to compare
    with at the next look."""
    snap = inbox_snapshot(paths.inbox(profile.id))
    outcomes = [accept_file(paths, profile, n, name_check) for n in complete_files(snap, previous, settle_seconds)]
    taken = {o.inbox_name or o.file_name for o in outcomes if o.status in SETTLED}
    return [o for o in outcomes if o.status != "gone"], {k: v for k, v in snap.items() if k not in taken}


def inbox_blocked(paths: DataPaths, center: str) -> str | None:
    """Why the pipeline cannot take files out of a center's inbox (cause and fix), or None."""
    inbox = paths.inbox(center)
    if inbox.exists() and not os.access(inbox, os.W_OK | os.X_OK):
        return (
            f"the inbox {inbox} is not writable by the pipeline's user, so no file can be moved to the archive; "
            f"fix: chmod u+wx {inbox} (or run the pipeline as the folder's owner)"
        )
    return None


def drain_inbox(
    paths: DataPaths, profile: CenterProfile, settle_seconds: float, name_check, max_wait: float = 60.0
) -> list[IntakeOutcome]:
    """Headless intake: take every complete file now in the inbox, waiting (up to
    ``max_wait``) for files that are still settling (never for held, unreadable or
    blocked ones)."""
    blocked = inbox_blocked(paths, profile.id)
    if blocked is not None:
        return [IntakeOutcome(profile.id, "", "blocked", blocked)]
    outcomes: list[IntakeOutcome] = []
    previous = None
    deadline = time.time() + max_wait
    while True:
        got, previous = take_complete_files(paths, profile, previous, settle_seconds, name_check)
        outcomes.extend(got)
        if not previous or time.time() > deadline:
            return outcomes
        time.sleep(min(settle_seconds, 1.0) or 0.2)


def stray_entries(paths: DataPaths, centers) -> list[IntakeOutcome]:
    """Inbox entries no center's intake takes - files at the inbox root, folders of an
    unknown center, subfolders, symbolic links, devices - each reported once in the
    outbox (the center's, else ``outbox/_inbox``) and every time in the run output."""
    root = paths.root / "inbox"
    out: list[IntakeOutcome] = []
    if not root.exists():
        return out
    centers = set(centers)

    def report(center: str | None, name: str, kind: str, fix: str) -> None:
        shown = safe_file_name(None, display_name(name))
        msg = f"{kind}; it is ignored: {fix}"
        _note_once(paths, center or "_inbox", f"ignored\x1f{center}\x1f{name}", shown, "ignored",
                   msg + "\n该项目未被处理：请将文件放入本中心的收件箱 inbox/<中心>/ 并使用规定的文件名。")
        out.append(IntakeOutcome(center or "-", shown, "ignored", msg, inbox_name=name))

    for e in sorted(os.scandir(root), key=lambda e: e.name):
        if is_ignored(e.name):
            continue
        if e.is_dir(follow_symlinks=False) and e.name in centers:
            for f in sorted(os.scandir(e.path), key=lambda f: f.name):
                if is_ignored(f.name):
                    continue
                if f.is_symlink():
                    continue  # a link named like a delivery is rejected by the intake itself
                if f.is_dir(follow_symlinks=False):
                    report(e.name, f.name, "a folder inside the inbox", "put the files themselves into inbox/" + e.name)
                elif not f.is_file(follow_symlinks=False):
                    report(e.name, f.name, "not a regular file (a pipe or device)", "deliver a regular file")
            continue
        if e.is_symlink():
            report(None, e.name, "a symbolic link at the inbox root", "copy the file itself into inbox/<center>/")
        elif e.is_dir(follow_symlinks=False):
            report(None, e.name, "a folder for an unknown center", f"centers are {', '.join(sorted(centers))}")
        else:
            report(None, e.name, "a file at the inbox root", "put it into inbox/<center>/ of its center")
    return out
