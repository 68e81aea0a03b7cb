"""Canonical text forms, record keys and the parser of adjudicated values.

Shared by the comparison (what is compared and how a value is shown), the worklist
(what the reviewer reads) and the adjudication (what the reviewer may write back).

Canonical text of a value (``to_text``): dates ISO ``YYYY-MM-DD``; booleans
``true``/``false``; ints as digits; floats with at most 15 significant digits (so the
rounding noise of a unit conversion, ``1.2 * 10 = 12.000000000000002``, reads ``12``);
codes and strings trimmed; missing (and empty text) is ``None``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Mapping

import pandas as pd

from ibd_pipeline.config import Crf

#: columns the staging layer adds to a canonical frame (dropped from reconciled tables)
DELIVERY_COLUMNS = ("round", "delivery_id", "source_file", "source_row")
#: fields never compared besides key fields and ``phi: drop`` fields
NOT_COMPARED = frozenset({"mrn", "patient_id", "abstractor_id"})
#: the ``field`` of a discrepancy / adjudication about a whole record (present in one round only)
WHOLE_RECORD = "*"
#: the record_key of the one ``patients`` record of a patient (its key is ``mrn`` only)
PATIENT_RECORD_KEY = "patient"
PRESENT, ABSENT = "present", "absent"
#: resolved_value spellings that say "the record does not exist" for a ``*`` adjudication
#: (besides empty); any other non-empty text says it exists.
ABSENT_TOKENS = frozenset({"absent", "false", "0", "no", "none", "否", "无", "不存在", "缺失"})
#: relative tolerance of the float comparison: exact up to floating-point rounding
FLOAT_RTOL = 1e-9

_BOOL_TOKENS = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def is_missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # list-likes are not missing
        return False


def is_plain_number(text: str) -> bool:
    return bool(_PLAIN_NUMBER.fullmatch(text))


def format_float(x: float) -> str:
    return format(float(x), ".15g")


def to_text(v: Any, ftype: str) -> str | None:
    """The canonical text of one value of a field of type ``ftype`` (None if missing)."""
    if is_missing(v):
        return None
    if ftype == "date":
        if isinstance(v, str):
            v = parse_date(v)
        return pd.Timestamp(v).strftime("%Y-%m-%d")
    if ftype == "bool":
        if isinstance(v, str):
            v = _BOOL_TOKENS.get(v.strip().lower(), v)
            if isinstance(v, str):
                return v.strip() or None
        return "true" if bool(v) else "false"
    if ftype == "int":
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v).strip() or None
        return str(int(f)) if f.is_integer() else format_float(f)
    if ftype == "float":
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v).strip() or None
        return None if math.isnan(f) else format_float(f)
    s = str(v).strip()
    return s or None


def column_text(s: pd.Series, ftype: str) -> pd.Series:
    """``to_text`` over a column (object Series of str/None)."""
    if ftype == "date" and pd.api.types.is_datetime64_any_dtype(s):
        out = s.dt.strftime("%Y-%m-%d")
        return out.astype(object).where(s.notna(), None)
    return s.map(lambda v: to_text(v, ftype)).astype(object)


def compared_fields(crf: Crf, table: str) -> dict[str, str]:
    """Compared fields of a CRF table -> field type, in CRF order: every field except the
    key fields, mrn/patient_id, abstractor_id, ``phi: drop`` and ``compared: false`` fields. Labs also compare
    the detection-limit ``qualifier`` (a code, right after ``value``)."""
    spec = crf.table(table)
    out: dict[str, str] = {}
    for name, f in spec.fields.items():
        if name in spec.key or name in NOT_COMPARED or f.phi == "drop" or not f.compared:
            continue
        out[name] = f.type
        if table == "labs" and name == "value":
            out["qualifier"] = "code"
    return out


def record_keys(df: pd.DataFrame, table: str, crf: Crf) -> pd.Series:
    """The record_key of every row: key fields other than mrn in CRF order, canonical
    text, joined by '|' (``patients``: the literal ``patient``)."""
    spec = crf.table(table)
    kf = [k for k in spec.key if k != "mrn"]
    if not kf:
        return pd.Series(PATIENT_RECORD_KEY, index=df.index, dtype=object)
    parts = [column_text(df[k], spec.fields[k].type).fillna("") for k in kf]
    return pd.Series(["|".join(t) for t in zip(*parts)], index=df.index, dtype=object)


# ------------------------------------------------------------------ parsing
class ParseError(ValueError):
    """A resolved value that does not fit its field; ``rule`` names the failed rule."""

    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule


def parse_date(text: str) -> pd.Timestamp:
    s = text.strip()
    for sep in ("T", " "):  # a date with a midnight time (xlsx cells read as text)
        head, _, tail = s.partition(sep)
        if tail and tail.strip("0:.") == "" and head:
            s = head
            break
    for fmt in _DATE_FORMATS:
        try:
            return pd.Timestamp(datetime.strptime(s, fmt))
        except ValueError:
            continue
    raise ParseError("type", f"{text!r} is not a date (write YYYY-MM-DD)")


def parse_value(
    text: Any,
    ftype: str,
    *,
    codes: tuple | None = None,
    code_map: Mapping[str, Any] | None = None,
    value_range: tuple | None = None,
    required: bool = False,
    label: str = "value",
) -> Any:
    """Parse a resolved value (text) with the field's canonical parser.

    Returns a Timestamp / int / float / bool / str, or None for empty text.
    ``code_map``: extra spellings -> canonical (a vocabulary, e.g. 是/否 or 男/女).
    Raises ParseError with rule ``required``, ``type``, ``code`` or ``range``.
    """
    s = "" if is_missing(text) else str(text).strip()
    if s == "":
        if required:
            raise ParseError("required", f"{label} is required and cannot be resolved to empty")
        return None
    code_map = code_map or {}
    if ftype == "date":
        return parse_date(s)
    if ftype == "bool":
        if s.lower() in _BOOL_TOKENS:
            return _BOOL_TOKENS[s.lower()]
        if s in code_map:
            return bool(code_map[s])
        raise ParseError("type", f"{s!r} is not a boolean for {label} (write true/false)")
    if ftype == "int":
        try:
            f = float(s)
        except ValueError:
            f = math.nan
        if not (math.isfinite(f) and f.is_integer()):
            raise ParseError("type", f"{s!r} is not an integer for {label}")
        value: Any = int(f)
        if codes is not None and value not in {int(c) for c in codes}:
            raise ParseError("code", f"{value} is not one of {list(codes)} for {label}")
    elif ftype == "float":
        try:
            value = float(s)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ParseError("type", f"{s!r} is not a number for {label}")
    elif ftype == "code":
        value = _parse_code(s, codes, code_map, label)
    else:
        value = s
    if value_range is not None and ftype in ("int", "float"):
        low, high = value_range
        if (low is not None and value < low) or (high is not None and value > high):
            raise ParseError("range", f"{s} is outside the range [{low}, {high}] of {label}")
    return value


def _parse_code(s: str, codes: tuple | None, code_map: Mapping[str, Any], label: str) -> str:
    if codes is None or s in codes:
        return s
    folded = [c for c in codes if str(c).lower() == s.lower()]
    if len(folded) == 1:
        return folded[0]
    if s in code_map and code_map[s] in codes:
        return code_map[s]
    raise ParseError("code", f"{s!r} is not a code of {label} (one of {', '.join(map(str, codes))})")


def record_exists(text: Any) -> bool:
    """A ``*`` adjudication: does its resolved_value say the record exists?"""
    s = "" if is_missing(text) else str(text).strip()
    return s != "" and s.lower() not in ABSENT_TOKENS
