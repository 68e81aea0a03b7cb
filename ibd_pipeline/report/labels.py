"""The report's labels and orderings: time points, diagnoses, endpoints, biomarkers, adverse
events, Table 1 variables, settings groups and the baseline flags. What is a study term
(the diagnoses it enrols and so the report's diagnosis columns and comparison, the time
points and their order, the endpoints, their labels, the Kaplan-Meier groupings, the
flags' thresholds) is read from the settings (study.yaml) the report is built with:
no study's names are written here."""

from __future__ import annotations

import re

from ibd_pipeline.stats.settings import timepoint_order

from . import fmt as F
from .fmt import DASH

OVERALL = "overall"  # the warehouse's rows of every diagnosis pooled
DX_LABELS = {"UC": "UC", "CD": "CD", "overall": "Overall", "all": "All"}
ANALYSES = {"complete_case": "Complete case", "nri": "Non-responder imputation (NRI)"}
BIOMARKER_ORDER = ["CRP", "FC", "ESR", "ALB", "VITD25", "WBC", "HB", "PLT", "ALT", "AST", "HDL_TC_RATIO", "LDL"]
BIOMARKER_LABELS = {"CRP": "C-reactive protein", "FC": "Faecal calprotectin", "ESR": "ESR", "ALB": "Albumin",
                    "VITD25": "25(OH) vitamin D", "WBC": "White blood cells", "HB": "Haemoglobin",
                    "PLT": "Platelets", "ALT": "ALT", "AST": "AST", "HDL_TC_RATIO": "HDL / total cholesterol",
                    "LDL": "LDL cholesterol"}
AE_LABELS = {"ck_elevation": "CK elevation", "vte": "Venous thromboembolism (VTE)",
             "mace": "Major adverse cardiovascular event (MACE)", "nmsc": "Non-melanoma skin cancer (NMSC)",
             "liver_enzyme_elevation": "Liver enzyme elevation", "herpes_zoster": "Herpes zoster"}
VAR_LABELS = {
    "N": "Patients, n", "age": "Age at UPA start, years", "male": "Male sex", "bmi": "BMI, kg/m\u00b2",
    "disease_duration_years": "Disease duration, years", "smoking": "Smoking", "montreal_age": "Montreal age (CD)",
    "cd_location": "CD location (Montreal)", "cd_behavior": "CD behaviour (Montreal)", "perianal": "Perianal disease (CD)",
    "uc_extent": "UC extent (Montreal)", "eim_any": "Any extra-intestinal manifestation", "eim_eye": "EIM: eye",
    "eim_skin": "EIM: skin", "eim_joint": "EIM: joint", "eim_other": "EIM: other",
    "surgery_history": "IBD-related surgery before UPA", "n_prior_mechanisms": "Prior advanced mechanisms, n",
    "prior_anti_tnf": "Prior anti-TNF", "prior_anti_integrin": "Prior anti-integrin",
    "prior_anti_il12_23_or_il23": "Prior anti-IL-12/23 or anti-IL-23",
    "prior_jak": "Prior JAK inhibitor", "prior_anti_il17a": "Prior anti-IL-17A",
    "prior_immunosuppressant": "Prior immunosuppressant", "prior_methotrexate": "Prior methotrexate",
    "prior_tacrolimus": "Prior tacrolimus", "prior_tripterygium": "Prior Tripterygium wilfordii",
    "prior_aminosalicylate": "Prior aminosalicylate", "prior_glucocorticoid": "Prior glucocorticoid",
    "prior_een": "Prior exclusive enteral nutrition", "steroid_at_baseline": "Systemic steroid at baseline",
    "concomitant_thalidomide": "Concomitant thalidomide", "concomitant_mesalazine": "Concomitant mesalazine",
    "albumin": "Albumin, g/L", "crp": "CRP, mg/L", "fc": "Faecal calprotectin, \u00b5g/g",
}
SETTINGS_GROUPS = {
    "study": "Study", "ingestion": "Ingestion and quarantine",
    "reconciliation": "Double-abstraction reconciliation",
    "dtt": "Difficult-to-treat IBD (IOIBD consensus), judged on data before UPA start",
    "eligibility": "Inclusion and exclusion (each excluded patient gets the first reason, in this order)",
    "timepoints": "Time points and windows (days from UPA start = day 0)", "steroids": "Steroid-free definition",
    "endpoints": "Endpoint definitions", "safety": "Safety", "persistence": "Persistence",
    "statistics": "Statistics", "baseline": "Baseline characteristics (Table 1 and covariates)",
}
COMPARE_TEXT = {"<=": "\u2264", ">": ">"}
OPPOSITE = {"<=": ">", ">": "<="}


