"""The data-quality suite declared as data (Kahn framework).

``quality_checks(settings, crf)`` returns one :class:`QualityCheck` per Great Expectations
expectation. The CRF supplies code lists, types, required fields, ranges and table keys;
``checks.yaml`` (overridable by a ``quality:`` section of study.yaml) supplies thresholds,
physiological limits, temporal rules and diagnosis-specific fields. Nothing here imports
great_expectations: the expectation is named by its class and built lazily
(:meth:`QualityCheck.to_gx`).

Kahn categories (Kahn et al., eGEMs 2016; OHDSI Data Quality Dashboard):

* conformance - value (types, code lists, patterns, canonical units), relational (links
  between tables), computational (derived columns agree with their definition);
* completeness - value (a field that must be present is present), relational (a record
  that must exist in another table exists: the baseline score of an included patient);
* plausibility - atemporal (ranges, physiological limits, uniqueness, consistency with the
  diagnosis), temporal (order of dates).

Check ids are ``<category>_<rule>_<table>_<column>`` in lower case with underscores only,
so they are valid Dagster asset-check names.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path


from ibd_pipeline.config import Crf, read_yaml, with_overrides

CHECKS_FILE = Path(__file__).with_name("checks.yaml")

CATEGORIES = ("conformance", "completeness", "plausibility")
SUBCATEGORIES = ("value", "relational", "computational", "atemporal", "temporal")
SEVERITIES = ("ok", "warn", "error")

#: CRF table -> core table validated.
CORE_TABLES = {
    t: f"core.{t}" for t in ("patients", "medications", "surgeries", "assessments", "labs", "adverse_events")
}
#: Columns that identify a failing row in ``examples`` (besides the columns the check reads).
ROW_KEYS = {
    "core.patients": ("patient_id",),
    "core.medications": ("patient_id", "start_date", "drug"),
    "core.surgeries": ("patient_id", "surgery_date"),
    "core.assessments": ("patient_id", "visit_date"),
    "core.labs": ("patient_id", "sample_date", "test"),
    "core.adverse_events": ("patient_id", "onset_date", "term"),
}
#: Columns of core.patients joined onto the other tables (frames ``core.<t>+patients``).
PATIENT_COLUMNS = ("birth_date", "diagnosis", "diagnosis_date", "upa_start_date", "upa_stop_date", "last_followup_date")
NOT_IN_CORE = ("mrn", "abstractor_id")


@dataclass
class QualityCheck:
    """One Great Expectations expectation with its Kahn category and threshold.

    ``frame`` names the pandas frame validated (``quality.frames``): a core table
    (``core.labs``), a core table joined with its patient's dates
    (``core.labs+patients``), a subset (``core.patients@dx=CD``) or a derived frame
    (``core.patients@recomputed``, ``baseline@included``). ``threshold`` is the largest
    share of failing rows tolerated; ``error_threshold`` the share beyond which the
    severity is ``error`` (between the two: ``warn``)."""

    check_id: str
    category: str  # conformance | completeness | plausibility
    subcategory: str  # value | relational | computational | atemporal | temporal
    table: str
    column: str | None
    description: str
    threshold: float = 0.0  # max share of failing rows tolerated
    expectation: str = ""  # Great Expectations class, e.g. "ExpectColumnValuesToNotBeNull"
    kwargs: dict = field(default_factory=dict)  # expectation arguments (without mostly)
    frame: str = ""
    example_columns: tuple[str, ...] = ("patient_id",)
    error_threshold: float | None = None  # None: threshold x error_multiple

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"{self.check_id}: unknown category {self.category!r}")
        if self.subcategory not in SUBCATEGORIES:
            raise ValueError(f"{self.check_id}: unknown subcategory {self.subcategory!r}")
        if not re.fullmatch(r"[a-z0-9_]+", self.check_id):
            raise ValueError(f"check id {self.check_id!r}: use lower-case letters, digits and underscores")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"{self.check_id}: threshold {self.threshold} is not a share in [0, 1]")
        self.frame = self.frame or self.table

    @property
    def gx_expectation(self) -> str:
        """The Great Expectations expectation type (snake case), e.g.
        ``expect_column_pair_values_a_to_be_greater_than_b``."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.expectation).lower()

    @property
    def columns(self) -> list[str]:
        """The columns the expectation reads (its domain)."""
        kw = self.kwargs
        if "column" in kw:
            return [kw["column"]]
        if "column_A" in kw:
            return [kw["column_A"], kw["column_B"]]
        return list(kw.get("column_list", []))

    @property
    def limit_for_error(self) -> float:
        return float(self.threshold if self.error_threshold is None else self.error_threshold)

    def severity(self, failed_share: float) -> str:
        """``ok`` within the threshold, ``warn`` up to the error threshold, ``error`` beyond."""
        eps = 1e-12
        if failed_share <= self.threshold + eps:
            return "ok"
        if failed_share <= max(self.limit_for_error, self.threshold) + eps:
            return "warn"
        return "error"

    def to_gx(self):
        """The Great Expectations expectation (imports great_expectations)."""
        import great_expectations as gx

        cls = getattr(gx.expectations, self.expectation)
        kw = copy.deepcopy(self.kwargs)
        kw["mostly"] = round(max(0.0, 1.0 - float(self.threshold)), 12)
        kw["meta"] = {
            "check_id": self.check_id,
            "kahn_category": self.category,
            "kahn_subcategory": self.subcategory,
            "threshold": float(self.threshold),
            "error_threshold": self.limit_for_error,
            "table": self.table,
            "frame": self.frame,
        }
        kw["notes"] = (
            f"{self.check_id} ({self.category} / {self.subcategory}): {self.description}. "
            f"Tolerated failing share {self.threshold:g}; error above {self.limit_for_error:g}."
        )
        return cls(**kw)


