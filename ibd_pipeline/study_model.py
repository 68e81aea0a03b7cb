"""The typed model of a study's settings file (``study.yaml``; issue 15 item 1).

Every load of the settings validates the file once against this model
(:func:`ibd_pipeline.config.load_settings`), so a typo in a key, a wrong type or an
inconsistent reference gives one clear error naming the file and the key - before any
job runs - instead of a ``KeyError`` deep in a step or, worse, a silently ignored
setting. Unknown keys are errors (``extra="forbid"``): a misspelt setting must not fall
back to a default without anyone noticing.

Modules still receive the settings as the validated mapping (``load_settings``);
:func:`load_study_model` gives the typed object.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(_Strict):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self):
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class StudyInfo(_Strict):
    title: str
    period: Period


class Ingestion(_Strict):
    settle_seconds: float = Field(ge=0)
    quarantine_share_warn: float = Field(ge=0, le=1)
    quarantine_share_error: float = Field(ge=0, le=1)
    hold_below_share: float = Field(ge=0, le=1)


class Reconciliation(_Strict):
    sample_fraction: float = Field(gt=0, le=1)
    sample_seed: int
    min_per_stratum: int = Field(ge=0)
    agreement_threshold_pct: float = Field(ge=0, le=100)
    unresolved_discrepancies: Literal["warn", "block"]


class ActiveDisease(_Strict):
    hbi_min: float
    ses_cd_above: float
    rutgeerts_min: str


class Dtt(_Strict):
    failure_stop_reasons: list[str]
    intolerance_counts_as_failure: bool
    min_failed_mechanisms: int = Field(ge=1)
    failure_stopped_by_upa_start: bool
    advanced_only: bool
    mechanism_groups: dict[str, list[str]]
    resections_required: dict[Literal["adult", "child"], int]
    child_age_below: float
    active_disease: ActiveDisease


class Eligibility(_Strict):
    order: list[str] = Field(min_length=1)
    adult_age: float
    concomitant_biologic_classes: list[str]
    other_order: list[str]
    liver_uln_multiple: float = Field(gt=0)
    egfr_min: float
    min_exposure_days: dict[Literal["UC", "CD"], int]
    post_baseline_needs_score: bool


class Timepoints(_Strict):
    baseline_window: tuple[int, int]
    baseline_endoscopy_window: tuple[int, int]
    targets: dict[str, int | dict[Literal["UC", "CD"], int]]
    window_halfwidth: int = Field(ge=0)
    tie_break: Literal["earlier", "later"]
    cd_endoscopy: Literal["closest_per_score", "closest_endoscopy"]
    clinical: list[str] = Field(min_length=1)
    labs: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_points(self):
        known = set(self.targets) | {"baseline"}
        for key in ("clinical", "labs"):
            unknown = [t for t in getattr(self, key) if t not in known]
            if unknown:
                raise ValueError(f"{key}: {unknown} not among the targets {sorted(self.targets)} (or baseline)")
        return self


class Steroids(_Strict):
    classes: list[str]
    covering_rule_timepoints: list[str] = []
    free_days_before_assessment: int = Field(ge=0)


class CdEndpoints(_Strict):
    remission_hbi_max: float
    response_hbi_drop_points: float
    response_hbi_drop_pct: float
    endoscopic_remission_ses_cd_max: float
    endoscopic_remission_rutgeerts: list[str]
    endoscopic_response_drop_pct: float


class UcEndpoints(_Strict):
    remission_adapted_mayo_max: float
    remission_subscore_max: float
    response_drop_points: float
    response_drop_pct: float
    response_bleeding_drop: float
    response_bleeding_max: float
    endoscopic_remission_endo_max: float
    endoscopic_response_drop_pct: float


class Biochemical(_Strict):
    crp_below: float
    fc_below: float


class ClinicalEndpoint(_Strict):
    rule: Literal["remission", "response", "endoscopy_remission", "endoscopy_response"]
    steroid_free: bool = False
    label: str | None = None


class BiomarkerEndpoint(_Strict):
    rule: Literal["fc_or_crp_normal", "crp_normal", "fc_normal"]
    label: str | None = None


class Endpoints(_Strict):
    clinical_endpoints: dict[str, ClinicalEndpoint] = Field(min_length=1)
    biomarker_endpoints: dict[str, BiomarkerEndpoint] = {}
    CD: CdEndpoints
    UC: UcEndpoints
    biochemical: Biochemical
    nri_events: list[str]


class SpecialInterest(_Strict):
    name: str
    serious: bool = False


class Safety(_Strict):
    treatment_emergent_days_after_stop: int = Field(ge=0)
    special_interest: list[SpecialInterest] = []


class Persistence(_Strict):
    km_months: list[float] = Field(min_length=1)
    days_per_month: float = Field(gt=0)
    km_groups: list[str] = Field(min_length=1)


class Outcome(_Strict):
    endpoint: str
    timepoint: str
    analysis: Literal["complete_case", "nri"]


class Heterogeneity(_Strict):
    timepoint: str
    endpoints: list[str] = Field(min_length=1)


class Table1Variable(_Strict):
    name: str
    diagnoses: list[Literal["UC", "CD"]] | None = None


class Statistics(_Strict):
    seed: int
    alpha: float = Field(gt=0, lt=1)
    normal_variables: list[str] = []
    fisher_expected_below: float = Field(ge=0)
    cv_folds: int = Field(ge=2)
    bootstrap_samples: int = Field(ge=0)
    cox_entry_p: float = Field(gt=0, le=1)
    events_per_variable: float = Field(gt=0)
    cox_tolerance: float = Field(gt=0)
    small_cell_below: int = Field(ge=0)
    predictor_outcome: Outcome
    heterogeneity: Heterogeneity
    table1_variables: list[Table1Variable]
    covariates: list[str]


class MontrealAge(_Strict):
    A1_below: float
    A3_above: float


class DrugList(_Strict):
    drugs: list[str]


class BaselineFlag(_Strict):
    what: str
    threshold: str
    unit: str = ""
    compare: Literal["<=", ">"]


class Baseline(_Strict):
    montreal_age: MontrealAge
    bmi_low: float
    albumin_low: float
    crp_high: float
    fc_high: float
    prior_drug_groups: dict[str, list[str] | DrugList]
    steroid_classes: list[str]
    concomitant_drugs: list[str]
    surgery_history: dict | None = None
    flags: dict[str, BaselineFlag] = {}


class StudySettings(_Strict):
    """A study's settings (``study.yaml``): every threshold, window and ordering of its protocol."""

    study: StudyInfo
    ingestion: Ingestion
    reconciliation: Reconciliation
    dtt: Dtt
    eligibility: Eligibility
    timepoints: Timepoints
    steroids: Steroids
    endpoints: Endpoints
    safety: Safety
    persistence: Persistence
    statistics: Statistics
    baseline: Baseline

    @model_validator(mode="after")
    def _references(self):
        clinical = set(self.timepoints.clinical)
        for where, tp in (("statistics.predictor_outcome.timepoint", self.statistics.predictor_outcome.timepoint),
                          ("statistics.heterogeneity.timepoint", self.statistics.heterogeneity.timepoint)):
            if tp not in clinical:
                raise ValueError(f"{where}: {tp!r} is not a clinical time point ({sorted(clinical)})")
        if self.ingestion.quarantine_share_error < self.ingestion.quarantine_share_warn:
            raise ValueError("ingestion.quarantine_share_error is below quarantine_share_warn")
        return self


class StudySettingsError(ValueError):
    """A settings file that does not match the model: one message, every problem, each
    with the file and the key."""


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def validate_settings(data: object, source: str) -> StudySettings:
    """The typed settings, or :class:`StudySettingsError` naming ``source`` and each key."""
    if not isinstance(data, dict):
        raise StudySettingsError(f"{source}: the settings file must be a mapping of sections, not {type(data).__name__}")
    try:
        return StudySettings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            msg = "unknown key (a typo? the model has no such setting)" if e["type"] == "extra_forbidden" else e["msg"]
            lines.append(f"  {_where(e['loc'])}: {msg}" + ("" if e["type"] in ("missing", "extra_forbidden")
                                                           else f" (got {e.get('input')!r})"))
        raise StudySettingsError(f"{source}: {len(lines)} problem(s) in the study settings:\n" + "\n".join(lines)) from None
