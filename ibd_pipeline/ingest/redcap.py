"""REDCap centers (profile ``format: redcap``): the records export and its data dictionary
(STUDY.md Workflow step 1; docs/STUDY_RULES.md#extraction). Pure: pandas only.

A REDCap delivery is two files of one date: the project's records export
(``files``, e.g. ``redcap_records_{yyyymmdd}.csv``: UTF-8 CSV, raw coded values, classic
project - ``record_id``, ``redcap_repeat_instrument``, ``redcap_repeat_instance``, then
every field; one row per record for the non-repeating instrument and one per instance of
a repeating instrument; checkboxes as ``<variable>___<code>`` columns of 0/1; dates
YYYY-MM-DD; missing = empty) and its data dictionary (``redcap.dictionary_files``:
REDCap's 18 columns).

* :func:`redcap_spec` - the profile's ``redcap`` section, checked against the CRF.
* :func:`read_dictionary`, :func:`compare_dictionary` - the delivered dictionary against the
  one the profile expects: every change (field added, removed, renamed, type or form
  changed, choice added, removed, recoded, relabelled) as a :class:`DictionaryChange`;
  a *blocking* change means the field is not read until the profile is updated.
* :func:`read_redcap_parts` - the records export as one :class:`~.readers.RawPart` per
  CRF table (CRF headers as the profile names them, canonical codes), which the common
  extraction path (extract.py: normalise, validate, quarantine) handles like any other
  file. Values that are not a choice of their REDCap field come with their own failure
  (rule ``code``, naming the REDCap field and its choices); row numbers are the records
  file's (header = row 1), so a laboratory instance's results share its row. A
  checkbox's 0 is "not ticked" only where its instrument was entered in that row (a
  value, a tick or form status 1/2); elsewhere it is missing (:func:`_instruments_entered`).

Identifiers (``redcap.identifiers``, REDCap's ``record_id``, and any field the profile does
not map) are never read; ``mrn`` is pseudonymized like every center's record number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ibd_pipeline.config import CenterProfile, Crf, redcap_choices, redcap_label_code
from ibd_pipeline.privacy import safe_label

from .errors import UnreadableFileError
from .frames import FAILURE_COLUMNS
from .readers import RawPart, read_csv_part

DICTIONARY_COLUMNS = (
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
)
_VAR, _FORM, _TYPE, _CHOICES, _VALID = (
    "Variable / Field Name", "Form Name", "Field Type", "Choices, Calculations, OR Slider Labels",
    "Text Validation Type OR Show Slider Number",
)
REPEAT_INSTRUMENT = "redcap_repeat_instrument"
REPEAT_INSTANCE = "redcap_repeat_instance"
CHOICE_TYPES = ("radio", "dropdown", "checkbox")
BOOL_TYPES = ("yesno", "truefalse")
# REDCap's raw export writes every date YYYY-MM-DD whatever the field's display format
_SAME_EXPORT = [{"date_ymd", "date_dmy", "date_mdy"}]


class RedcapProfileError(ValueError):
    """The profile's ``redcap`` section does not fit the CRF (a profile to correct, not a delivery)."""


# ----------------------------------------------------------------------------- profile
@dataclass(frozen=True)
class MappedField:
    """One REDCap variable the profile reads, with its expected dictionary entry."""

    variable: str
    instrument: str
    table: str
    repeating: bool
    type: str
    validation: str
    choices: tuple[tuple[str, str], ...]  # expected (raw code, label)
    crf: str | None = None  # the CRF field (None: checkbox options or a laboratory field)
    codes: object = None  # {raw: canonical} | "by_label" | None (the raw code is the value)
    label_codes: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # checkbox raw code -> CRF bool field
    lab: str | None = None  # CRF lab test of a wide laboratory field
    unit: str | None = None

    @property
    def targets(self) -> list[str]:
        """The CRF fields it feeds ("table.field")."""
        if self.options:
            return [f"{self.table}.{f}" for f in self.options.values()]
        if self.lab:
            return [f"{self.table}.{self.lab}"]
        return [f"{self.table}.{self.crf}"]

    def code_map(self, choices: list[tuple[str, str]] | tuple | None = None) -> dict[str, object]:
        """Raw code -> canonical value (None = missing) for the given choices (default: the
        expected ones); ``by_label`` follows the labels of the choices given."""
        choices = self.choices if choices is None else choices
        if self.codes == "by_label":
            return {c: self.label_codes.get(lab, redcap_label_code(lab)) for c, lab in choices}
        if isinstance(self.codes, dict):
            return {c: self.codes[c] for c, _ in choices if c in self.codes}
        return {c: c for c, _ in choices}


