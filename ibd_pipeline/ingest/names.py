"""Delivery file names: ``{round}_{table}_{yyyymmdd}.csv`` and the like, per profile."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

from ibd_pipeline.config import ROUNDS, CenterProfile, Crf

_PLACEHOLDERS = {
    "round": r"(?P<round>[^_/\\]+?)",
    "table": r"(?P<table>[^/\\]+?)",
    "yyyymmdd": r"(?P<date>[^_./\\]+)",
}


WITHDRAWAL_ROUND = "WD"  # a center's withdrawal list (profile ``withdrawals``), not an abstraction round
# a REDCap center's data dictionary (profile ``redcap.dictionary_files``): the companion of
# the records export of the same date, read with it - not a delivery of its own
DICTIONARY_ROUND = "DICT"
#: the discrepancy worklist the pipeline writes to a center's outbox and the coordinator
#: returns filled in (profile ``worklists.files``); read as a round ADJ delivery
DEFAULT_WORKLIST_FILES = "worklist_{yyyymmdd}.xlsx"


def worklist_pattern(profile: CenterProfile) -> str:
    return (profile.raw.get("worklists") or {}).get("files") or DEFAULT_WORKLIST_FILES


def is_worklist_file(profile: CenterProfile, file_name: str) -> bool:
    """Is ``file_name`` the center's (returned) discrepancy worklist?"""
    return bool(_pattern_regex(worklist_pattern(profile)).fullmatch(str(file_name)))


@dataclass(frozen=True)
class DeliveryName:
    round: str
    table: str | None  # None for a workbook holding every table (zju2)
    date: str  # ISO date (YYYY-MM-DD) of the delivery, from the name


def _pattern_regex(pattern: str) -> re.Pattern:
    parts = re.split(r"(\{[^{}]*\})", pattern)
    out = []
    for p in parts:
        if p.startswith("{") and p.endswith("}"):
            name = p[1:-1]
            if name not in _PLACEHOLDERS:
                raise ValueError(f"file pattern {pattern!r} of the profile has an unknown placeholder {p}")
            out.append(_PLACEHOLDERS[name])
        else:
            out.append(re.escape(p))
    return re.compile("".join(out))


def delivery_name_check(crf: Crf):
    """The intake's name check for a study: ``check(profile, name)`` raises ``ValueError``
    with the coordinator's sentence when :func:`parse_delivery_name` rejects the name
    (``intake.accept_file`` and ``drain_inbox`` take it; the study's CRF names the tables)."""

    def check(profile: CenterProfile, file_name: str) -> None:
        parse_delivery_name(profile, file_name, crf=crf)

    return check


def parse_delivery_name(profile: CenterProfile, file_name: str, *, crf: Crf) -> DeliveryName:
    """Parse a delivered file's name through the center's ``files`` pattern.

    Raises ``ValueError`` with a sentence for the coordinator when the name does not
    follow the pattern (unknown round or table, impossible date, folders or control
    characters in the name).
    """
    pattern = profile.file_pattern
    example = (
        pattern.replace("{round}", "A").replace("{table}", "patients").replace("{yyyymmdd}", "20250401")
    )
    if not isinstance(file_name, str) or not file_name:
        raise ValueError("the file has no name")
    if any(c in file_name for c in "/\\") or file_name in (".", "..") or ".." in file_name.split("/"):
        raise ValueError(f"file name {file_name!r} contains a folder part; deliver the file itself, named like {example}")
    if any(ord(c) < 32 or ord(c) == 127 for c in file_name):
        raise ValueError(f"file name {file_name!r} contains control characters; name it like {example}")
    if len(file_name) > 255:
        raise ValueError("file name is longer than 255 characters")
    wd = profile.raw.get("withdrawals") or {}
    if wd.get("files") and (w := _pattern_regex(wd["files"]).fullmatch(file_name)):
        # the center's withdrawal list (record-level delivery semantics: the only way to remove a patient)
        return DeliveryName(round=WITHDRAWAL_ROUND, table=None, date=_name_date(file_name, w.groupdict().get("date")))
    dict_pattern = (profile.raw.get("redcap") or {}).get("dictionary_files")
    if dict_pattern and (dm := _pattern_regex(dict_pattern).fullmatch(file_name)):
        return DeliveryName(round=DICTIONARY_ROUND, table=None, date=_name_date(file_name, dm.groupdict().get("date")))
    if wl := _pattern_regex(worklist_pattern(profile)).fullmatch(file_name):
        # a returned discrepancy worklist (reconcile/worklist.py reads it): the reviewer's adjudications
        return DeliveryName(round="ADJ", table="adjudications", date=_name_date(file_name, wl.groupdict().get("date")))
    m = _pattern_regex(pattern).fullmatch(file_name)
    if not m:
        raise ValueError(
            f"file name {file_name!r} does not follow center {profile.id}'s naming pattern {pattern} (e.g. {example})"
        )
    g = m.groupdict()
    rnd = g.get("round") or profile.raw.get("round")  # a center whose files name no round (REDCap: round A only)
    if rnd not in ROUNDS:
        raise ValueError(
            f"file name {file_name!r}: unknown abstraction round {rnd!r} (expected one of {', '.join(ROUNDS)})"
        )
    table = g.get("table")
    if "table" in g:
        if table not in crf.tables:
            raise ValueError(
                f"file name {file_name!r}: unknown table {table!r} (expected one of {', '.join(crf.tables)})"
            )
        if (rnd == "ADJ") != (table == "adjudications"):
            raise ValueError(
                f"file name {file_name!r}: round ADJ carries only the adjudications table, "
                "and the adjudications table is delivered only in round ADJ"
            )
    return DeliveryName(round=rnd, table=table, date=_name_date(file_name, g.get("date")))


def _name_date(file_name: str, raw_date: str | None) -> str:
    if raw_date is None:
        return ""
    if not re.fullmatch(r"\d{8}", raw_date):
        raise ValueError(f"file name {file_name!r}: the date {raw_date!r} must be 8 digits, yyyymmdd")
    try:
        return _dt.date(int(raw_date[:4]), int(raw_date[4:6]), int(raw_date[6:])).isoformat()
    except ValueError:
        raise ValueError(f"file name {file_name!r}: {raw_date} is not a calendar date (yyyymmdd)") from None