def study_diagnoses(settings: dict) -> list[str]:
    """The diagnoses the study enrols, in the settings' order (``study.diagnoses``; the
    study model's default when the settings leave it out)."""
    from ibd_pipeline.study_model import StudyInfo

    dxs = (settings.get("study") or {}).get("diagnoses")
    return [str(d) for d in (dxs or StudyInfo.model_fields["diagnoses"].default)]


def diagnosis_labels(settings: dict) -> list[str]:
    """The study's diagnoses as the report names them ("UC", "CD"), in the settings' order."""
    return [DX_LABELS.get(d, d) for d in study_diagnoses(settings)]


def diagnosis_columns(settings: dict, overall_first: bool = False) -> list[str]:
    """The report's diagnosis columns: a study of several diagnoses has each of them (in
    the settings' order) and "overall" (last, or first with ``overall_first``); a study of
    one diagnosis has that one alone - its "overall" rows are the same patients, so the
    same numbers are not shown twice (:meth:`ReportContext.dx_rows` reads its column
    from the "overall" rows when a table has no rows of the diagnosis itself)."""
    dxs = study_diagnoses(settings)
    if len(dxs) == 1:
        return dxs
    return [OVERALL, *dxs] if overall_first else [*dxs, OVERALL]


def diagnoses_text(settings: dict) -> str:
    """The study's diagnoses in words: "UC and CD", "CD"."""
    dxs = diagnosis_labels(settings)
    return dxs[0] if len(dxs) == 1 else ", ".join(dxs[:-1]) + " and " + dxs[-1]


def comparison_text(settings: dict) -> str | None:
    """The between-diagnosis comparison of the report ("UC vs CD"): only a study of
    exactly two diagnoses has one (None otherwise: no comparison column, heading or
    text)."""
    dxs = diagnosis_labels(settings)
    return " vs ".join(dxs) if len(dxs) == 2 else None


def timepoints(settings: dict) -> list[str]:
    """The study's time points in order (baseline, then ``timepoints.targets``)."""
    return list(timepoint_order(settings))


def tp_label(tp) -> str:
    """A time point's label from its name: "month12" -> "Month 12", "week4" -> "Week 4",
    "induction" -> "Induction"."""
    if F.missing(tp):
        return ""
    m = re.fullmatch(r"([A-Za-z_]*?)_?(\d+)", str(tp))
    return f"{F.label(m.group(1))} {m.group(2)}" if m and m.group(1) else F.label(tp)


def tp_key(tp, settings: dict) -> int:
    order_ = timepoints(settings)
    return order_.index(tp) if tp in order_ else len(order_)


def order(values, preferred) -> list:
    vals = list(dict.fromkeys(values))
    return [v for v in preferred if v in vals] + sorted(v for v in vals if v not in preferred)


def _flags(settings: dict) -> dict:
    return (settings.get("baseline") or {}).get("flags") or {}


def _flag_parts(gv: str, settings: dict) -> tuple[str, str, str, str] | None:
    """(what, threshold text, unit, compare) of a baseline flag of the settings
    (``baseline.flags``, threshold from its ``baseline`` setting), else None."""
    f = _flags(settings).get(gv)
    if not f:
        return None
    t = (settings.get("baseline") or {}).get(f["threshold"], DASH)
    return str(f["what"]), str(t), str(f.get("unit") or ""), str(f["compare"])


def _flag_text(what: str, compare: str, t: str, unit: str) -> str:
    return f"{what[0].upper() + what[1:]} {COMPARE_TEXT[compare]} {t}" + (f" {unit}" if unit else "")


def var_label(v, settings: dict | None = None) -> str:
    """A covariate's label: a baseline flag of the settings as "Albumin \u2264 35 g/L"
    (threshold from study.yaml), else the fixed label or the readable name."""
    parts = _flag_parts(str(v), settings or {})
    if parts:
        what, t, unit, compare = parts
        return _flag_text(what, compare, t, unit)
    return VAR_LABELS.get(str(v), F.label(v))