# --------------------------------------------------------------------------- config
@lru_cache(maxsize=4)
def _read_yaml(path: str, mtime: float) -> dict:
    return read_yaml(path) or {}


def load_check_config(settings: dict | None = None, path: str | Path | None = None) -> dict:
    """``checks.yaml`` with the ``quality:`` section of the study settings merged in."""
    p = Path(path) if path else CHECKS_FILE
    base = copy.deepcopy(_read_yaml(str(p), p.stat().st_mtime))
    override = (settings or {}).get("quality") or {}
    return with_overrides(base, override) if override else base


def _threshold(cfg: dict, check_id: str, category: str) -> tuple[float, float]:
    default = float((cfg.get("default_threshold") or {}).get(category, 0.0))
    multiple = float(cfg.get("error_multiple", 2.0))
    spec = (cfg.get("thresholds") or {}).get(check_id)
    err = None
    if isinstance(spec, dict):
        thr = float(spec.get("threshold", default))
        err = spec.get("error_threshold")
    elif spec is not None:
        thr = float(spec)
    else:
        thr = default
    return thr, float(err) if err is not None else thr * multiple


# --------------------------------------------------------------------------- the suite
def _crf_fields(crf: Crf, tname: str):
    for f, spec in crf.tables[tname].fields.items():
        if f in NOT_IN_CORE or spec.phi == "drop":
            continue
        yield f, spec


def _key_columns(crf: Crf, tname: str) -> list[str]:
    return ["patient_id" if k == "mrn" else k for k in crf.tables[tname].key]


def _keys(table: str, *extra: str) -> tuple[str, ...]:
    out = list(ROW_KEYS.get(table, ("patient_id",)))
    out += [c for c in extra if c and c not in out]
    return tuple(out)