@dataclass(frozen=True)
class RedcapSpec:
    profile: CenterProfile
    record_id: str
    dictionary_files: str
    identifiers: tuple[str, ...]
    ignored: tuple[str, ...]
    instruments: dict[str, dict]  # instrument -> {table, repeating, from_record}
    fields: dict[str, MappedField]  # variable -> field, in profile order

    @property
    def known(self) -> set[str]:
        """Every variable the profile knows (mapped, identifiers, ignored, record id)."""
        return set(self.fields) | set(self.identifiers) | set(self.ignored) | {self.record_id}

    def where(self, var: str) -> str:
        f = self.fields.get(var)
        return f"redcap.instruments.{f.instrument}.fields.{var}" if f else "redcap"

    @property
    def profile_file(self) -> str:
        p = self.profile.path
        return p.name if p is not None else f"{self.profile.id}.yaml"


def redcap_spec(profile: CenterProfile, crf: Crf) -> RedcapSpec:
    """The profile's ``redcap`` section, checked: tables, CRF fields, codes and lab tests
    exist, checkbox options feed booleans, every expected choice maps to a CRF value.
    Raises RedcapProfileError listing every problem."""
    sec = profile.raw.get("redcap") or {}
    name = profile.path.name if profile.path is not None else profile.id
    problems: list[str] = []
    fields: dict[str, MappedField] = {}
    instruments: dict[str, dict] = {}
    tables_nonrep = set()
    for inst, spec in (sec.get("instruments") or {}).items():
        table = spec.get("table")
        if table not in crf.tables:
            problems.append(f"instrument {inst}: table {table!r} is not a CRF table")
            continue
        tspec = crf.table(table)
        rep = bool(spec.get("repeating", False))
        if not rep:
            tables_nonrep.add(table)
        instruments[inst] = {"table": table, "repeating": rep, "from_record": list(spec.get("from_record") or [])}
        for var, e in (spec.get("fields") or {}).items():
            var, e = str(var), dict(e or {})
            where = f"instrument {inst}, field {var}"
            if var in fields:
                problems.append(f"{where}: the variable is mapped twice")
                continue
            codes = e.get("codes")
            if isinstance(codes, dict):
                codes = {str(k): v for k, v in codes.items()}
            mf = MappedField(
                variable=var, instrument=str(inst), table=table, repeating=rep, type=str(e.get("type", "text")),
                validation=str(e.get("validation") or ""), choices=tuple(redcap_choices(e.get("choices"))),
                crf=e.get("crf"), codes=codes, label_codes=dict(e.get("label_codes") or {}),
                options={str(k): v for k, v in (e.get("options") or {}).items()}, lab=e.get("lab"), unit=e.get("unit"),
            )
            if mf.options:
                for f in mf.options.values():
                    if f not in tspec.fields or tspec.fields[f].type != "bool":
                        problems.append(f"{where}: checkbox option -> {f!r} is not a bool field of {table}")
            elif mf.lab:
                if table != "labs" or mf.lab not in crf.lab_tests or not mf.unit:
                    problems.append(f"{where}: lab {mf.lab!r} needs a labs instrument, a CRF lab test and a unit")
            elif mf.crf not in tspec.fields:
                problems.append(f"{where}: crf {mf.crf!r} is not a field of {table}")
            elif mf.type in ("radio", "dropdown"):
                fs = tspec.fields[mf.crf]
                cmap = mf.code_map()
                if isinstance(codes, dict) or codes == "by_label":
                    missing = [c for c, _ in mf.choices if c not in cmap]
                    if missing:
                        problems.append(f"{where}: choices {', '.join(missing)} have no CRF code in `codes`")
                for raw, canon in cmap.items():
                    if canon is None:
                        continue
                    if not _canonical_ok(canon, fs):
                        problems.append(f"{where}: choice {raw} maps to {canon!r}, not a value of {table}.{mf.crf}")
                    elif fs.codes is not None and raw in {str(c) for c in fs.codes} and str(canon) != raw:
                        problems.append(f"{where}: raw code {raw} is itself a CRF code of another meaning")
            fields[var] = mf
    record_fields = {f.crf for f in fields.values() if not f.repeating and f.crf}
    for inst, i in instruments.items():
        for f in i["from_record"]:
            if f not in record_fields or f not in crf.table(i["table"]).fields:
                problems.append(f"instrument {inst}: from_record {f!r} is not a field of the non-repeating instrument and of {i['table']}")
    if len(tables_nonrep) > 1:
        problems.append(f"the non-repeating instruments map to several tables ({', '.join(sorted(tables_nonrep))}); they share one row")
    rid = sec.get("record_id") or "record_id"
    if not instruments:
        problems.append("no instruments")
    if problems:
        raise RedcapProfileError(f"profile {name}: " + "; ".join(problems))
    return RedcapSpec(
        profile=profile, record_id=str(rid), dictionary_files=str(sec.get("dictionary_files") or ""),
        identifiers=tuple(str(x) for x in sec.get("identifiers") or ()), ignored=tuple(str(x) for x in sec.get("ignored") or ()),
        instruments=instruments, fields=fields,
    )


