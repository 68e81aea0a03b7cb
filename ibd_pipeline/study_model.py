"""The typed model of a study's settings file (``study.yaml``; issue 15 item 1).

Every load of the settings validates the file once against this model
(:func:`ibd_pipeline.config.load_settings`), so a typo in a key, a wrong type or an
inconsistent reference gives one clear error naming the file and the key - before any
job runs - instead of a ``KeyError`` deep in a step or, worse, a silently ignored
setting. Unknown keys are errors (``extra="forbid"``): a misspelt setting must not fall
back to a default without anyone noticing.

One model serves every study: sections a protocol does not have are optional
(``reconciliation: null`` for a single abstraction, ``dtt`` only with
``population.rule: ioibd_dtt``, ``endpoints.UC`` only when ``study.diagnoses`` has UC),
and each eligibility criterion a study names must come with its settings
(:data:`CRITERION_KEYS`).

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
    # the diagnoses the study enrols (a CD-only study needs no UC endpoint settings)
    diagnoses: list[Literal["UC", "CD"]] = Field(default=["UC", "CD"], min_length=1)
    # the last day of follow-up (None: each patient's last follow-up date); a patient still
    # on treatment is followed to this day
    data_cutoff: dt.date | None = None


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


class PriorFailure(_Strict):
    classes: list[str] = Field(min_length=1)
    stop_reasons: list[str] = Field(min_length=1)


# the settings each criterion of the eligibility catalogue (cohort/eligibility.py) reads
CRITERION_KEYS: dict[str, tuple[str, ...]] = {
    "under_18": ("adult_age",),
    "outside_age_range": ("adult_age", "max_age"),
    "no_prior_class_failure": ("prior_failure",),
    "baseline_hbi_below": ("baseline_hbi_min",),
    "incomplete_baseline": ("baseline_required",),
    "concomitant_biologic": ("concomitant_biologic_classes",),
    "prior_procedure": ("excluded_procedures",),
    "other:liver_or_kidney": ("liver_uln_multiple", "egfr_min"),
    "other:short_exposure": ("min_exposure_days",),
}


class Eligibility(_Strict):
    """Inclusion and exclusion: the criteria named in ``order`` (``other`` expands to
    ``other_order``), each reading its own keys (:data:`CRITERION_KEYS`)."""

    order: list[str] = Field(min_length=1)
    other_order: list[str] = []
    post_baseline_needs_score: bool = True
    adult_age: float | None = None
    max_age: float | None = None
    prior_failure: PriorFailure | None = None
    baseline_hbi_min: float | None = None
    baseline_required: list[str] | None = None
    concomitant_biologic_classes: list[str] | None = None
    excluded_procedures: list[str] | None = None
    liver_uln_multiple: float | None = Field(default=None, gt=0)
    egfr_min: float | None = None
    min_exposure_days: dict[Literal["UC", "CD"], int] | None = None

    @model_validator(mode="after")
    def _criteria_have_their_settings(self):
        named = [c for c in self.order if c != "other"] + [f"other:{o}" for o in self.other_order]
        missing = [f"{c} needs eligibility.{k}" for c in named for k in CRITERION_KEYS.get(c, ())
                   if getattr(self, k) is None]
        if missing:
            raise ValueError("; ".join(missing))
        if "other" in self.order and not self.other_order:
            raise ValueError("order names other but other_order is empty")
        return self


class Population(_Strict):
    """Who enters the study: ``ioibd_dtt`` (the IOIBD difficult-to-treat criteria of the
    ``dtt`` section, then the eligibility criteria) or ``criteria`` (the eligibility
    criteria alone, e.g. prior anti-TNF failure, a baseline HBI minimum, an age range)."""

    rule: Literal["ioibd_dtt", "criteria"] = "ioibd_dtt"


class Timepoints(_Strict):
    baseline_window: tuple[int, int]
    baseline_endoscopy_window: tuple[int, int]
    targets: dict[str, int | dict[Literal["UC", "CD"], int]]
    window_halfwidth: int = Field(ge=0)
    tie_break: Literal["earlier", "later"]
    cd_endoscopy: Literal["closest_per_score", "closest_endoscopy"]
    clinical: list[str] = Field(min_length=1)
    labs: list[str] = Field(min_length=1)
    # who is in a time point's analysis set: every included patient (``all_included``:
    # missing = not assessed, or a non-responder under NRI) or those who reached the time
    # point by the data cut-off plus those who stopped before it (``reached_or_stopped``)
    analysis_set: Literal["all_included", "reached_or_stopped"] = "all_included"
    # the time points of the endoscopic endpoints (None: the clinical ones), e.g. one
    # unscheduled follow-up endoscopy with its own wide window
    endoscopic: list[str] | None = None
    # a time point's own window as days from the start [low, high] (its target day is the
    # one the closest value is chosen to), instead of target +- window_halfwidth
    windows_by_timepoint: dict[str, tuple[int, int]] = {}

    @model_validator(mode="after")
    def _known_points(self):
        known = set(self.targets) | {"baseline"}
        for key in ("clinical", "labs", "endoscopic", "windows_by_timepoint"):
            unknown = [t for t in (getattr(self, key) or []) if t not in known]
            if unknown:
                raise ValueError(f"{key}: {unknown} not among the targets {sorted(self.targets)} (or baseline)")
        for tp, (low, high) in self.windows_by_timepoint.items():
            target = self.targets[tp]
            if not isinstance(target, int) or not low <= target <= high or low <= 0:
                raise ValueError(f"windows_by_timepoint.{tp}: [{low}, {high}] must be after day 0 and hold the "
                                 f"time point's one target day ({target})")
        return self


class Steroids(_Strict):
    classes: list[str]
    covering_rule_timepoints: list[str] = []
    free_days_before_assessment: int = Field(ge=0)


class CdEndpoints(_Strict):
    remission_hbi_max: float
    response_hbi_drop_points: float
    response_hbi_drop_pct: float | None  # None: the drop in points alone makes a response
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
    """The biomarker thresholds: each test normal strictly below (``*_below``) or at most
    (``*_max``) its threshold (the endpoint's rule combines the tests: fc_or_crp_normal,
    fc_and_crp_normal)."""

    crp_below: float | None = None
    fc_below: float | None = None
    crp_max: float | None = None
    fc_max: float | None = None

    @model_validator(mode="after")
    def _one_threshold_per_test(self):
        for test in ("crp", "fc"):
            below, at_most = getattr(self, f"{test}_below"), getattr(self, f"{test}_max")
            if (below is None) == (at_most is None):
                raise ValueError(f"give exactly one of {test}_below and {test}_max")
        return self


class ClinicalEndpoint(_Strict):
    rule: Literal["remission", "response", "endoscopy_remission", "endoscopy_response"]
    steroid_free: bool = False
    label: str | None = None


class BiomarkerEndpoint(_Strict):
    rule: Literal["fc_or_crp_normal", "fc_and_crp_normal", "crp_normal", "fc_normal"]
    label: str | None = None


class Endpoints(_Strict):
    clinical_endpoints: dict[str, ClinicalEndpoint] = Field(min_length=1)
    biomarker_endpoints: dict[str, BiomarkerEndpoint] = {}
    CD: CdEndpoints | None = None
    UC: UcEndpoints | None = None
    biochemical: Biochemical
    nri_events: list[str]
    # the endpoint groups a non-responder event makes not_achieved (the single-center study:
    # clinical only; its endoscopic endpoints are complete case)
    nri_applies_to: list[Literal["clinical", "endoscopic"]] = ["clinical", "endoscopic"]


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


class Pharmacokinetics(_Strict):
    """A PK substudy: concentration by the groups of these endpoints at this time point."""

    timepoint: str
    endpoints: list[str] = Field(min_length=1)


class Table1Variable(_Strict):
    name: str
    diagnoses: list[Literal["UC", "CD"]] | None = None


# statistics.cox_selection where a study file (or an older warehouse's ref.settings) leaves it out
COX_SELECTION_DEFAULT = "forward"


class Statistics(_Strict):
    seed: int
    alpha: float = Field(gt=0, lt=1)
    normal_variables: list[str] = []
    fisher_expected_below: float = Field(ge=0)
    # the predictor model: elastic net + Boruta with bootstrap optimism (the multicenter
    # protocol) or univariate logistic regressions, then one multivariable model of the
    # variables with univariate p < cox_entry_p
    predictor_method: Literal["elastic_net_boruta", "logistic"] = "elastic_net_boruta"
    cv_folds: int | None = Field(default=None, ge=2)
    bootstrap_samples: int | None = Field(default=None, ge=0)
    cox_entry_p: float = Field(gt=0, le=1)
    # the multivariable Cox model: forward selection at cox_entry_p, or the candidates of
    # univariate p < cox_entry_p entered together
    cox_selection: Literal["forward", "univariate"] = COX_SELECTION_DEFAULT
    events_per_variable: float = Field(gt=0)
    cox_tolerance: float = Field(gt=0)
    small_cell_below: int = Field(ge=0)
    predictor_outcome: Outcome
    heterogeneity: Heterogeneity | None = None  # None: one center, no center effects
    pharmacokinetics: Pharmacokinetics | None = None  # None: no PK substudy (no core.pk_samples analysis)
    table1_variables: list[Table1Variable]
    covariates: list[str]
    cox_covariates: list[str] | None = None  # the Cox models' candidates (None: covariates)

    @model_validator(mode="after")
    def _method_settings(self):
        if self.predictor_method == "elastic_net_boruta":
            missing = [k for k in ("cv_folds", "bootstrap_samples") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"predictor_method elastic_net_boruta needs {', '.join(missing)}")
        return self


class MontrealAge(_Strict):
    A1_below: float
    A3_above: float


class DrugList(_Strict):
    drugs: list[str]


class BaselineFlag(_Strict):
    """A yes/no baseline covariate: ``source`` compared with a ``baseline`` setting
    (``threshold`` names it). ``source``: ``bmi``, ``age``, ``disease_duration_years``,
    ``hbi`` (the baseline HBI), ``n_prior_advanced_drugs`` or ``lab:<TEST>`` (the baseline value of a CRF lab test;
    its value column is ``what`` in lower case)."""

    what: str
    threshold: str
    unit: str = ""
    compare: Literal["<=", ">"]
    source: str

    @model_validator(mode="after")
    def _known_source(self):
        if self.source not in ("bmi", "age", "disease_duration_years", "hbi", "n_prior_advanced_drugs") \
                and not self.source.startswith("lab:"):
            raise ValueError(f"source {self.source!r}: one of bmi, age, disease_duration_years, hbi, "
                             "n_prior_advanced_drugs or lab:<TEST>")
        return self


class Baseline(_Strict):
    montreal_age: MontrealAge
    bmi_low: float
    albumin_low: float
    crp_high: float
    fc_high: float
    # further thresholds a study's flags may name (baseline.flags.<name>.threshold)
    age_high: float | None = None
    hb_low: float | None = None
    hbi_high: float | None = None
    advanced_drugs_high: float | None = None
    prior_drug_groups: dict[str, list[str] | DrugList]
    steroid_classes: list[str]
    concomitant_drugs: list[str]
    surgery_history: dict | None = None
    flags: dict[str, BaselineFlag] = {}
    # a biologic "prior to UPA": given within this many days before the start (None: not derived)
    recent_biologic_days: int | None = Field(default=None, ge=1)


class Dosing(_Strict):
    """The protocol's UPA doses (mg once daily) and the induction length in days."""

    induction_mg: int = Field(gt=0)
    maintenance_mg: int = Field(gt=0)
    deescalation_mg: int | None = Field(default=None, gt=0)
    escalation_mg: int | None = Field(default=None, gt=0)
    induction_days: int = Field(gt=0)