def _conformance(crf: Crf, cfg: dict) -> list[QualityCheck]:
    out: list[QualityCheck] = []
    types = cfg["types"]
    for tname, table in CORE_TABLES.items():
        keys = _keys(table)
        for f, spec in _crf_fields(crf, tname):
            if spec.type in types:
                out.append(QualityCheck(
                    f"conf_type_{tname}_{f}", "conformance", "value", table, f,
                    f"{table}.{f} holds {spec.type} values (CRF type {spec.type})",
                    expectation="ExpectColumnValuesToBeInTypeList",
                    kwargs={"column": f, "type_list": list(types[spec.type])}, example_columns=keys,
                ))
            if spec.codes:
                out.append(QualityCheck(
                    f"conf_code_{tname}_{f}", "conformance", "value", table, f,
                    f"{table}.{f} is one of the CRF codes ({', '.join(map(str, spec.codes[:8]))}{' ...' if len(spec.codes) > 8 else ''})",
                    expectation="ExpectColumnValuesToBeInSet",
                    kwargs={"column": f, "value_set": list(spec.codes)}, example_columns=keys,
                ))
        for f, codes in ((cfg.get("extra_codes") or {}).get(table) or {}).items():
            out.append(QualityCheck(
                f"conf_code_{tname}_{f}", "conformance", "value", table, f,
                f"{table}.{f} is one of {', '.join(map(str, codes))}",
                expectation="ExpectColumnValuesToBeInSet", kwargs={"column": f, "value_set": list(codes)},
                example_columns=keys,
            ))

    out.append(QualityCheck(
        "conf_pattern_patients_patient_id", "conformance", "value", "core.patients", "patient_id",
        f"patient_id is a pseudonymous id matching {cfg['patient_id_pattern']}",
        expectation="ExpectColumnValuesToMatchRegex",
        kwargs={"column": "patient_id", "regex": cfg["patient_id_pattern"]},
    ))
    out.append(QualityCheck(
        "conf_unit_labs_unit", "conformance", "value", "core.labs", "unit",
        "core.labs.unit is the canonical unit of the test (CRF lab_tests = ref.lab_tests, joined as canonical_unit)",
        expectation="ExpectColumnPairValuesToBeEqual",
        kwargs={"column_A": "unit", "column_B": "canonical_unit", "ignore_row_if": "either_value_is_missing"},
        frame="core.labs+patients", example_columns=_keys("core.labs", "value"),
    ))
    for tname, table in CORE_TABLES.items():
        if tname == "patients":
            continue
        out.append(QualityCheck(
            f"conf_relational_{tname}_patient_id", "conformance", "relational", table, "patient_id",
            f"every {table} row belongs to a patient of core.patients",
            expectation="ExpectColumnValuesToBeInSet",
            kwargs={"column": "in_core_patients", "value_set": [True]},
            frame=f"{table}+patients", example_columns=_keys(table),
        ))

    computed = cfg.get("computed") or {}
    recomputed = {
        ("core.patients", "bmi"): (
            "bmi = weight_kg / (height_cm / 100)^2",
            "ExpectColumnValuesToBeBetween",
            {"column": "bmi_abs_diff", "min_value": 0, "max_value": float(cfg.get("bmi_tolerance", 0.01))},
            ("patient_id", "bmi", "height_cm", "weight_kg"),
        ),
        ("core.patients", "age_at_upa_start"): (
            "age_at_upa_start = completed years from birth_date to upa_start_date",
            "ExpectColumnPairValuesToBeEqual",
            {"column_A": "age_at_upa_start", "column_B": "age_at_upa_start_recomputed", "ignore_row_if": "both_values_are_missing"},
            ("patient_id", "birth_date", "upa_start_date"),
        ),
        ("core.patients", "exposure_days"): (
            "exposure_days = (upa_stop_date, else last_followup_date) - upa_start_date",
            "ExpectColumnPairValuesToBeEqual",
            {"column_A": "exposure_days", "column_B": "exposure_days_recomputed", "ignore_row_if": "both_values_are_missing"},
            ("patient_id", "upa_start_date", "upa_stop_date", "last_followup_date"),
        ),
        ("core.assessments", "hbi_total"): (
            "hbi_total = sum of the five HBI items (empty unless all are recorded)",
            "ExpectColumnPairValuesToBeEqual",
            {"column_A": "hbi_total", "column_B": "hbi_total_recomputed", "ignore_row_if": "both_values_are_missing"},
            ("patient_id", "visit_date"),
        ),
        ("core.assessments", "adapted_mayo"): (
            "adapted_mayo = mayo_stool + mayo_bleeding + mayo_endo (empty unless all are recorded)",
            "ExpectColumnPairValuesToBeEqual",
            {"column_A": "adapted_mayo", "column_B": "adapted_mayo_recomputed", "ignore_row_if": "both_values_are_missing"},
            ("patient_id", "visit_date"),
        ),
    }
    for table, cols in computed.items():
        for col in cols:
            if (table, col) not in recomputed:
                raise ValueError(f"checks.yaml computed: no recomputation known for {table}.{col}")
            desc, exp, kw, ex = recomputed[(table, col)]
            out.append(QualityCheck(
                f"conf_computed_{table.split('.', 1)[1]}_{col}", "conformance", "computational", table, col, desc,
                expectation=exp, kwargs=kw, frame=f"{table}@recomputed", example_columns=ex,
            ))
    return out


