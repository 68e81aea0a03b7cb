"""Pandera schemas generated from the CRF (``schemas/crf.yaml``).

``crf_schema(table, crf)`` validates a *canonical frame* (docs/ARCHITECTURE.md,
"Canonical frames") of one CRF table: ``patient_id`` instead of ``mrn``, no
``phi: drop`` fields, typed columns, ``table`` renamed ``table_name``.

What the schema checks, and the quarantine rule each failure is reported under:

* dtype per CRF type .................................. ``type``
* ``required: true`` -> not nullable ................... ``required`` (``patient_id`` is reported as field ``mrn``)
* ``codes`` / ``codes_from`` -> ``isin`` ............... ``code``
* ``range`` -> ``in_range`` / ``ge`` / ``le`` .......... ``range`` (labs: after unit conversion)
* the table's ``key`` unique (first occurrence kept) .. ``unique_key``
* labs: ``unit`` is the canonical unit of the test .... ``unit``
* cross-field rules of STUDY.md Workflow step 2 (dataframe-level checks):
  ``stop_reason_required`` (a stop date needs a stop reason), ``stop_after_start``
  (stop >= start), ``followup_after_start`` (last follow-up >= UPA start) and, inside
  the patients table, ``event_after_birth`` (no patient date before the birth date).

Dataframe-level checks carry the error string ``"<rule>[<field>]"`` so that a failure
case maps back to a rule and the field a coordinator has to correct
(:func:`check_rule`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import pandera.pandas as pa

from ibd_pipeline.config import Crf, TableSpec

DTYPES = {
    "date": "datetime64[ns]",
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
    "code": object,  # str or None; `object` keeps the dtype check O(1) (pandera's `str`
    "string": object,  # checks every cell in Python - 7 s per million rows)
}
LINEAGE_COLUMNS = ["center", "round", "delivery_id", "source_file", "source_row"]
LAB_EXTRA_COLUMNS = ["qualifier", "value_reported", "unit_reported"]
QUALIFIERS = ("<", ">")


def column_name(field: str) -> str:
    """Canonical-frame column of a CRF field (``mrn`` -> ``patient_id``, ``table`` -> ``table_name``)."""
    return {"mrn": "patient_id", "table": "table_name"}.get(field, field)


def field_name(column: str) -> str:
    """CRF field of a canonical-frame column (inverse of :func:`column_name`)."""
    return {"patient_id": "mrn", "table_name": "table"}.get(column, column)


def canonical_columns(table: str, crf: Crf, *, lineage: bool = True) -> list[str]:
    """Column order of a canonical frame of ``table``."""
    spec = crf.table(table)
    cols = [column_name(f) for f in spec.kept_fields]
    if "patient_id" in cols:
        cols.remove("patient_id")
        cols.insert(0, "patient_id")
    if table == "labs":
        cols += LAB_EXTRA_COLUMNS
    if lineage:
        cols += LINEAGE_COLUMNS
    return cols


def key_columns(table: str, crf: Crf) -> list[str]:
    return [column_name(f) for f in crf.table(table).key]


@dataclass(frozen=True)
class CrossFieldRule:
    rule: str
    field: str  # the field the coordinator must correct (reported in the quarantine)
    other: str  # the field it is compared with

    @property
    def error(self) -> str:
        return f"{self.rule}[{self.field}]"


def cross_field_rules(spec: TableSpec) -> list[CrossFieldRule]:
    """STUDY.md Workflow step 2 cross-field rules that apply to a table (by its fields)."""
    f = spec.fields
    out = []
    for stop, reason in (("upa_stop_date", "upa_stop_reason"), ("stop_date", "stop_reason")):
        if stop in f and reason in f:
            out.append(CrossFieldRule("stop_reason_required", reason, stop))
    for start, stop in (("upa_start_date", "upa_stop_date"), ("start_date", "stop_date")):
        if start in f and stop in f:
            out.append(CrossFieldRule("stop_after_start", stop, start))
    if "upa_start_date" in f and "last_followup_date" in f:
        out.append(CrossFieldRule("followup_after_start", "last_followup_date", "upa_start_date"))
    if "birth_date" in f:
        for d, s in f.items():
            if s.type == "date" and d != "birth_date":
                out.append(CrossFieldRule("event_after_birth", d, "birth_date"))
    return out


def _rule_check(r: CrossFieldRule) -> pa.Check:
    a, b = column_name(r.field), column_name(r.other)
    if r.rule == "stop_reason_required":
        fn = lambda df: ~(df[b].notna() & df[a].isna())  # noqa: E731  (b: stop date, a: reason)
    else:  # a must not be before b
        fn = lambda df: ~(df[a] < df[b])  # noqa: E731  (missing dates pass)
    return pa.Check(fn, error=r.error, name=r.rule, ignore_na=False)


def _unit_check(crf: Crf) -> pa.Check:
    canonical = {t: v["unit"] for t, v in crf.lab_tests.items()}

    def fn(df: pd.DataFrame) -> pd.Series:
        want = df["test"].map(canonical)
        return want.isna() | df["unit"].isna() | (df["unit"] == want)

    return pa.Check(fn, error="unit[unit]", name="unit", ignore_na=False)


_ERROR_RE = re.compile(r"^(\w+)\[(\w+)\]$")


def check_rule(check: str, column: str | None) -> tuple[str, str | None]:
    """Map a pandera failure case (its ``check`` and ``column``) to (rule, CRF field)."""
    m = _ERROR_RE.match(str(check))
    if m:
        return m.group(1), m.group(2)
    fld = field_name(column) if isinstance(column, str) else None
    if check == "not_nullable":
        return "required", fld
    if check in ("code", "range"):
        return check, fld
    if check == "multiple_fields_uniqueness" or check == "field_uniqueness":
        return "unique_key", fld
    if check in ("column_in_dataframe", "column_in_schema"):
        return "required", fld
    return "type", fld  # dtype and coercion failures


@lru_cache(maxsize=64)
def _crf_schema(table: str, crf_id: int, unique: bool, unit_check: bool) -> pa.DataFrameSchema:
    crf = _CRFS[crf_id]
    spec = crf.table(table)
    cols: dict[str, pa.Column] = {}
    for fname in spec.kept_fields:
        s = spec.fields[fname]
        checks = []
        if s.codes is not None:
            codes = list(s.codes)
            if s.type == "int":
                codes = [int(c) for c in codes]
            checks.append(pa.Check.isin(codes, error="code"))
        if s.range is not None:
            lo, hi = s.range
            if lo is not None and hi is not None:
                checks.append(pa.Check.in_range(lo, hi, error="range"))
            elif lo is not None:
                checks.append(pa.Check.ge(lo, error="range"))
            elif hi is not None:
                checks.append(pa.Check.le(hi, error="range"))
        name = column_name(fname)
        cols[name] = pa.Column(
            DTYPES[s.type] if fname != "mrn" else object,
            checks=checks,
            nullable=not s.required,
            required=True,
            description=s.description or None,
        )
    if table == "labs":
        cols["qualifier"] = pa.Column(object, pa.Check.isin(list(QUALIFIERS), error="type"), nullable=True)
        cols["value_reported"] = pa.Column(object, nullable=True)
        cols["unit_reported"] = pa.Column(object, nullable=True)
    for c in LINEAGE_COLUMNS:
        cols[c] = pa.Column("int64" if c == "source_row" else object, nullable=False, required=False)
    checks = [_rule_check(r) for r in cross_field_rules(spec)]
    if table == "labs" and unit_check:
        checks.append(_unit_check(crf))
    return pa.DataFrameSchema(
        cols,
        checks=checks,
        unique=key_columns(table, crf) if unique else None,
        report_duplicates="exclude_first",
        strict=False,
        name=f"crf.{table}",
        description=spec.description or f"CRF table {table}",
    )


_CRFS: dict[int, Crf] = {}


def crf_schema(
    table: str, crf: Crf, *, unique: bool = True, unit_check: bool = True
) -> pa.DataFrameSchema:
    """The pandera schema of one CRF table's canonical frame.

    The chunked extractor validates with ``unique=False`` (it checks keys across chunks
    itself, with the same first-occurrence-wins semantics) and ``unit_check=False``
    (units are resolved, with a better message, while converting; a dataframe-level
    pandera check costs seconds per 10,000 failing lab rows in failure-case reshaping).
    """
    _CRFS[id(crf)] = crf
    return _crf_schema(table, id(crf), unique, unit_check)


PANDERA_HEADER = (
    "# Pandera schema of the canonical CRF table, generated from schemas/crf.yaml by\n"
    "# ibd_pipeline.ingest.schemas.crf_schema - do not edit; regenerate with\n"
    "#   python -m ibd_pipeline.ingest.schemas --write schemas/pandera\n"
    "# (the cross-field rules - stop after start, a stop date needs a reason, follow-up\n"
    "# after start, lab units - are code checks and are not serialised here).\n"
)


def schema_yaml(table: str, crf: Crf) -> str:
    """The YAML form of a table's pandera schema, as kept under schemas/pandera/."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return PANDERA_HEADER + crf_schema(table, crf).to_yaml()


def write_schema_files(out_dir, crf: Crf) -> list:
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for t in crf.tables:
        p = out / f"{t}.yaml"
        p.write_text(schema_yaml(t, crf), encoding="utf-8")
        written.append(p)
    return written


if __name__ == "__main__":
    import sys

    from ibd_pipeline.config import load_crf

    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        for p in write_schema_files(sys.argv[2], load_crf()):
            print(p)
    else:
        print("usage: python -m ibd_pipeline.ingest.schemas --write schemas/pandera")