def _canonical_ok(v, fs) -> bool:
    if fs.type == "bool":
        return isinstance(v, bool)
    if fs.type == "int":
        try:
            iv = int(str(v))
        except ValueError:
            return False
        return fs.codes is None or iv in {int(c) for c in fs.codes}
    return fs.codes is None or str(v) in {str(c) for c in fs.codes}


def _canon_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# -------------------------------------------------------------------------- dictionary
def read_dictionary(path: Path | str, file_name: str | None = None) -> pd.DataFrame:
    """A delivered data dictionary (REDCap's CSV, UTF-8) as text; raises UnreadableFileError
    when it cannot be read or lacks REDCap's columns."""
    path = Path(path)
    file_name = file_name or path.name
    if not path.is_file():
        raise UnreadableFileError(file_name, "the data dictionary does not exist or is not a regular file.")
    try:
        d = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise UnreadableFileError(file_name, f"the data dictionary is not a readable REDCap CSV ({type(e).__name__}).") from None
    d.columns = [str(c).strip() for c in d.columns]
    need = [_VAR, _FORM, _TYPE, _CHOICES, _VALID]
    missing = [c for c in need if c not in d.columns]
    if missing:
        raise UnreadableFileError(
            file_name,
            "this is not a REDCap data dictionary: columns missing: " + ", ".join(repr(c) for c in missing)
            + ". Export it in REDCap under Project Setup > Data Dictionary > Download the current Data Dictionary.",
        )
    return d.apply(lambda s: s.str.strip())


def _entries(d: pd.DataFrame) -> dict[str, dict]:
    out = {}
    for r in d.itertuples(index=False):
        row = dict(zip(d.columns, r))
        var = row[_VAR]
        if var:
            out[var] = {
                "form": row[_FORM], "type": row[_TYPE], "validation": row[_VALID],
                "choices": tuple(redcap_choices(row[_CHOICES])) if row[_TYPE] in CHOICE_TYPES else (),
            }
    return out


@dataclass(frozen=True)
class DictionaryChange:
    """One difference between a delivered data dictionary and the profile's expectation."""

    kind: str  # field_added | field_removed | field_renamed | form_changed | type_changed | choice_added | choice_removed | choice_recoded | choice_relabelled
    field: str  # the REDCap variable as the profile names it (field_added: the new one)
    detail: str  # what changed, in words
    blocking: bool  # the field is not read until the profile is updated
    new_field: str | None = None  # field_renamed: the delivered name
    targets: tuple[str, ...] = ()  # CRF fields it feeds ("table.field")

    def message(self, spec: RedcapSpec | None = None) -> str:
        what = f"REDCap field {self.field}" + (f" ({', '.join(self.targets)})" if self.targets else "")
        text = f"data dictionary: {what}: {self.detail}"
        if self.blocking:
            where = f" ({spec.where(self.field)} of {spec.profile_file})" if spec else ""
            text += (
                f" - not read from this delivery (its CRF fields stay empty) until the center profile{where} is updated;"
                " the archive keeps the files, so the delivery can be read again afterwards"
            )
        elif self.kind == "field_added":
            text += " - not read: map it in the profile (or list it under redcap.ignored)"
        else:
            text += " - reported only: reading is unaffected"
        return text + "."


def _choice_text(ch) -> str:
    return ", ".join(f"{c} = {lab}" for c, lab in ch)