class Synth(_Strict):
    """How ``ibd-pipeline synth`` / ``demo`` generate this study's synthetic deliveries:
    ``multicenter`` (three centers' own formats, double abstraction) or
    ``single_center_redcap`` (one REDCap-exporting center, calibrated to the study's
    published figures); the other keys are the generator's."""

    generator: Literal["multicenter", "single_center_redcap"] = "multicenter"
    center: str | None = None
    seed: int | None = None
    excluded_per_reason: int = Field(default=2, ge=0)
    visit_offset_days: int = Field(default=5, ge=0)
    assay_limits: dict[str, tuple[float | None, float | None]] = {}
    pk_hours_since_dose: tuple[float, float] | None = None
    abstractor_id: str | None = None

    @model_validator(mode="after")
    def _single_center_needs(self):
        if self.generator == "single_center_redcap":
            missing = [k for k in ("center", "seed", "pk_hours_since_dose", "abstractor_id") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"generator single_center_redcap needs {', '.join(missing)}")
        return self


class Report(_Strict):
    """The study report: its sections in order (ids of report/sections; None: all) and
    the study's published-vs-derived declarations (``comparisons``: a file beside
    study.yaml, read by report/comparisons.py; None: the multicenter comparison code)."""

    sections: list[str] | None = None
    comparisons: str | None = None


