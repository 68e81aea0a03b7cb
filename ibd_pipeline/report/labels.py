"""The report's labels and orderings: time points, diagnoses, endpoints, biomarkers, adverse
events, Table 1 variables, settings groups and the baseline dichotomies. Labels that
depend on a threshold of study.yaml (endpoint definitions, baseline.albumin_low, ...)
are functions of the settings, read the same way as the sections always did."""

from __future__ import annotations

from . import fmt as F
from .fmt import DASH


TIMEPOINTS = ["baseline", "induction", "month6", "month12", "month18"]
TP_LABELS = {"baseline": "Baseline", "induction": "Induction", "month6": "Month 6",
             "month12": "Month 12", "month18": "Month 18"}
DIAGNOSES = ("UC", "CD", "overall")
DX_LABELS = {"UC": "UC", "CD": "CD", "overall": "Overall", "all": "All"}
ENDPOINT_ORDER = ["sf_clinical_remission", "clinical_response", "endoscopic_remission", "endoscopic_response",
                  "biochemical_remission", "crp_normal", "fc_normal"]
ANALYSES = {"complete_case": "Complete case", "nri": "Non-responder imputation (NRI)"}
BIOMARKER_ORDER = ["CRP", "FC", "ESR", "ALB", "VITD25", "WBC", "HB", "PLT", "ALT", "AST", "HDL_TC_RATIO", "LDL"]
BIOMARKER_LABELS = {"CRP": "C-reactive protein", "FC": "Faecal calprotectin", "ESR": "ESR", "ALB": "Albumin",
                    "VITD25": "25(OH) vitamin D", "WBC": "White blood cells", "HB": "Haemoglobin",
                    "PLT": "Platelets", "ALT": "ALT", "AST": "AST", "HDL_TC_RATIO": "HDL / total cholesterol",
                    "LDL": "LDL cholesterol"}
AE_LABELS = {"ck_elevation": "CK elevation", "vte": "Venous thromboembolism (VTE)",
             "mace": "Major adverse cardiovascular event (MACE)", "nmsc": "Non-melanoma skin cancer (NMSC)",
             "liver_enzyme_elevation": "Liver enzyme elevation", "herpes_zoster": "Herpes zoster"}
KM_GROUPS = ("overall", "diagnosis", "albumin_le_35", "bmi_le_18_5")
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
    "bmi_le_18_5": "BMI \u2264 18.5", "albumin_le_35": "Albumin \u2264 35 g/L", "crp_gt_8": "CRP > 8 mg/L",
    "fc_gt_150": "FC > 150 \u00b5g/g",
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

# baseline dichotomies: variable -> (what, threshold setting in study.yaml baseline, unit, at-or-below)
THRESHOLD_GROUPS = {"albumin_le_35": ("albumin", "albumin_low", "g/L", True),
                    "bmi_le_18_5": ("BMI", "bmi_low", "kg/m\u00b2", True),
                    "crp_gt_8": ("CRP", "crp_high", "mg/L", False),
                    "fc_gt_150": ("FC", "fc_high", "\u00b5g/g", False)}


def tp_key(tp) -> int:
    return TIMEPOINTS.index(tp) if tp in TIMEPOINTS else len(TIMEPOINTS)


def order(values, preferred) -> list:
    vals = list(dict.fromkeys(values))
    return [v for v in preferred if v in vals] + sorted(v for v in vals if v not in preferred)


def var_label(v) -> str:
    return VAR_LABELS.get(str(v), F.label(v))


def endpoint_label(ep: str, settings: dict) -> str:
    bio = (settings.get("endpoints") or {}).get("biochemical") or {}
    crp, fc = bio.get("crp_below", 8), bio.get("fc_below", 150)
    return {
        "sf_clinical_remission": "Steroid-free clinical remission",
        "clinical_response": "Clinical response",
        "endoscopic_remission": "Endoscopic remission",
        "endoscopic_response": "Endoscopic response",
        "biochemical_remission": f"Biochemical remission (FC < {fc} \u00b5g/g or CRP < {crp} mg/L)",
        "crp_normal": f"CRP normal (< {crp} mg/L)",
        "fc_normal": f"FC normal (< {fc} \u00b5g/g)",
    }.get(ep, F.label(ep))


def km_title(gv: str, settings: dict) -> str:
    if gv in THRESHOLD_GROUPS:
        what, key, unit, _ = THRESHOLD_GROUPS[gv]
        return f"By baseline {what} ({(settings.get('baseline') or {}).get(key, DASH)} {unit})"
    return {"overall": "All patients", "diagnosis": "By diagnosis"}.get(gv, f"By {F.label(gv)}")


def group_labels(gv: str, settings: dict) -> dict[str, str]:
    """Readable names of a grouping's levels (the KM legends and tables): 'yes' / 'no' of
    a baseline dichotomy become 'Albumin <= 35 g/L' / 'Albumin > 35 g/L' with the
    threshold of study.yaml (baseline.albumin_low, ...)."""
    if gv == "overall":
        return {"all": "All patients"}
    if gv == "diagnosis":
        return {k: v for k, v in DX_LABELS.items() if k in ("UC", "CD")}
    if gv in THRESHOLD_GROUPS:
        what, key, unit, le = THRESHOLD_GROUPS[gv]
        t = (settings.get("baseline") or {}).get(key, DASH)
        what = what[0].upper() + what[1:]
        at, beyond = ("\u2264", ">") if le else (">", "\u2264")
        yes, no = f"{what} {at} {t} {unit}", f"{what} {beyond} {t} {unit}"
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