def compare_dictionary(delivered: pd.DataFrame, profile: CenterProfile | RedcapSpec, crf: Crf) -> list[DictionaryChange]:
    """Every change of the delivered data dictionary against the profile's expected one.

    Blocking (the field is refused): a mapped field removed or renamed, moved to another
    instrument, of another field type or text validation (the date display formats
    excepted: REDCap exports YYYY-MM-DD whatever they are), a choice added, recoded (same
    label, other code) or relabelled (same code, other label) - unless the field maps by
    label and the new labels still name CRF codes. Reported only: a field the profile does
    not know (not read), a choice removed, changes of identifiers and ignored fields."""
    spec = profile if isinstance(profile, RedcapSpec) else redcap_spec(profile, crf)
    got = _entries(delivered)
    changes: list[DictionaryChange] = []
    removed = [v for v in spec.fields if v not in got]
    added = [v for v in got if v not in spec.known]
    for v in removed:
        f = spec.fields[v]
        twin = [
            a for a in added
            if got[a]["form"] == f.instrument and got[a]["type"] == f.type and got[a]["validation"] == f.validation
            and tuple(got[a]["choices"]) == tuple(f.choices)
        ]
        if twin:
            added.remove(twin[0])
            changes.append(DictionaryChange("field_renamed", v, f"renamed to {twin[0]}", True, twin[0], tuple(f.targets)))
        else:
            changes.append(DictionaryChange("field_removed", v, "no longer in the data dictionary", True, None, tuple(f.targets)))
    for v in [spec.record_id, *spec.identifiers, *spec.ignored]:
        if v not in got:
            fatal = v == spec.record_id
            changes.append(DictionaryChange("field_removed", v, "no longer in the data dictionary", fatal))
    for a in added:
        changes.append(DictionaryChange("field_added", a, f"new field of instrument {got[a]['form']} ({got[a]['type']})", False))
    for v, f in spec.fields.items():
        g = got.get(v)
        if g is None:
            continue
        t = tuple(f.targets)
        if g["form"] != f.instrument:
            changes.append(DictionaryChange("form_changed", v, f"moved from instrument {f.instrument} to {g['form']}", True, None, t))
        if g["type"] != f.type:
            changes.append(DictionaryChange("type_changed", v, f"field type {f.type} -> {g['type']}", True, None, t))
        elif g["validation"] != f.validation:
            same = any({g["validation"], f.validation} <= s for s in _SAME_EXPORT)
            changes.append(DictionaryChange(
                "type_changed", v, f"text validation {f.validation or 'none'} -> {g['validation'] or 'none'}"
                + (" (display format only: the export stays YYYY-MM-DD)" if same else ""), not same, None, t))
        if g["type"] == f.type and f.type in CHOICE_TYPES:
            changes += _choice_changes(f, g["choices"], spec, crf)
    return changes


def _choice_changes(f: MappedField, got, spec: RedcapSpec, crf: Crf) -> list[DictionaryChange]:
    exp = dict(f.choices)
    new = dict(got)
    t = tuple(f.targets)
    out = []
    label_ok = None
    if f.codes == "by_label" and f.crf:
        fs = crf.table(f.table).fields[f.crf]
        label_ok = lambda lab: _canonical_ok(f.label_codes.get(lab, redcap_label_code(lab)), fs)  # noqa: E731
    by_label_exp = {lab: c for c, lab in f.choices}
    recoded = set()
    for c, lab in got:
        if c in exp:
            if exp[c] != lab:
                ok = label_ok is not None and label_ok(lab)
                out.append(DictionaryChange("choice_relabelled", f.variable, f"choice {c} relabelled {exp[c]!r} -> {lab!r}"
                                            + (" (mapped by its label)" if ok else ""), not ok, None, t))
            continue
        old = by_label_exp.get(lab)
        if old is not None and old not in new:
            recoded.add(old)
            ok = label_ok is not None
            out.append(DictionaryChange("choice_recoded", f.variable, f"choice {lab!r} recoded {old} -> {c}"
                                        + (" (mapped by its label)" if ok else ""), not ok, None, t))
        else:
            ok = label_ok is not None and label_ok(lab)
            out.append(DictionaryChange("choice_added", f.variable, f"new choice {c} = {lab!r}"
                                        + (" (mapped by its label)" if ok else " without a CRF code in the profile"), not ok, None, t))
    for c, lab in f.choices:
        if c not in new and c not in recoded:
            out.append(DictionaryChange("choice_removed", f.variable, f"choice {c} = {lab!r} removed", False, None, t))
    return out