class StudySettings(_Strict):
    """A study's settings (``study.yaml``): every threshold, window and ordering of its protocol."""

    study: StudyInfo
    ingestion: Ingestion
    reconciliation: Reconciliation | None  # None (null): no double abstraction
    population: Population = Population()
    dtt: Dtt | None = None
    eligibility: Eligibility
    timepoints: Timepoints
    steroids: Steroids | None = None
    endpoints: Endpoints
    safety: Safety
    persistence: Persistence
    statistics: Statistics
    baseline: Baseline
    dosing: Dosing | None = None
    synth: Synth = Synth()
    report: Report = Report()

    @model_validator(mode="after")
    def _references(self):
        for name, f in self.baseline.flags.items():
            if not isinstance(getattr(self.baseline, f.threshold, None), (int, float)):
                raise ValueError(f"baseline.flags.{name}: threshold {f.threshold!r} is not a setting of baseline")
        if self.population.rule == "ioibd_dtt" and self.dtt is None:
            raise ValueError("population.rule ioibd_dtt needs the dtt section")
        if "not_dtt" in self.eligibility.order and self.population.rule != "ioibd_dtt":
            raise ValueError("eligibility.order names not_dtt, but population.rule is not ioibd_dtt")
        for dx in self.study.diagnoses:
            if getattr(self.endpoints, dx) is None:
                raise ValueError(f"endpoints.{dx}: study.diagnoses includes {dx}, so its endpoint settings are needed")
        steroid_free = [n for n, e in self.endpoints.clinical_endpoints.items() if e.steroid_free]
        if steroid_free and self.steroids is None:
            raise ValueError(f"endpoints.clinical_endpoints {steroid_free} are steroid-free: the steroids section is needed")
        if self.timepoints.analysis_set == "reached_or_stopped" and self.study.data_cutoff is None:
            raise ValueError("timepoints.analysis_set reached_or_stopped needs study.data_cutoff")
        clinical = set(self.timepoints.clinical)
        checks = [("statistics.predictor_outcome.timepoint", self.statistics.predictor_outcome.timepoint)]
        if self.statistics.heterogeneity is not None:
            checks.append(("statistics.heterogeneity.timepoint", self.statistics.heterogeneity.timepoint))
        for where, tp in checks:
            if tp not in clinical:
                raise ValueError(f"{where}: {tp!r} is not a clinical time point ({sorted(clinical)})")
        pk = self.statistics.pharmacokinetics
        if pk is not None:
            if pk.timepoint not in self.timepoints.targets:
                raise ValueError(f"statistics.pharmacokinetics.timepoint: {pk.timepoint!r} is not a time point")
            unknown = [e for e in pk.endpoints if e not in self.endpoints.clinical_endpoints]
            if unknown:
                raise ValueError(f"statistics.pharmacokinetics.endpoints: {unknown} are not clinical_endpoints")
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
