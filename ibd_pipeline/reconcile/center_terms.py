"""A discrepancy in a center's own terms, and back (issue 12 item 3).

The discrepancy list is canonical (``values.to_text``: ISO dates, ``true``/``false``,
canonical codes and lab units). What a center's coordinator reads and writes is how that
center exports its data, as its profile (``centers/<center>.yaml``) and its vocabulary
(``centers/vocabularies/``) say: its column headers for the field names, its code
spellings (hzfph/zju2: 是/否, 男/女, 英夫利西单抗 ...), its first text date format
(hzfph 2023/02/28) and its lab units (zju2 HDL in mg/dL: canonical mmol/L / 0.02586).

``CenterTerms.to_center`` and ``CenterTerms.from_center`` are inverse: a value shown in
a worklist and written back unchanged reads as the same canonical text (lab values
exactly: the shown number is the shortest decimal that converts back, by the
ingestion's exact conversion, to the same float). Pure: no Dagster, no DuckDB.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from ibd_pipeline.config import CenterProfile, Crf
from ibd_pipeline.reconcile.values import (
    ABSENT,
    PATIENT_RECORD_KEY,
    PRESENT,
    WHOLE_RECORD,
    compared_fields,
    format_float,
    is_missing,
)

#: how a Chinese-vocabulary center says "the record exists" / "does not exist" for a ``*`` row
#: (``无`` is one of ``values.ABSENT_TOKENS``, so it reads back as absent)
ZH_RECORD = {PRESENT: "有", ABSENT: "无"}
EXCEL_DATE_CELL = "excel_date_cell"


def _first(mapping: dict) -> dict:
    """local -> canonical turned into canonical -> the first local spelling."""
    out: dict = {}
    for local, canon in mapping.items():
        out.setdefault(canon, local)
    return out


class CenterTerms:
    """Conversions between the canonical discrepancy text and one center's terms."""

    def __init__(self, profile: CenterProfile, crf: Crf):
        self.profile = profile
        self.crf = crf
        self.zh = bool(profile.raw.get("vocabulary"))
        self.date_format = next((f for f in profile.date_formats if f != EXCEL_DATE_CELL), "%Y-%m-%d")
        self._table_local = _first(profile.code_map("table"))
        self._table_canon = {**{t: t for t in crf.tables}, **profile.code_map("table")}

    # ---------------------------------------------------------------- tables and fields
    def table_label(self, table: str) -> str:
        return self._table_local.get(table, table)

    def table_from(self, text: str) -> str:
        """The canonical table of a shown table name (unknown text stays as written)."""
        return self._table_canon.get(text.strip(), text.strip())

    def field_label(self, table: str, field: str) -> str:
        if field == WHOLE_RECORD or table not in self.crf.tables:
            return field
        return self.profile.header_for(table, field)

    def field_from(self, table: str, text: str) -> str:
        s = text.strip()
        if s == WHOLE_RECORD or table not in self.crf.tables:
            return s
        fields = compared_fields(self.crf, table)
        if s in fields:
            return s
        by_label = {self.profile.header_for(table, f): f for f in fields}
        return by_label.get(s, s)

    def field_type(self, table: str, field: str) -> str | None:
        if field == WHOLE_RECORD:
            return WHOLE_RECORD
        if table not in self.crf.tables:
            return None
        spec = self.crf.table(table).fields.get(field)  # key fields too (record keys)
        return spec.type if spec is not None else compared_fields(self.crf, table).get(field)

    # ---------------------------------------------------------------- record keys
    def _key_fields(self, table: str) -> list[str]:
        return [k for k in self.crf.table(table).key if k != "mrn"]

    def _map_key(self, table: str, text: str, convert) -> str:
        """Each part of a record key converted by ``convert(table, key field, part, None)``;
        a key that is not of the table's shape is returned as it is."""
        s = text.strip()
        if table not in self.crf.tables or s == PATIENT_RECORD_KEY:
            return s
        kf = self._key_fields(table)
        parts = s.split("|")
        if len(parts) != len(kf):
            return s
        return "|".join(convert(table, k, p.strip(), None) or "" for k, p in zip(kf, parts))

    def record_key_label(self, table: str, record_key: str) -> str:
        """``2023-03-01|HDL`` -> ``2023-03-01|高密度脂蛋白胆固醇`` (zju2), ``2023/03/01|...`` (hzfph)."""
        return self._map_key(table, record_key, self._to)

    def record_key_from(self, table: str, text: str) -> str:
        """A record key as the center's coordinator reads it -> the canonical record key."""
        return self._map_key(table, text, self._from)

    def test_of(self, table: str, record_key: str) -> str | None:
        """The lab test of a labs record key (canonical), else None."""
        if table != "labs":
            return None
        kf = self._key_fields(table)
        parts = record_key.split("|")
        return parts[kf.index("test")] if len(parts) == len(kf) and "test" in kf else None

    # ---------------------------------------------------------------- units
    def unit(self, test: str | None) -> tuple[str, float]:
        """(unit the center writes ``test`` in, factor into the canonical unit): the first
        unit its profile declares a conversion for, else the canonical unit."""
        if not test or test not in self.crf.lab_tests:
            return "", 1.0
        conv = self.profile.units.get(test) or {}
        for u, f in conv.items():
            return u, float(f)
        return self.crf.canonical_unit(test), 1.0

    def value_unit(self, table: str, field: str, record_key: str) -> str:
        """The unit a worklist row's values are shown and read in ('' when none)."""
        return self.unit(self.test_of(table, record_key))[0] if (table, field) == ("labs", "value") else ""

    # ---------------------------------------------------------------- values
    def to_center(self, table: str, field: str, record_key: str, text) -> str:
        """Canonical text -> the center's text ('' for missing)."""
        return self._to(table, field, text, record_key) or ""

    def from_center(self, table: str, field: str, record_key: str, text) -> str:
        """The center's text (as a coordinator writes it) -> canonical text for the
        adjudication parser ('' for empty). Text that is not a known spelling is passed
        on as written (the parser then rejects it with its rule)."""
        return self._from(table, field, text, record_key) or ""

    def choices(self, table: str, field: str) -> list[str] | None:
        """The spellings a coded field takes in the center's terms (a drop-down), else None."""
        ftype = self.field_type(table, field)
        if ftype == WHOLE_RECORD:
            return [ZH_RECORD[PRESENT], ZH_RECORD[ABSENT]] if self.zh else [PRESENT, ABSENT]
        if ftype == "bool":
            loc = _first(self.profile.code_map(field, "bool"))
            return [loc.get(True, "true"), loc.get(False, "false")]
        if field == "qualifier" and table == "labs":
            return ["<", ">"]
        spec = self.crf.table(table).fields.get(field) if table in self.crf.tables else None
        if spec is None or spec.codes is None or ftype not in ("code", "int"):
            return None
        loc = _first(self.profile.code_map(field))
        return [str(loc.get(c, c)) for c in spec.codes]

    def _to(self, table: str, field: str, text, record_key: str | None) -> str | None:
        if is_missing(text) or str(text).strip() == "":
            return None
        s = str(text).strip()
        ftype = self.field_type(table, field)
        if ftype == WHOLE_RECORD:
            return ZH_RECORD.get(s, s) if self.zh else s
        if ftype == "bool":
            loc = _first(self.profile.code_map(field, "bool"))
            v = {"true": True, "false": False}.get(s.lower())
            return loc.get(v, s) if v is not None else s
        if ftype == "code":
            return str(_first(self.profile.code_map(field)).get(s, s))
        if ftype == "date":
            try:
                return datetime.strptime(s, "%Y-%m-%d").strftime(self.date_format)
            except ValueError:
                return s
        if (table, field) == ("labs", "value") and record_key is not None:
            _u, factor = self.unit(self.test_of(table, record_key))
            return _shown_number(s, factor)
        if (table, field) == ("labs", "unit") and record_key is not None:
            u, factor = self.unit(self.test_of(table, record_key))
            test = self.test_of(table, record_key)
            return u if test in self.crf.lab_tests and s == self.crf.canonical_unit(test) else s
        return s

    def _from(self, table: str, field: str, text, record_key: str | None) -> str | None:
        if is_missing(text) or str(text).strip() == "":
            return None
        s = str(text).strip()
        ftype = self.field_type(table, field)
        if ftype == WHOLE_RECORD:
            back = {v: k for k, v in ZH_RECORD.items()}
            return back.get(s, s)
        if ftype == "bool":
            m = self.profile.code_map(field, "bool")
            return ("true" if m[s] else "false") if s in m else s
        if ftype == "code":
            return str(self.profile.code_map(field).get(s, s))
        if ftype == "date":
            for fmt in [self.date_format, *[f for f in self.profile.date_formats if f != EXCEL_DATE_CELL], "%Y-%m-%d"]:
                try:
                    return datetime.strptime(s, fmt).strftime("%Y-%m-%d")
                except ValueError:
                    continue
            return s
        if (table, field) == ("labs", "value") and record_key is not None:
            _u, factor = self.unit(self.test_of(table, record_key))
            if factor == 1.0:
                return s
            try:  # the ingestion's exact conversion (ingest/normalize.py)
                return format_float(float(Decimal(s) * Decimal(repr(factor))))
            except (InvalidOperation, ValueError):
                return s
        if (table, field) == ("labs", "unit") and record_key is not None:
            test = self.test_of(table, record_key)
            if test in self.crf.lab_tests and s in (self.profile.units.get(test) or {}):
                return self.crf.canonical_unit(test)
        return s


def _shown_number(text: str, factor: float) -> str:
    """A canonical lab value in the center's unit: the shortest decimal that the exact
    conversion (x factor) turns back into the same canonical float."""
    try:
        canon = float(text)
    except ValueError:
        return text
    if factor == 1.0:
        return text
    target = format_float(canon)
    q = Decimal(repr(canon)) / Decimal(repr(factor))
    for digits in range(1, 18):
        shown = format(Decimal(f"{q:.{digits}g}").normalize(), "f")
        if format_float(float(Decimal(shown) * Decimal(repr(factor)))) == target:
            return shown
    return format(q.normalize(), "f")