def dictionary_name_for(profile: CenterProfile, records_name: str) -> str | None:
    """The dictionary file name that belongs to a records export (same date), or None."""
    sec = profile.raw.get("redcap") or {}
    pat = sec.get("dictionary_files")
    m = re.fullmatch(re.escape(profile.file_pattern).replace(re.escape("{yyyymmdd}"), r"(\d{8})"), records_name)
    if not pat or not m:
        return None
    return pat.replace("{yyyymmdd}", m.group(1))


def is_dictionary_file(profile: CenterProfile, file_name: str) -> bool:
    """Is ``file_name`` this REDCap center's data dictionary (``redcap.dictionary_files``)?"""
    pat = (profile.raw.get("redcap") or {}).get("dictionary_files")
    if not pat:
        return False
    return bool(re.fullmatch(re.escape(pat).replace(re.escape("{yyyymmdd}"), r"\d{8}"), str(file_name)))


# ----------------------------------------------------------------------------- records
def _choice_msg(f: MappedField, choices, limit: int = 12) -> tuple[str, str]:
    shown = list(choices)[:limit]
    txt = _choice_text(shown) + (f", ... ({len(choices)} in all)" if len(choices) > limit else "")
    return (f"不是REDCap字段 {f.variable} 的选项（可选：{txt}）", f"is not one of the choices of REDCap field {f.variable} ({txt})")


def _translate(values: np.ndarray, mapping: dict[str, str]):
    """Distinct raw texts -> canonical texts (empty stays empty; a text not in ``mapping``
    is kept as delivered and marked bad); returns (texts, bad mask) per row."""
    codes, uniq = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
    out_u = np.empty(len(uniq), dtype=object)
    bad_u = np.zeros(len(uniq), dtype=bool)
    for i, u in enumerate(uniq):
        u = "" if u is None else str(u).strip()
        if u == "":
            out_u[i] = ""
        elif u in mapping:
            out_u[i] = mapping[u]
        else:
            out_u[i] = u  # kept as delivered: the quarantine shows it
            bad_u[i] = True
    return out_u[codes], bad_u[codes]


