"""Reading the reviewer's adjudications: which discrepancy each one decides, and whether
its resolved_value parses for the field. Shared by ``discrepancies`` (status) and
``apply_adjudications`` (values, quarantine)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping

import pandas as pd

from ibd_pipeline.config import CenterProfile, Crf
from ibd_pipeline.reconcile.values import (
    ABSENT,
    PRESENT,
    WHOLE_RECORD,
    ParseError,
    compared_fields,
    is_missing,
    parse_value,
    record_exists,
    to_text,
)

#: what one discrepancy / adjudication is about
TARGET = ["center", "patient_id", "table_name", "record_key", "field"]
OPEN, RESOLVED = "open", "resolved"
#: quarantine layout (analytics.quarantine) of a rejected adjudication
QUARANTINE_COLUMNS = [
    "center", "round", "delivery_id", "table_name", "file_name", "row_number", "patient_id", "field", "value", "rule",
    "message",
]
#: every rule an adjudication can be rejected with
ADJUDICATION_RULES = ("no_open_discrepancy", "required", "type", "code", "range", "unique_key", "record_unavailable")
#: the quarantine rows the decisions' rejections make (``reject_row`` here and in
#: adjudicate.py), as (field, rule) with None for any: the reconciliation step owns and
#: rewrites exactly these; the rows of the ADJ file's own extraction belong to loading
DECISION_REJECTIONS = (
    ("resolved_value", None),  # the resolved value does not parse for the field (required/type/code/range)
    (None, "no_open_discrepancy"),
    (None, "record_unavailable"),
    ("field", "unique_key"),  # superseded by a later decision on the same discrepancy
)


@dataclass
class Decision:
    key: tuple  # TARGET values
    value: Any  # parsed value; for '*': True (the record exists) / False
    text: str | None  # canonical text of the value ('present'/'absent' for '*')
    reviewer_id: Any
    decided_on: Any
    source: str  # adjudication | previous
    origin: dict  # quarantine columns of the adjudication row (for a rejection)


def _s(v: Any) -> str:
    return "" if is_missing(v) else str(v).strip()


def vocabulary_maps(profiles: Mapping[str, CenterProfile]) -> dict[str, dict[str, Any]]:
    """Every center vocabulary's code spellings, per field (``bool`` for booleans)."""
    maps: dict[str, dict[str, Any]] = {}
    for p in profiles.values():
        for fname, m in ((p.vocabulary or {}).get("codes") or {}).items():
            maps.setdefault(fname, {}).update(m)
    return maps


def field_parser(crf: Crf, profiles: Mapping[str, CenterProfile]) -> Callable[[str, str, Any], tuple[Any, str | None]]:
    """parse(table, field, text) -> (value, canonical text); raises ParseError. The code
    spellings are the centers' vocabularies, the lab qualifiers their ``units.yaml``'s."""
    vocab = vocabulary_maps(profiles)
    qualifiers = tuple(dict.fromkeys(q for p in profiles.values() for q in p.qualifiers))

    def parse(table: str, field: str, text: Any) -> tuple[Any, str | None]:
        if field == WHOLE_RECORD:
            exists = record_exists(text)
            return exists, PRESENT if exists else ABSENT
        ftype = compared_fields(crf, table)[field]
        spec = crf.table(table).fields.get(field)  # None: labs' qualifier
        value = parse_value(
            text,
            ftype,
            codes=spec.codes if spec is not None else qualifiers,
            code_map=vocab.get("bool" if ftype == "bool" else field, {}),
            value_range=spec.range if spec is not None else None,
            required=spec.required if spec is not None else False,
            label=f"{table}.{field}",
        )
        return value, to_text(value, ftype)

    return parse


def _order(adj: pd.DataFrame, i: int) -> tuple:
    """Rows are read by decision date, then file row: a later decision wins."""
    when = adj["decided_on"].iloc[i] if "decided_on" in adj.columns else None
    try:
        when = pd.Timestamp(when) if not is_missing(when) else pd.Timestamp.min
    except (TypeError, ValueError):
        when = pd.Timestamp.min
    row = adj["source_row"].iloc[i] if "source_row" in adj.columns else None
    return when, (i if is_missing(row) else int(row)), i


def read_adjudications(
    adjudications: pd.DataFrame | None,
    listed: Collection[tuple],
    crf: Crf,
    profiles: Mapping[str, CenterProfile],
) -> tuple[dict[tuple, Decision], list[dict]]:
    """The accepted decision per discrepancy target, and the rejected rows (quarantine
    dicts). ``listed``: the targets (TARGET tuples, trimmed text) that may be decided.
    Rules: ``no_open_discrepancy`` (names no listed target), ``required``/``type``/
    ``code``/``range`` (resolved_value does not parse for the field), ``unique_key`` (an
    earlier decision of a target decided again later)."""
    decisions: dict[tuple, Decision] = {}
    rejected: list[dict] = []
    if adjudications is None or len(adjudications) == 0:
        return decisions, rejected
    vocab = vocabulary_maps(profiles)
    parse = field_parser(crf, profiles)
    table_alias = vocab.get("table", {})
    listed = set(listed)
    adj = adjudications.reset_index(drop=True)
    for i in sorted(range(len(adj)), key=lambda i: _order(adj, i)):
        get = adj.iloc[i].get
        table = _s(get("table_name"))
        table = table_alias.get(table, table)
        key = (_s(get("center")), _s(get("patient_id")), table, _s(get("record_key")), _s(get("field")))
        origin = {
            "center": key[0], "round": "ADJ", "delivery_id": None if is_missing(get("delivery_id")) else get("delivery_id"),
            "table_name": "adjudications",
            "file_name": None if is_missing(get("source_file")) else str(get("source_file")),
            "row_number": get("source_row"), "patient_id": key[1] or None,
        }
        if key not in listed:
            rejected.append(reject_row(origin, "field", key[4], "no_open_discrepancy",
                                       f"no open discrepancy for {table or '?'} record {key[3]!r} field {key[4]!r} "
                                       "of this patient"))
            continue
        try:
            value, text = parse(table, key[4], get("resolved_value"))
        except ParseError as e:
            rejected.append(reject_row(origin, "resolved_value", get("resolved_value"), e.rule, str(e)))
            continue
        if key in decisions:
            rejected.append(reject_row(decisions[key].origin, "field", key[4], "unique_key",
                                       f"superseded by a later adjudication of {table} record {key[3]!r} "
                                       f"field {key[4]!r}"))
        decisions[key] = Decision(key, value, text, get("reviewer_id"), get("decided_on"), "adjudication", origin)
    return decisions, rejected


def reject_row(origin: dict, field: str, value: Any, rule: str, message: str) -> dict:
    return {**origin, "field": field, "value": None if is_missing(value) else str(value), "rule": rule,
            "message": message}


def target_key(row: Mapping[str, Any]) -> tuple:
    return tuple(_s(row[c]) for c in TARGET)
