"""The privacy boundary (STUDY.md "Privacy"): no name, phone or record number leaves the
working warehouse.

Delivered values stay in the inbox, the archive and the working warehouse's quarantine
(``analytics.quarantine.value``, never published). Every text that leaves - the
analysts' snapshot (delivery and quarantine messages, file names), the study report,
Data Docs, outbox notes, Dagster metadata and logs, CLI output - is built without
delivered values (messages name row, field and rule: "the value in row 12, field sex,
is not a code of the CRF") and passes :func:`redact` as a last line of defence:

* digit runs of 7 or more digits (phones, record numbers) other than a yyyymmdd date;
* record-number-like tokens (letters followed by 6 or more digits, e.g. ``ZY03102594``),
  other than a word joined by ``_`` or ``-`` to a yyyymmdd date (``labs_20250401``;
  ``ZY20250401`` stays a record number);
* a date with its time of day is left as it is, and so is a bracketed ascending range of
  numbers (a median's IQR ``839 [111-1313]``);
* runs of Chinese characters that are not made of the pipeline's own vocabulary (CRF,
  center profiles, vocabularies, the pipeline's message templates): a name cannot be
  told from an unknown word, so both are withheld.

A delivered file name is shown only when it passes the check (a name that follows the
center's pattern - a round, a table and a date - always does); otherwise it is shown as
``file #<hash of the name>`` and the center's own pattern (:func:`safe_file_name`).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from .config import PROJECT_ROOT, CenterProfile

WITHHELD = "‹withheld›"
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_DIGITS = re.compile(r"(?<![0-9A-Za-z])[+]?\d[\d\- ]{5,}\d(?![0-9A-Za-z])")
_MRN_LIKE = re.compile(r"(?<![0-9A-Za-z])[A-Za-z]{1,4}([-_]?)(\d{6,})(?![0-9A-Za-z])")
_DATE8 = re.compile(r"(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
# a date with its time of day (run times, e.g. 2025-04-01 12:30:45): not a phone number
_DATETIME = re.compile(r"(?<![0-9A-Za-z])(19|20)\d\d-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?")
# the pipeline's own text: where its Chinese words come from (the synthetic-data
# generator, which holds name syllables, is not part of it)
_VOCAB_SOURCES = ("schemas/crf.yaml", "study.yaml", "centers", "ibd_pipeline")


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    """Every run of Chinese characters in the pipeline's own text."""
    words: set[str] = set()
    for src in _VOCAB_SOURCES:
        p = PROJECT_ROOT / src
        files = [p] if p.is_file() else sorted(p.rglob("*")) if p.exists() else []
        for f in files:
            if not f.is_file() or f.suffix not in (".yaml", ".yml", ".py", ".html", ".sql") or "synth" in f.parts:
                continue
            words.update(_CJK_RUN.findall(f.read_text(encoding="utf-8", errors="ignore")))
    return frozenset(words)


@lru_cache(maxsize=1)
def _max_word() -> int:
    return max(map(len, vocabulary()), default=1)


def _known_cjk(run: str) -> bool:
    """A run of Chinese characters made of whole vocabulary words (dynamic programming)."""
    vocab, n, w = vocabulary(), len(run), _max_word()
    if run in vocab:
        return True
    ok = [True] + [False] * n
    for i in range(1, n + 1):
        for k in range(max(0, i - w), i):
            if ok[k] and run[k:i] in vocab and (i - k >= 2 or run[k:i] in _SINGLE):
                ok[i] = True
                break
    return ok[n]


# single characters that may stand alone (function words of the message templates);
# a single vocabulary character joined to another is how a name would slip through
_SINGLE = frozenset("的第行列在是否和或与及中个为了不已共无有值表于")


_RANGE = re.compile(r"\s*([1-9]\d*|0)\s*-\s*([1-9]\d*|0)\s*")
_BRACKETS = {"[": "]", "(": ")"}


def _stat_range(m: re.Match) -> bool:
    """A digit run that is a bracketed ascending range of the pipeline's statistics
    (a median's IQR ``839 [111-1313]``, a range ``(12-1450)``), not a phone number: two
    numbers without leading zeros, the first not above the second, in [] or ()."""
    text, i, j = m.string, m.start(), m.end()
    r = _RANGE.fullmatch(m.group(0))
    if r is None or i == 0 or j >= len(text) or _BRACKETS.get(text[i - 1]) != text[j]:
        return False
    return int(r.group(1)) <= int(r.group(2))


def phi_suspect(text: str, names: bool = True) -> bool:
    """True when ``text`` holds something that may identify a patient (see module doc);
    ``names=False`` looks for phone and record numbers only (for fields whose own
    values may be Chinese words, e.g. a staff code 录入员1)."""
    return redact(text, names=names) != text


def redact(text, names: bool = True) -> str:
    """``text`` with every identifier-like part replaced by :data:`WITHHELD`."""
    if text is None:
        return ""
    s = str(text)
    return _redact_short(s, names) if len(s) <= 512 else _redact(s, names)


@lru_cache(maxsize=1 << 16)
def _redact_short(s: str, names: bool) -> str:
    """Cached for short strings: report cells and snapshot values repeat."""
    return _redact(s, names)


def _redact(s: str, names: bool) -> str:

    def digits(m: re.Match) -> str:
        d = re.sub(r"\D", "", m.group(0))
        if len(d) < 7 or (len(d) == 8 and _DATE8.fullmatch(d)) or _stat_range(m):
            return m.group(0)
        return WITHHELD

    cut, parts = 0, []
    for m in _DATETIME.finditer(s):  # a timestamp stays as it is
        parts += [_DIGITS.sub(digits, s[cut : m.start()]), m.group(0)]
        cut = m.end()
    s = "".join(parts) + _DIGITS.sub(digits, s[cut:])
    # a short word joined to a date (labs_20250401, A_20250401 of a delivery's name) is not
    # a record number
    s = _MRN_LIKE.sub(lambda m: m.group(0) if m.group(1) and _DATE8.fullmatch(m.group(2)) else WITHHELD, s)
    if not names:
        return s
    return _CJK_RUN.sub(lambda m: m.group(0) if _known_cjk(m.group(0)) else WITHHELD, s)


def name_hash(name: str) -> str:
    return hashlib.sha256(str(name).encode("utf-8", "surrogateescape")).hexdigest()[:12]


def withheld_name(name: str, profile: CenterProfile | None = None) -> str:
    """How a file whose name may identify someone is shown: its hash and the pattern."""
    pat = f" (not named like {profile.file_pattern})" if profile is not None else ""
    return f"file #{name_hash(name)}{pat}"


def safe_file_name(profile: CenterProfile | None, name: str) -> str:
    """``name`` when it passes the PHI check (a name that follows the center's pattern
    always does: it holds only a round, a table and a date), else its hash and the
    center's own pattern."""
    return withheld_name(name, profile) if phi_suspect(name) else name


def safe_label(text: str) -> str:
    """A delivered header or sheet name, quoted only when it passes the check."""
    return repr(text) if not phi_suspect(text) else WITHHELD


def bilingual(zh: str, en: str) -> str:
    """One reason in Chinese, then English (STUDY.md: coordinators read Chinese)."""
    return f"{zh} / {en}"