def read_redcap_parts(
    path: Path,
    profile: CenterProfile,
    file_name: str,
    crf: Crf,
    chunk_rows: int,
    warnings: list[str],
    dictionary: Path | None = None,
) -> Iterator[RawPart]:
    """The records export as one RawPart per CRF table (tables in CRF order). Each chunk
    is ``(text frame, source rows, failures)``: the failures (FAILURE_COLUMNS, positions in
    the chunk) are values that are not a choice of their REDCap field. Notes for the
    coordinator (dictionary changes, refused fields and tables, rows not read) are
    appended to ``warnings``. Raises UnreadableFileError when the dictionary is missing or
    unreadable, or nothing of the export can be read."""
    spec = redcap_spec(profile, crf)
    path = Path(path)
    if dictionary is None:
        dname = dictionary_name_for(profile, file_name)
        dictionary = path.with_name(dname) if dname else None
        if dictionary is None or not dictionary.is_file():
            raise UnreadableFileError(
                file_name,
                f"the REDCap data dictionary of this export ({dname or spec.dictionary_files}) is missing: "
                "deliver the records export and its data dictionary together (Project Setup > Data Dictionary).",
            )
    try:
        delivered = read_dictionary(dictionary)
    except UnreadableFileError as e:  # the delivery is the records export: name it, and say what is wrong with its dictionary
        raise UnreadableFileError(file_name, f"its REDCap data dictionary cannot be used: {e.problem}") from None
    got = _entries(delivered)
    changes = compare_dictionary(delivered, spec, crf)
    refused: dict[str, str] = {}
    for ch in changes:
        warnings.append(ch.message(spec))
        if ch.blocking:
            refused.setdefault(ch.field, ch.detail)
    if spec.record_id in refused:
        raise UnreadableFileError(file_name, f"the data dictionary has no record id field {spec.record_id!r}; this is not the study's project.")

    header_part = read_csv_part(path, profile, next(iter(crf.tables)), file_name, chunk_rows)
    header = header_part.header
    col = {h: j for j, h in enumerate(header) if h}
    if spec.record_id not in col:
        raise UnreadableFileError(
            file_name,
            f"the records export has no {spec.record_id!r} column: export the records as CSV (raw) with the record id.",
        )
    has_repeat = REPEAT_INSTRUMENT in col
    # the export's columns the dictionary does not explain
    expl = {REPEAT_INSTRUMENT, REPEAT_INSTANCE, spec.record_id, "redcap_data_access_group", "redcap_survey_identifier"}
    for v, e in got.items():
        if e["type"] == "checkbox":
            expl |= {f"{v}___{c}" for c, _ in e["choices"]}
        else:
            expl.add(v)
    forms = {e["form"] for e in got.values()}
    unknown = [h for h in col if h not in expl and not (h.endswith("_complete") and h[: -len("_complete")] in forms)]
    if unknown:
        warnings.append(
            f"records export: {len(unknown)} column(s) not in the data dictionary were ignored: "
            + ", ".join(safe_label(h) for h in unknown[:10])
        )
    for v, f in spec.fields.items():
        if v in refused:
            continue
        need = [f"{v}___{c}" for c in f.options] if f.type == "checkbox" else [v]
        gone = [n for n in need if n not in col]
        if gone:
            refused[v] = "not in the records export"
            warnings.append(
                f"records export: REDCap field {v} ({', '.join(f.targets)}) is not in the export (columns "
                f"{', '.join(gone)} missing) - read as empty; export every field of the project."
            )

    # pass 1: the record's own fields (mrn, abstractor), from its non-repeating row
    rec_vars = {f.crf: v for v, f in spec.fields.items() if not f.repeating and f.crf}
    record: dict[str, dict[str, str]] = {}
    inst_rows: dict[str, int] = {}
    rid_j = col[spec.record_id]
    rep_j = col.get(REPEAT_INSTRUMENT)
    for chunk, _rows in header_part.chunks:
        v = chunk.to_numpy(dtype=object)
        inst = v[:, rep_j] if rep_j is not None else np.full(len(v), "", dtype=object)
        for name, n in pd.Series(inst).value_counts().items():
            inst_rows[str(name)] = inst_rows.get(str(name), 0) + int(n)
        base = np.flatnonzero(inst == "")
        for i in base:
            rid = str(v[i, rid_j]).strip()
            if rid and rid not in record:
                record[rid] = {
                    crf_f: ("" if var in refused or var not in col else str(v[i, col[var]]).strip())
                    for crf_f, var in rec_vars.items()
                }
    not_read = {k: n for k, n in inst_rows.items() if k and k not in spec.instruments}
    for k, n in not_read.items():
        warnings.append(f"records export: {n} row(s) of instrument {safe_label(k)} were not read (the profile does not map it)")
    if not has_repeat and any(i["repeating"] for i in spec.instruments.values()):
        warnings.append("records export: no redcap_repeat_instrument column: only the non-repeating instrument was read")

    yielded = 0
    for table in crf.tables:
        insts = [i for i, s in spec.instruments.items() if s["table"] == table]
        if not insts:
            continue
        reps = {spec.instruments[i]["repeating"] for i in insts}
        if len(insts) > 1 and True in reps:
            raise RedcapProfileError(f"profile {spec.profile_file}: table {table} is fed by several instruments ({', '.join(insts)})")
        repeating = True in reps
        if repeating and not has_repeat:
            continue
        part = _table_part(path, profile, spec, crf, table, insts, col, got, record, refused, file_name, chunk_rows, warnings)
        if part is not None:
            yielded += 1
            yield part
    if not yielded:
        raise UnreadableFileError(file_name, "nothing of the records export could be read (see the notes on the data dictionary).")