def endpoint_order(settings: dict) -> list[str]:
    """The endpoints in the settings' order (``endpoints.clinical_endpoints`` then
    ``endpoints.biomarker_endpoints``)."""
    e = settings.get("endpoints") or {}
    return [*(e.get("clinical_endpoints") or {}), *(e.get("biomarker_endpoints") or {})]


# the CRF's canonical units of the biomarker tests (crf.yaml lab_tests; endpoints.evaluate
# refuses labs in any other unit), printed after the thresholds
BIOMARKER_UNITS = {"CRP": "mg/L", "FC": "\u00b5g/g"}


def endpoint_label(ep: str, settings: dict) -> str:
    """An endpoint's label: its ``label`` in the settings, a biomarker endpoint's with its
    rule and thresholds (``endpoints.biochemical``, e.g. "CRP normal (< 8 mg/L)"),
    else the readable name."""
    e = settings.get("endpoints") or {}
    spec = {**(e.get("clinical_endpoints") or {}), **(e.get("biomarker_endpoints") or {})}.get(ep) or {}
    label = spec.get("label") or F.label(ep)
    if ep in (e.get("biomarker_endpoints") or {}) and e.get("biochemical"):
        from ibd_pipeline.endpoints.definitions import biomarker_text
        from ibd_pipeline.endpoints.evaluate import EndpointSpec

        try:
            rule = biomarker_text(EndpointSpec(ep, spec.get("rule")), e["biochemical"], BIOMARKER_UNITS)
        except (KeyError, ValueError):  # a rule or threshold the settings lack: the plain label
            return label
        if " or " not in rule and " and " not in rule:  # one test: "CRP normal (< 8 mg/L)"
            rule = rule.split(" ", 1)[1]
        return f"{label} ({rule})"
    return label


def km_groups(settings: dict) -> list[str]:
    """The Kaplan-Meier groupings of the settings (``persistence.km_groups``)."""
    return list((settings.get("persistence") or {}).get("km_groups") or ["overall"])


def km_title(gv: str, settings: dict) -> str:
    parts = _flag_parts(gv, settings)
    if parts:
        what, t, unit, _ = parts
        return f"By baseline {what} ({t}" + (f" {unit})" if unit else ")")
    return {"overall": "All patients", "diagnosis": "By diagnosis"}.get(gv, f"By {F.label(gv)}")


def group_labels(gv: str, settings: dict) -> dict[str, str]:
    """Readable names of a grouping's levels (the KM legends and tables): 'yes' / 'no' of
    a baseline flag become 'Albumin <= 35 g/L' / 'Albumin > 35 g/L' with the threshold of
    study.yaml (``baseline.flags``: its setting, unit and comparison)."""
    if gv == "overall":
        return {"all": "All patients"}
    if gv == "diagnosis":
        return {k: DX_LABELS.get(k, k) for k in study_diagnoses(settings)}
    parts = _flag_parts(gv, settings)
    if parts:
        what, t, unit, compare = parts
        yes, no = _flag_text(what, compare, t, unit), _flag_text(what, OPPOSITE[compare], t, unit)
        return {"yes": yes, "no": no, "True": yes, "False": no, "1": yes, "0": no}
    return {}


def group_label(gv: str, group, settings: dict) -> str:
    return group_labels(gv, settings).get(str(group), f"{F.label(gv)}: {group}")


def flow_label(step, reason) -> str:
    from ibd_pipeline.cohort.flow import REASON_LABELS

    r = None if F.missing(reason) else str(reason)
    lab = REASON_LABELS.get(r, F.label(r.split(":", 1)[-1]) if r else "")
    if step == "screened":
        return "Screened"
    if step == "excluded":
        return "Excluded (patients)"
    if step == "excluded_by_reason":
        return f"\u2003\u2003{lab}" if r and r.startswith("other:") else f"\u2003{lab}"
    if step == "other_reason":
        return ("\u2003Named 'other' reasons, total (a patient can have several)" if r == "other"
                else f"\u2003\u2003reason named: {lab}")
    if step == "included":
        return "Included"
    if step == "included_by_diagnosis":
        return f"\u2003{r}"
    return f"{step}: {lab}"


def ae_label(term: str) -> str:
    return "Any adverse event" if term == "any" else AE_LABELS.get(term, F.label(term))