def _completeness(crf: Crf, cfg: dict) -> list[QualityCheck]:
    out: list[QualityCheck] = []
    for tname, table in CORE_TABLES.items():
        for f, spec in _crf_fields(crf, tname):
            if spec.required:
                out.append(QualityCheck(
                    f"compl_required_{tname}_{f}", "completeness", "value", table, f,
                    f"{table}.{f} is present (required by the CRF)",
                    expectation="ExpectColumnValuesToNotBeNull", kwargs={"column": f}, example_columns=_keys(table),
                ))
    for dx, fields in (cfg.get("required_by_diagnosis") or {}).items():
        for f in fields:
            out.append(QualityCheck(
                f"compl_dx_patients_{f}", "completeness", "value", "core.patients", f,
                f"{dx} patients have {f} (Montreal classification)",
                expectation="ExpectColumnValuesToNotBeNull", kwargs={"column": f},
                frame=f"core.patients@dx={dx}", example_columns=("patient_id", "diagnosis"),
            ))
    for f in cfg.get("anthropometrics") or []:
        out.append(QualityCheck(
            f"compl_anthro_patients_{f}", "completeness", "value", "core.patients", f,
            f"{f} is recorded (BMI, Table 1 and covariates)",
            expectation="ExpectColumnValuesToNotBeNull", kwargs={"column": f},
        ))
    out.append(QualityCheck(
        "compl_conditional_patients_upa_stop_reason", "completeness", "value", "core.patients", "upa_stop_reason",
        "a UPA stop date comes with a stop reason (CRF)",
        expectation="ExpectColumnValuesToNotBeNull", kwargs={"column": "upa_stop_reason"},
        frame="core.patients@stopped", example_columns=("patient_id", "upa_stop_date"),
    ))
    out.append(QualityCheck(
        "compl_conditional_medications_stop_reason", "completeness", "value", "core.medications", "stop_reason",
        "a stopped advanced-therapy episode has a stop reason (IOIBD criterion 1 needs it)",
        expectation="ExpectColumnValuesToNotBeNull", kwargs={"column": "stop_reason"},
        frame="core.medications@advanced_stopped", example_columns=("patient_id", "drug", "start_date", "stop_date"),
    ))
    out.append(QualityCheck(
        "compl_baseline_assessments_score", "completeness", "relational", "core.assessments", "baseline_score",
        "every included patient (analytics.eligibility) has a baseline activity score: HBI total (CD) "
        "or adapted Mayo (UC) in the baseline window",
        expectation="ExpectColumnValuesToNotBeNull", kwargs={"column": "baseline_score"},
        frame="baseline@included", example_columns=("patient_id", "diagnosis", "upa_start_date"),
    ))
    return out


def _as_datetime(v) -> dt.datetime:
    if isinstance(v, dt.datetime):
        return v
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    return dt.datetime.fromisoformat(str(v))