def _table_part(path, profile, spec: RedcapSpec, crf: Crf, table, insts, col, got, record, refused, file_name, chunk_rows, warnings):
    """The RawPart of one CRF table (None, with a note, when the table cannot be read)."""
    tspec = crf.table(table)
    fields = [spec.fields[v] for v in spec.fields if spec.fields[v].instrument in insts]
    inst = insts[0]
    repeating = spec.instruments[inst]["repeating"]
    from_record = spec.instruments[inst]["from_record"] if repeating else []
    # CRF field -> (kind, MappedField, option code)
    cols: dict[str, tuple[str, MappedField | None, str | None]] = {}
    for f in fields:
        if f.variable in refused:
            continue
        if f.options:
            for code, crf_f in f.options.items():
                cols[crf_f] = ("option", f, code)
        elif f.lab:
            continue
        else:
            cols[f.crf] = ("field", f, None)
    rec_var = {f.crf: v for v, f in spec.fields.items() if not f.repeating and f.crf}
    for crf_f in from_record:
        if rec_var.get(crf_f) not in refused:  # a refused record field is refused on every row that takes it
            cols.setdefault(crf_f, ("record", None, None))
    labs = [f for f in fields if f.lab and f.variable not in refused] if table == "labs" else []
    if table == "labs":
        if not labs:
            warnings.append("table labs not read from this delivery: none of its laboratory fields can be read")
            return None
        cols["test"] = ("lab_test", None, None)
        cols["value"] = ("lab_value", None, None)
        cols["unit"] = ("lab_unit", None, None)
    refused_req = [f for f, s in tspec.fields.items() if s.required and s.phi != "drop" and f not in cols]
    if refused_req:
        why = "; ".join(
            f"{f}: REDCap field {profile.header_for(table, f)} {refused.get(profile.header_for(table, f), 'not mapped')}"
            for f in refused_req
        )
        warnings.append(
            f"table {table} not read from this delivery (its current rows stay as they are): required field(s) cannot be read ({why}); "
            f"update the center profile {spec.profile_file} and read the delivery again"
        )
        return None
    order = [f for f in tspec.fields if f in cols]
    header = [profile.header_for(table, f) for f in order]

    def chunks():
        empty_instances = 0
        for chunk, rows in read_csv_part(path, profile, table, file_name, chunk_rows).chunks:
            v = chunk.to_numpy(dtype=object)
            inst_col = v[:, col[REPEAT_INSTRUMENT]] if REPEAT_INSTRUMENT in col else np.full(len(v), "", dtype=object)
            sel = np.flatnonzero(inst_col == inst) if repeating else np.flatnonzero(inst_col == "")
            if not len(sel):
                continue
            v, rows = v[sel], rows[sel]
            # an instance with no value and no tick holds nothing to read, whatever its form status
            entered, data = _instruments_entered(v, col, fields, insts, refused)
            filled = np.logical_or.reduce(list(data.values())) if data else np.zeros(len(v), dtype=bool)
            if repeating and not filled.all():
                empty_instances += int((~filled).sum())
                v, rows = v[filled], rows[filled]
                entered = {k: m[filled] for k, m in entered.items()}
            if not len(v):
                continue
            out: dict[str, np.ndarray] = {}
            fails: list[pd.DataFrame] = []
            rids = np.array([str(x).strip() for x in v[:, col[spec.record_id]]], dtype=object)
            for crf_f, (kind, f, code) in cols.items():
                if kind == "record":
                    out[crf_f] = np.array([record.get(r, {}).get(crf_f, "") for r in rids], dtype=object)
                elif kind == "option":
                    raw = v[:, col[f"{f.variable}___{code}"]]
                    txt, bad = _translate(raw, {"1": "true", "0": "false"})
                    txt[~entered[f.instrument] & ~bad] = ""  # a form never entered: not abstracted (NULL), not "not ticked"
                    out[crf_f] = txt
                    if bad.any():
                        fails.append(_fail(np.flatnonzero(bad), crf_f, (
                            f"不是REDCap复选框 {f.variable} 的取值（可填：1 = 勾选、0 = 未勾选）",
                            f"is not a value of REDCap checkbox {f.variable} (1 = ticked, 0 = not ticked)")))
                elif kind == "field":
                    raw = v[:, col[f.variable]]
                    if f.type in BOOL_TYPES:
                        out[crf_f] = _translate(raw, {"1": "true", "0": "false"})[0]  # other text: the CRF's yes/no check
                    elif f.type in ("radio", "dropdown"):
                        ch = _delivered_choices(got, f)
                        mapping = {c: _canon_text(x) for c, x in f.code_map(ch).items()}
                        txt, bad = _translate(raw, mapping)
                        out[crf_f] = txt
                        if bad.any():
                            fails.append(_fail(np.flatnonzero(bad), crf_f, _choice_msg(f, ch)))
                    else:
                        out[crf_f] = np.array([str(x).strip() for x in raw], dtype=object)
            if table == "labs":
                frame, rows, fails = _long_labs(v, rows, out, labs, col, order, fails)
            else:
                frame = pd.DataFrame({j: out[f] for j, f in enumerate(order)})
            failures = pd.concat(fails, ignore_index=True) if fails else pd.DataFrame(columns=FAILURE_COLUMNS)
            yield frame, rows, failures
        if empty_instances:
            warnings.append(f"records export: {empty_instances} empty instance(s) of instrument {inst} skipped (no value in any field)")

    return RawPart(table=table, sheet=None, header=header, header_row=1, chunks=chunks())


