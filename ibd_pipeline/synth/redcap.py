"""The synthetic single-center hospital's REDCap project (First Affiliated Hospital of Anhui
Medical University, center ``ahmu``): its data dictionary and its records export.

This is the "real world" the center profile ``studies/single_center_cd/centers/ahmu.yaml``
describes: the profile is written against this project, never derived from it, so a round
trip (canonical frames -> REDCap export -> extraction through the profile) tests the profile.

* :func:`hospital_project` - the project as the hospital built it (instruments, variables,
  field types, choices, validation), :meth:`RedcapProject.dictionary` its data dictionary
  in REDCap's 18 columns.
* :func:`write_redcap_export` - canonical frames (docs/ARCHITECTURE.md "Canonical frames",
  ``mrn`` and ``abstractor_id`` filled) -> ``redcap_records_{yyyymmdd}.csv`` (classic
  project, raw coded values, one row per record and per repeating-instrument instance,
  checkboxes as ``<variable>___<code>`` columns, dates YYYY-MM-DD, empty = missing) and
  ``redcap_dictionary_{yyyymmdd}.csv``.
* :meth:`RedcapProject.renamed`, :meth:`recoded`, :meth:`relabelled`, :meth:`with_choice`,
  :meth:`retyped` - the project after a change of its dictionary (the export then uses the
  new names and codes, as REDCap does), for tests of the change detection.

What REDCap cannot hold is not invented: a checkbox option is ticked or not (a missing
canonical value is written unticked), and a CRF column the project has no field for is
not written (listed in :attr:`RedcapExport.not_recorded`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .names import chinese_names, mobile_numbers

DICTIONARY_COLUMNS = [
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
]
RECORDS_FILES = "redcap_records_{yyyymmdd}.csv"
DICTIONARY_FILES = "redcap_dictionary_{yyyymmdd}.csv"


@dataclass(frozen=True)
class Choice:
    code: str  # REDCap's raw code
    label: str
    value: object  # the canonical value it stands for; for a checkbox, the CRF bool column it ticks


@dataclass(frozen=True)
class RField:
    """One REDCap variable and what it records (``source``: the canonical column of the
    form's table; ``record_id``, ``patient_name``, ``phone`` for the identifiers)."""

    variable: str
    form: str
    ftype: str  # text, radio, dropdown, checkbox, yesno, notes
    label: str
    source: str | None
    choices: tuple[Choice, ...] = ()
    validation: str = ""
    vmin: str = ""
    vmax: str = ""
    identifier: bool = False
    note: str = ""
    branching: str = ""
    required: bool = False
    lab: tuple[str, str] | None = None  # (CRF lab test, unit) of a wide laboratory field


# form -> (CRF table, repeating, the frame column that orders its instances)
FORMS: dict[str, tuple[str, bool, str | None]] = {
    "baseline": ("patients", False, None),
    "prior_therapy": ("medications", True, "start_date"),
    "visit": ("assessments", True, "visit_date"),
    "laboratory": ("labs", True, "sample_date"),
    "adverse_event": ("adverse_events", True, "onset_date"),
    "surgery": ("surgeries", True, "surgery_date"),
    "dose_change": ("dose_episodes", True, "start_date"),
    "pk_sample": ("pk_samples", True, "sample_date"),
}


def _c(spec: str, values: list) -> tuple[Choice, ...]:
    """Choices from "1, Male | 2, Female" and the canonical values in the same order."""
    parts = [p.strip() for p in spec.split("|")]
    assert len(parts) == len(values), spec
    out = []
    for p, v in zip(parts, values):
        code, _, label = p.partition(",")
        out.append(Choice(code.strip(), label.strip(), v))
    return tuple(out)


def _labels(labels: list[str], values: list) -> tuple[Choice, ...]:
    return tuple(Choice(str(i + 1), lab, v) for i, (lab, v) in enumerate(zip(labels, values)))


_DRUGS = [
    ("Infliximab", "infliximab"), ("Adalimumab", "adalimumab"), ("Golimumab", "golimumab"),
    ("Certolizumab pegol", "certolizumab_pegol"), ("Vedolizumab", "vedolizumab"), ("Natalizumab", "natalizumab"),
    ("Ustekinumab", "ustekinumab"), ("Risankizumab", "risankizumab"), ("Mirikizumab", "mirikizumab"),
    ("Guselkumab", "guselkumab"), ("Tofacitinib", "tofacitinib"), ("Filgotinib", "filgotinib"),
    ("Ozanimod", "ozanimod"), ("Etrasimod", "etrasimod"), ("Secukinumab", "secukinumab"),
    ("Azathioprine", "azathioprine"), ("Mercaptopurine", "mercaptopurine"), ("Methotrexate", "methotrexate"),
    ("Tacrolimus", "tacrolimus"), ("Cyclosporine", "cyclosporine"), ("Thalidomide", "thalidomide"),
    ("Tripterygium wilfordii", "tripterygium_wilfordii"), ("Mesalazine", "mesalazine"),
    ("Sulfasalazine", "sulfasalazine"), ("Prednisone", "prednisone"), ("Methylprednisolone", "methylprednisolone"),
    ("Hydrocortisone", "hydrocortisone"), ("Budesonide", "budesonide"),
    ("Exclusive enteral nutrition (EEN)", "exclusive_enteral_nutrition"),
]
_PROCEDURES = [
    ("Ileocecal resection", "ileocecal_resection"), ("Small bowel resection", "small_bowel_resection"),
    ("Segmental colectomy", "segmental_colectomy"), ("Subtotal colectomy", "subtotal_colectomy"),
    ("Total proctocolectomy", "total_proctocolectomy"), ("IPAA", "ipaa"), ("Stricturoplasty", "stricturoplasty"),
    ("Perianal fistula surgery", "perianal_fistula_surgery"), ("Perianal abscess drainage", "perianal_abscess_drainage"),
    ("Seton placement", "seton_placement"), ("Ostomy creation", "ostomy_creation"), ("Other", "other"),
]
_AE_TERMS = [
    ("Acne", "acne"), ("Rash", "rash"), ("Infection", "infection"), ("Herpes zoster", "herpes_zoster"),
    ("Tuberculosis", "tuberculosis"), ("Neutropenia", "neutropenia"), ("Leukopenia", "leukopenia"),
    ("Anemia", "anemia"), ("CK elevation", "ck_elevation"), ("Dyslipidemia", "dyslipidemia"),
    ("Liver enzyme elevation", "liver_enzyme_elevation"), ("Fever", "fever"), ("VTE", "vte"), ("MACE", "mace"),
    ("Malignancy", "malignancy"), ("NMSC", "nmsc"), ("Intestinal perforation", "intestinal_perforation"),
    ("Hospitalization", "hospitalization"), ("Death", "death"), ("Reduced fibrinogen", "reduced_fibrinogen"),
    ("Respiratory tract infection", "respiratory_tract_infection"), ("Hypercholesterolemia", "hypercholesterolemia"),
    ("Other", "other"),
]


def _fields() -> tuple[RField, ...]:
    F = RField
    date = {"validation": "date_ymd"}
    yes_no = "yesno"
    b = "baseline"
    return (
        F("record_id", b, "text", "Record ID", "record_id"),
        F("mrn", b, "text", "Medical record number (住院号)", "mrn", identifier=True, required=True),
        F("pt_name", b, "text", "Patient name", "patient_name", identifier=True),
        F("pt_phone", b, "text", "Phone", "phone", identifier=True, validation="phone"),
        F("abstractor", b, "text", "Abstracted by (staff code)", "abstractor_id", required=True),
        F("sex", b, "radio", "Sex", "sex", _c("1, Male | 2, Female", ["M", "F"]), required=True),
        F("dob", b, "text", "Date of birth", "birth_date", required=True, **date),
        F("dx", b, "radio", "Diagnosis", "diagnosis",
          _c("1, Crohn's disease | 2, Ulcerative colitis | 3, IBD unclassified", ["CD", "UC", "IBDU"]), required=True),
        F("dx_date", b, "text", "Date of diagnosis", "diagnosis_date", required=True, **date),
        F("montreal_l", b, "radio", "Montreal location", "cd_location",
          _c("1, L1 ileal | 2, L2 colonic | 3, L3 ileocolonic | 4, L4 isolated upper GI", ["L1", "L2", "L3", "L4"])),
        F("montreal_l4", b, yes_no, "Upper GI involvement (L4 modifier)", "cd_upper_gi"),
        F("montreal_b", b, "radio", "Montreal behaviour", "cd_behavior",
          _c("1, B1 non-stricturing non-penetrating | 2, B2 stricturing | 3, B3 penetrating", ["B1", "B2", "B3"])),
        F("perianal", b, yes_no, "Perianal disease (p modifier)", "cd_perianal"),
        F("smoking", b, "radio", "Smoking", "smoking",
          _c("1, Current | 2, Former | 3, Never | 9, Unknown", ["current", "former", "never", None])),
        F("height", b, "text", "Height (cm)", "height_cm", validation="number", vmin="50", vmax="230"),
        F("weight", b, "text", "Weight (kg)", "weight_kg", validation="number", vmin="10", vmax="250"),
        F("eim", b, "checkbox", "Extraintestinal manifestations", None,
          _c("1, Eye | 2, Skin | 3, Joint | 4, Other", ["eim_eye", "eim_skin", "eim_joint", "eim_other"])),
        F("imaging_pen", b, yes_no, "Fistula or penetrating lesion on imaging before upadacitinib", "imaging_penetrating"),
        F("imaging_site", b, "dropdown", "Site of the fistula / penetrating lesion", "imaging_penetrating_site",
          _c("1, Ileocecal | 2, Ileum | 3, Colon | 4, Perianal | 5, Other", ["ileocecal", "ileum", "colon", "perianal", "other"]),
          branching="[imaging_pen] = '1'"),
        F("upa_start", b, "text", "Upadacitinib start date", "upa_start_date", required=True, **date),
        F("upa_stop", b, "text", "Upadacitinib stop date", "upa_stop_date", **date),
        F("upa_stop_reason", b, "radio", "Reason upadacitinib was stopped", "upa_stop_reason",
          _c("1, Lack of efficacy | 2, Adverse event | 3, Surgery | 4, Patient's choice | 5, Other",
             ["inefficacy", "adverse_event", "surgery", "patient_choice", "other"]),
          branching="[upa_stop] <> ''"),
        F("last_fu", b, "text", "Date of last follow-up", "last_followup_date", required=True, **date),
        # prior and concomitant therapy (repeating)
        F("med_drug", "prior_therapy", "dropdown", "Drug", "drug",
          _labels([x for x, _ in _DRUGS], [v for _, v in _DRUGS]), required=True),
        F("med_start", "prior_therapy", "text", "Start date", "start_date", required=True, **date),
        F("med_stop", "prior_therapy", "text", "Stop date (episode end)", "stop_date", **date),
        F("med_last_dose", "prior_therapy", "text", "Date of the last administration", "last_dose_date", **date),
        F("med_stop_reason", "prior_therapy", "radio", "Reason stopped", "stop_reason",
          _c("1, Primary non-response | 2, Secondary loss of response | 3, Intolerance | 4, Elective | 5, Other",
             ["primary_nonresponse", "secondary_loss_of_response", "intolerance", "elective", "other"])),
        # clinic visits (repeating)
        F("visit_date", "visit", "text", "Visit date", "visit_date", required=True, **date),
        F("hbi_wellbeing", "visit", "radio", "HBI general well-being", "hbi_wellbeing",
          _c("0, Very well | 1, Slightly below par | 2, Poor | 3, Very poor | 4, Terrible", [0, 1, 2, 3, 4])),
        F("hbi_pain", "visit", "radio", "HBI abdominal pain", "hbi_pain",
          _c("0, None | 1, Mild | 2, Moderate | 3, Severe", [0, 1, 2, 3])),
        F("hbi_stools", "visit", "text", "HBI liquid or soft stools (previous day)", "hbi_liquid_stools",
          validation="integer", vmin="0", vmax="40"),
        F("hbi_mass", "visit", "radio", "HBI abdominal mass", "hbi_mass",
          _c("0, None | 1, Dubious | 2, Definite | 3, Definite and tender", [0, 1, 2, 3])),
        F("hbi_compl", "visit", "text", "HBI complications (number of the eight listed)", "hbi_complications",
          validation="integer", vmin="0", vmax="8"),
        F("ses_cd", "visit", "text", "SES-CD (total)", "ses_cd", validation="integer", vmin="0", vmax="60"),
        F("upa_dose", "visit", "radio", "Upadacitinib daily dose at the visit", "upa_dose_mg",
          _c("15, 15 mg | 30, 30 mg | 45, 45 mg", [15, 30, 45])),
        # laboratory (repeating, wide: one instance per sample date)
        F("lab_date", "laboratory", "text", "Sample date", "sample_date", required=True, **date),
        F("crp", "laboratory", "text", "C-reactive protein (mg/L)", "value", lab=("CRP", "mg/L")),
        F("fc", "laboratory", "text", "Faecal calprotectin (ug/g)", "value", lab=("FC", "ug/g")),
        F("hb", "laboratory", "text", "Haemoglobin (g/L)", "value", validation="number", lab=("HB", "g/L")),
        F("alb", "laboratory", "text", "Albumin (g/L)", "value", validation="number", lab=("ALB", "g/L")),
        F("fib", "laboratory", "text", "Fibrinogen (g/L)", "value", validation="number", lab=("FIB", "g/L")),
        # adverse events (repeating)
        F("ae_onset", "adverse_event", "text", "Onset date", "onset_date", required=True, **date),
        F("ae_term", "adverse_event", "dropdown", "Adverse event", "term",
          _labels([x for x, _ in _AE_TERMS], [v for _, v in _AE_TERMS]), required=True),
        F("ae_severity", "adverse_event", "radio", "Severity", "severity",
          _c("1, Mild | 2, Moderate | 3, Severe", ["mild", "moderate", "severe"])),
        F("ae_serious", "adverse_event", yes_no, "Serious adverse event", "serious", required=True),
        F("ae_led_stop", "adverse_event", yes_no, "Led to stopping upadacitinib", "led_to_discontinuation", required=True),
        F("ae_dose_reduced", "adverse_event", yes_no, "Led to a dose reduction", "led_to_dose_reduction"),
        # surgery (repeating)
        F("surg_date", "surgery", "text", "Date of surgery", "surgery_date", required=True, **date),
        F("surg_proc", "surgery", "dropdown", "Procedure", "procedure",
          _labels([x for x, _ in _PROCEDURES], [v for _, v in _PROCEDURES]), required=True),
        F("surg_ibd", "surgery", yes_no, "IBD-related", "ibd_related", required=True),
        F("surg_urgency", "surgery", "radio", "Urgency", "urgency", _c("1, Elective | 2, Emergency", ["elective", "emergency"])),
        F("surg_indication", "surgery", "radio", "Indication", "indication",
          _c("1, Fistula | 2, Obstruction | 3, Perforation | 4, Bleeding | 5, Other",
             ["fistula", "obstruction", "perforation", "bleeding", "other"])),
        # upadacitinib dose episodes (repeating)
        F("dose_start", "dose_change", "text", "Date the dose started", "start_date", required=True, **date),
        F("dose_mg", "dose_change", "radio", "Daily dose", "dose_mg", _c("45, 45 mg | 30, 30 mg | 15, 15 mg", [45, 30, 15]),
          required=True),
        F("dose_reason", "dose_change", "radio", "Reason", "reason",
          _c("1, Induction | 2, Maintenance | 3, Adverse event | 4, Endoscopic remission | 5, Other",
             ["induction", "maintenance", "adverse_event", "endoscopic_remission", "other"])),
        # pharmacokinetic samples (repeating)
        F("pk_date", "pk_sample", "text", "Sample date", "sample_date", required=True, **date),
        F("pk_time", "pk_sample", "text", "Sample time", "sample_time", validation="time"),
        F("pk_hours", "pk_sample", "text", "Hours since the last dose", "hours_since_last_dose",
          validation="number", vmin="0", vmax="72"),
        F("pk_conc", "pk_sample", "text", "Plasma upadacitinib (ng/mL)", "upa_ng_ml", validation="number", vmin="0"),
        F("pk_assay", "pk_sample", "radio", "Assay", "assay", _c("1, LC-MS/MS | 2, Other", ["lc_ms", "other"])),
    )


@dataclass(frozen=True)
class RedcapProject:
    """A REDCap project: its fields in dictionary order (forms in ``FORMS`` order)."""

    fields: tuple[RField, ...]

    def field(self, variable: str) -> RField:
        for f in self.fields:
            if f.variable == variable:
                return f
        raise KeyError(f"the REDCap project has no field {variable!r}")

    def dictionary(self) -> pd.DataFrame:
        """The data dictionary in REDCap's 18 columns (every cell text, empty = '')."""
        rows = []
        for f in self.fields:
            rows.append({
                "Variable / Field Name": f.variable,
                "Form Name": f.form,
                "Section Header": "",
                "Field Type": f.ftype,
                "Field Label": f.label,
                "Choices, Calculations, OR Slider Labels": " | ".join(f"{c.code}, {c.label}" for c in f.choices),
                "Field Note": f.note,
                "Text Validation Type OR Show Slider Number": f.validation,
                "Text Validation Min": f.vmin,
                "Text Validation Max": f.vmax,
                "Identifier?": "y" if f.identifier else "",
                "Branching Logic (Show field only if...)": f.branching,
                "Required Field?": "y" if f.required else "",
                "Custom Alignment": "",
                "Question Number (surveys only)": "",
                "Matrix Group Name": "",
                "Matrix Ranking?": "",
                "Field Annotation": "",
            })
        return pd.DataFrame(rows, columns=DICTIONARY_COLUMNS)

    def _with(self, name: str, **changes) -> "RedcapProject":
        self.field(name)
        return RedcapProject(tuple(replace(f, **changes) if f.variable == name else f for f in self.fields))

    # ----------------------------------------------------------- dictionary changes
    def renamed(self, variable: str, new: str) -> "RedcapProject":
        """The variable renamed (the export then has the new column)."""
        return self._with(variable, variable=new)

    def recoded(self, variable: str, codes: dict[str, str]) -> "RedcapProject":
        """Raw choice codes changed ({old: new}), labels and meanings kept."""
        f = self.field(variable)
        return self._with(variable, choices=tuple(replace(c, code=codes.get(c.code, c.code)) for c in f.choices))

    def relabelled(self, variable: str, code: str, label: str) -> "RedcapProject":
        """A choice's label changed, its code kept."""
        f = self.field(variable)
        return self._with(variable, choices=tuple(replace(c, label=label) if c.code == code else c for c in f.choices))

    def with_choice(self, variable: str, code: str, label: str, value) -> "RedcapProject":
        """A choice added at the end."""
        f = self.field(variable)
        return self._with(variable, choices=f.choices + (Choice(code, label, value),))

    def retyped(self, variable: str, ftype: str | None = None, validation: str | None = None) -> "RedcapProject":
        f = self.field(variable)
        return self._with(variable, ftype=ftype or f.ftype, validation=f.validation if validation is None else validation)


def hospital_project() -> RedcapProject:
    """The hospital's REDCap project as it is today."""
    return RedcapProject(_fields())


# ------------------------------------------------------------------- export
@dataclass
class RedcapExport:
    records: Path
    dictionary: Path
    n_records: int
    n_rows: int  # data rows of the records export
    not_recorded: dict[str, list[str]] = field(default_factory=dict)  # table -> filled columns the project has no field for


def _yyyymmdd(date) -> str:
    if isinstance(date, (_dt.date, _dt.datetime, pd.Timestamp)):
        return pd.Timestamp(date).strftime("%Y%m%d")
    s = str(date).replace("-", "")
    _dt.datetime.strptime(s, "%Y%m%d")
    return s


def _missing(v) -> bool:
    return v is None or (not isinstance(v, str) and bool(pd.isna(v)))


def _num(v) -> str:
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _plain(v, f: RField) -> str:
    if _missing(v):
        return ""
    if isinstance(v, (pd.Timestamp, _dt.date, np.datetime64)):
        return pd.Timestamp(v).strftime("%Y-%m-%d")
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _num(v)
    return str(v)


def _choice_code(v, f: RField, table: str) -> str:
    if _missing(v):
        return next((c.code for c in f.choices if c.value is None), "")
    for c in f.choices:
        if c.value is not None and (c.value == v or str(c.value) == str(v)):
            return c.code
    raise ValueError(f"{table}.{f.source} = {v!r}: the REDCap field {f.variable} has no choice for it")


def _cell(row: pd.Series, f: RField, table: str) -> dict[str, str]:
    if f.ftype == "checkbox":
        return {f"{f.variable}___{c.code}": "1" if (not _missing(row.get(c.value)) and bool(row.get(c.value))) else "0"
                for c in f.choices}
    v = row.get(f.source)
    if f.ftype in ("radio", "dropdown"):
        return {f.variable: _choice_code(v, f, table)}
    if f.ftype == "yesno":
        return {f.variable: "" if _missing(v) else ("1" if bool(v) else "0")}
    return {f.variable: _plain(v, f)}


def _columns(project: RedcapProject) -> list[str]:
    cols = ["record_id", "redcap_repeat_instrument", "redcap_repeat_instance"]
    forms = []
    for f in project.fields:
        if f.form not in forms:
            forms.append(f.form)
    for form in forms:
        for f in project.fields:
            if f.form != form or f.source == "record_id":
                continue
            cols += [f"{f.variable}___{c.code}" for c in f.choices] if f.ftype == "checkbox" else [f.variable]
        cols.append(f"{form}_complete")
    return cols


def _identifiers(mrns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Fake names and phone numbers (identifiers the export holds and the pipeline drops),
    the same for the same record numbers."""
    seed = int(hashlib.sha256("|".join(mrns).encode()).hexdigest()[:12], 16)
    rng = np.random.default_rng(seed)
    return chinese_names(rng, len(mrns)), mobile_numbers(rng, len(mrns))


def write_redcap_export(
    frames: dict[str, pd.DataFrame], project: RedcapProject | None, out_dir: Path | str, date
) -> RedcapExport:
    """Write the hospital's REDCap delivery of ``frames`` (one frame per CRF table, columns
    = CRF field names, ``mrn`` and ``abstractor_id`` filled; labs long in canonical units)
    into ``out_dir``: ``redcap_records_{yyyymmdd}.csv`` and ``redcap_dictionary_{yyyymmdd}.csv``.
    ``project``: the REDCap project (None: :func:`hospital_project`); the records follow its
    variable names and raw codes. A canonical value the project has no choice for raises
    ValueError naming table, column and value."""
    project = project or hospital_project()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ymd = _yyyymmdd(date)
    patients = frames["patients"].reset_index(drop=True)
    mrns = [str(m) for m in patients["mrn"]]
    if len(set(mrns)) != len(mrns):
        raise ValueError("patients: an mrn occurs twice; a REDCap record is one patient")
    names, phones = _identifiers(mrns)
    by_form: dict[str, list[RField]] = {}
    for f in project.fields:
        by_form.setdefault(f.form, []).append(f)
    not_recorded: dict[str, list[str]] = {}
    for form, (table, _rep, _order) in FORMS.items():
        df = frames.get(table)
        if df is None or not len(df):
            continue
        held = {f.source for f in by_form.get(form, [])} | {c.value for f in by_form.get(form, []) if f.ftype == "checkbox" for c in f.choices}
        held |= {"mrn", "abstractor_id", "patient_name", "phone", "test", "unit", "qualifier", "value_reported", "unit_reported"}
        extra = [c for c in df.columns if c not in held and df[c].notna().any()]
        if extra:
            not_recorded[table] = extra
    rows: list[dict[str, str]] = []
    for i, p in patients.iterrows():
        rid = str(i + 1)
        base = {"record_id": rid, "redcap_repeat_instrument": "", "redcap_repeat_instance": ""}
        for f in by_form["baseline"]:
            if f.source == "record_id":
                continue
            if f.source == "patient_name":
                base[f.variable] = str(names[i])
            elif f.source == "phone":
                base[f.variable] = str(phones[i])
            else:
                base.update(_cell(p, f, "patients"))
        base["baseline_complete"] = "2"
        rows.append(base)
        mrn = mrns[i]
        for form, (table, repeating, order) in FORMS.items():
            if not repeating or form not in by_form or table not in frames:
                continue
            df = frames[table]
            mine = df[df["mrn"].astype(str) == mrn]
            if not len(mine):
                continue
            if table == "labs":
                instances = _wide_labs(mine, by_form[form])
            else:
                instances = [r for _, r in mine.sort_values(order, kind="stable").iterrows()]
            for k, r in enumerate(instances, start=1):
                row = {"record_id": rid, "redcap_repeat_instrument": form, "redcap_repeat_instance": str(k)}
                for f in by_form[form]:
                    if table == "labs" and f.lab is not None:
                        row[f.variable] = r.get(f.variable, "")
                    else:
                        row.update(_cell(r, f, table))
                row[f"{form}_complete"] = "2"
                rows.append(row)
    cols = _columns(project)
    rec_path = out / RECORDS_FILES.format(yyyymmdd=ymd)
    with open(rec_path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    dict_path = out / DICTIONARY_FILES.format(yyyymmdd=ymd)
    project.dictionary().to_csv(dict_path, index=False, encoding="utf-8", lineterminator="\n")
    return RedcapExport(rec_path, dict_path, len(patients), len(rows), not_recorded)


def _wide_labs(labs: pd.DataFrame, fields: list[RField]) -> list[pd.Series]:
    """Long labs of one patient -> one laboratory instance per sample date."""
    by_test = {f.lab[0]: f for f in fields if f.lab is not None}
    date_field = next(f for f in fields if f.source == "sample_date")
    out = []
    for day, g in labs.groupby("sample_date", sort=True):
        inst = {date_field.source: day}
        for _, r in g.iterrows():
            f = by_test.get(r["test"])
            if f is None:
                raise ValueError(f"labs: test {r['test']!r} has no field in the REDCap laboratory instrument")
            if str(r["unit"]) != f.lab[1]:
                raise ValueError(f"labs: {r['test']} in {r['unit']!r}; the REDCap field {f.variable} holds {f.lab[1]}")
            q = r.get("qualifier")
            text = "" if _missing(r["value"]) else _num(r["value"])
            inst[f.variable] = (str(q) + text) if isinstance(q, str) and q and text else text
        out.append(pd.Series(inst, dtype=object))
    return out


__all__ = [
    "DICTIONARY_COLUMNS",
    "FORMS",
    "Choice",
    "RField",
    "RedcapProject",
    "RedcapExport",
    "hospital_project",
    "write_redcap_export",
]