def _plausibility(crf: Crf, cfg: dict, settings: dict) -> list[QualityCheck]:
    out: list[QualityCheck] = []
    # uniqueness (Kahn: atemporal plausibility - uniqueness)
    for tname, table in CORE_TABLES.items():
        key = _key_columns(crf, tname)
        if key == ["patient_id"]:
            exp, kw = "ExpectColumnValuesToBeUnique", {"column": "patient_id"}
        else:
            exp, kw = "ExpectCompoundColumnsToBeUnique", {"column_list": key}
        out.append(QualityCheck(
            f"plaus_unique_{tname}_key", "plausibility", "atemporal", table, ", ".join(key),
            f"one {table} row per ({', '.join(key)})", expectation=exp, kwargs=kw, example_columns=_keys(table),
        ))
    # CRF ranges, then the suite's own ranges
    for tname, table in CORE_TABLES.items():
        for f, spec in _crf_fields(crf, tname):
            if spec.range is None or spec.range == (None, None):
                continue
            lo, hi = spec.range
            out.append(QualityCheck(
                f"plaus_range_{tname}_{f}", "plausibility", "atemporal", table, f,
                f"{table}.{f} within the CRF range [{'' if lo is None else lo}, {'' if hi is None else hi}]",
                expectation="ExpectColumnValuesToBeBetween", kwargs={"column": f, "min_value": lo, "max_value": hi},
                example_columns=_keys(table),
            ))
    for table, cols in (cfg.get("ranges") or {}).items():
        for f, (lo, hi) in cols.items():
            out.append(QualityCheck(
                f"plaus_range_{table.split('.', 1)[1]}_{f}", "plausibility", "atemporal", table, f,
                f"{table}.{f} within [{'' if lo is None else lo}, {'' if hi is None else hi}]",
                expectation="ExpectColumnValuesToBeBetween", kwargs={"column": f, "min_value": lo, "max_value": hi},
                example_columns=_keys(table),
            ))
    if cfg.get("lab_limits"):
        ex = _keys("core.labs", "unit")
        out.append(QualityCheck(
            "plaus_limits_labs_value_low", "plausibility", "atemporal", "core.labs", "value",
            "lab value not below the physiological limit of its test (checks.yaml lab_limits)",
            expectation="ExpectColumnPairValuesAToBeGreaterThanB",
            kwargs={"column_A": "value", "column_B": "physiological_low", "or_equal": True, "ignore_row_if": "either_value_is_missing"},
            frame="core.labs+patients", example_columns=ex,
        ))
        out.append(QualityCheck(
            "plaus_limits_labs_value_high", "plausibility", "atemporal", "core.labs", "value",
            "lab value not above the physiological limit of its test (checks.yaml lab_limits)",
            expectation="ExpectColumnPairValuesAToBeGreaterThanB",
            kwargs={"column_A": "physiological_high", "column_B": "value", "or_equal": True, "ignore_row_if": "either_value_is_missing"},
            frame="core.labs+patients", example_columns=ex,
        ))
    # consistency with the diagnosis
    for table, by_dx in (cfg.get("diagnosis_specific_fields") or {}).items():
        tname = table.split(".", 1)[1]
        base = table if table == "core.patients" else f"{table}+patients"
        for dx, fields in by_dx.items():
            out.append(QualityCheck(
                f"plaus_dx_{tname}_{dx.lower()}_fields", "plausibility", "atemporal", table, ", ".join(fields),
                f"{dx}-only fields ({', '.join(fields)}) are not recorded for patients of another diagnosis",
                expectation="ExpectColumnValuesToBeNull", kwargs={"column": f"{dx.lower()}_fields_recorded"},
                frame=f"{base}@dx!={dx}", example_columns=_keys(table, "diagnosis"),
            ))
    if crf.serious_by_definition:
        out.append(QualityCheck(
            "plaus_serious_adverse_events_serious", "plausibility", "atemporal", "core.adverse_events", "serious",
            f"adverse events serious by definition ({', '.join(crf.serious_by_definition)}) are marked serious",
            expectation="ExpectColumnValuesToBeInSet", kwargs={"column": "serious", "value_set": [True]},
            frame="core.adverse_events@serious_terms", example_columns=_keys("core.adverse_events"),
        ))
    # temporal
    period = (settings.get("study") or {}).get("period") or {}
    if cfg.get("upa_start_in_study_period") and period.get("start") and period.get("end"):
        out.append(QualityCheck(
            "plaus_temporal_patients_upa_start_in_period", "plausibility", "temporal", "core.patients", "upa_start_date",
            f"UPA start within the study period {period['start']} .. {period['end']} (study.yaml study.period)",
            expectation="ExpectColumnValuesToBeBetween",
            kwargs={"column": "upa_start_date", "min_value": _as_datetime(period["start"]), "max_value": _as_datetime(period["end"])},
        ))
    for rule in cfg.get("temporal") or []:
        table = rule["table"]
        later, earlier = rule["later"], rule["earlier"]
        own = later if table == "core.patients" or later not in PATIENT_COLUMNS else earlier
        out.append(QualityCheck(
            f"plaus_temporal_{rule['id']}", "plausibility", "temporal", table, own,
            rule.get("description") or f"{later} not before {earlier}",
            expectation="ExpectColumnPairValuesAToBeGreaterThanB",
            kwargs={"column_A": later, "column_B": earlier, "or_equal": not rule.get("strict", False),
                    "ignore_row_if": "either_value_is_missing"},
            frame=table if table == "core.patients" else f"{table}+patients",
            example_columns=_keys(table),
        ))
    return out


def quality_checks(settings: dict, crf: Crf, config: dict | None = None) -> list[QualityCheck]:
    """The quality suite: every check with its Kahn category, GX expectation and threshold.

    ``config`` defaults to ``checks.yaml`` merged with ``settings['quality']``."""
    cfg = config if config is not None else load_check_config(settings)
    checks = _conformance(crf, cfg) + _completeness(crf, cfg) + _plausibility(crf, cfg, settings)
    ids = [c.check_id for c in checks]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"duplicate quality check ids: {dup}")
    unknown = set(cfg.get("thresholds") or {}) - set(ids)
    if unknown:
        raise ValueError(f"quality thresholds name unknown checks: {sorted(unknown)}")
    for c in checks:
        c.threshold, c.error_threshold = _threshold(cfg, c.check_id, c.category)
        if not 0.0 <= c.threshold <= 1.0:
            raise ValueError(f"{c.check_id}: threshold {c.threshold} is not a share in [0, 1]")
    return checks


def checks_frame(checks: list[QualityCheck]) -> "pd.DataFrame":  # noqa: F821
    """The suite as a table (documentation, report appendix)."""
    import pandas as pd

    return pd.DataFrame([
        {
            "check_id": c.check_id, "category": c.category, "subcategory": c.subcategory, "table_name": c.table,
            "column_name": c.column, "description": c.description, "threshold": c.threshold,
            "error_threshold": c.limit_for_error, "gx_expectation": c.gx_expectation, "frame": c.frame,
        }
        for c in checks
    ])