def _instruments_entered(v: np.ndarray, col: dict, fields: list[MappedField], insts: list[str],
                         refused: dict) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per instrument, (the rows in which it was entered, the rows holding a value or a
    tick) (docs/STUDY_RULES.md#extraction, REDCap checkboxes). REDCap exports an unticked
    checkbox as 0 whether or not the form was ever opened, so a 0 alone says nothing: an
    instrument counts as entered in a row when one of its other fields holds a value, one
    of its checkboxes is ticked, or its ``<instrument>_complete`` status is 1 (unverified)
    or 2 (complete). Where it was not, its checkboxes are read as missing rather than as
    "not ticked". The second mask (values and ticks alone) says whether a row holds
    anything to read."""
    entered: dict[str, np.ndarray] = {}
    data: dict[str, np.ndarray] = {}
    for inst in insts:
        m = np.zeros(len(v), dtype=bool)
        for f in fields:
            if f.instrument != inst or f.variable in refused:
                continue
            if f.options:
                for k in f.options:
                    c = f"{f.variable}___{k}"
                    if c in col:
                        m |= ~np.isin(_stripped(v[:, col[c]]), ("0", ""))  # ticked, or a value the checkbox check refuses
            elif f.variable in col:
                m |= v[:, col[f.variable]] != ""
        data[inst] = m
        form_status = f"{inst}_complete"
        entered[inst] = m | np.isin(_stripped(v[:, col[form_status]]), ("1", "2")) if form_status in col else m
    return entered, data


def _stripped(a: np.ndarray) -> np.ndarray:
    return np.array([str(x).strip() for x in a], dtype=object)


def _delivered_choices(got: dict, f: MappedField):
    """The choices a field is read with: for ``by_label`` the delivered dictionary's (the
    mapping follows the labels), else the profile's (a changed explicit field is refused)."""
    if f.codes == "by_label" and f.variable in got:
        return got[f.variable]["choices"]
    return f.choices


def _fail(pos: np.ndarray, fld: str, msg: tuple[str, str]) -> pd.DataFrame:
    m = np.empty(len(pos), dtype=object)
    m.fill(msg)
    return pd.DataFrame({"pos": np.asarray(pos, dtype=np.int64), "field": fld, "rule": "code", "message": m})


def _long_labs(v, rows, out, labs, col, order, fails):
    """One laboratory instance row -> one labs row per filled laboratory field (same
    source row); failures of the instance row are carried onto each of its lab rows."""
    parts_pos, parts_f = [], []
    for k, f in enumerate(labs):
        txt = np.array([str(x).strip() for x in v[:, col[f.variable]]], dtype=object)
        pos = np.flatnonzero(txt != "")
        parts_pos.append(pos)
        parts_f.append((k, f, txt[pos]))
    if not parts_pos:
        return pd.DataFrame({j: [] for j in range(len(order))}), rows[:0], []
    src = np.concatenate(parts_pos)
    which = np.concatenate([np.full(len(p), k) for p, (k, _f, _t) in zip(parts_pos, parts_f)])
    vals = np.concatenate([t for _k, _f, t in parts_f]) if len(src) else np.array([], dtype=object)
    ordr = np.lexsort((which, src))
    src, which, vals = src[ordr], which[ordr], vals[ordr]
    tests = np.array([labs[k].lab for k in which], dtype=object)
    units = np.array([labs[k].unit for k in which], dtype=object)
    cols = {}
    for j, fname in enumerate(order):
        if fname == "test":
            cols[j] = tests
        elif fname == "value":
            cols[j] = vals
        elif fname == "unit":
            cols[j] = units
        else:
            cols[j] = out[fname][src]
    new_fails = []
    for fr in fails:  # instance-level failures (a choice field of the instrument) onto every lab row of it
        m = pd.DataFrame({"src": src, "pos": np.arange(len(src))}).merge(fr.rename(columns={"pos": "src"}), on="src")
        new_fails.append(m.drop(columns="src")[FAILURE_COLUMNS])
    return pd.DataFrame(cols), rows[src], new_fails


__all__ = [
    "DICTIONARY_COLUMNS",
    "DictionaryChange",
    "MappedField",
    "RedcapProfileError",
    "RedcapSpec",
    "compare_dictionary",
    "dictionary_name_for",
    "is_dictionary_file",
    "read_dictionary",
    "read_redcap_parts",
    "redcap_spec",
]
