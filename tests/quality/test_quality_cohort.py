"""A small, clean, hand-made cohort in the shape of the core tables (ARCHITECTURE.md
"Core tables"), for the quality-suite tests. Derived columns are computed here the way the
SQL models compute them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ibd_pipeline.config import load_crf
from ibd_pipeline.pseudonym import patient_id

KEY = b"quality-test-key-0123456789"
CENTER = "zcmu1"


def pid(n: int | str) -> str:
    return patient_id(KEY, CENTER, f"MRN{n}")


A, B, C, D, E = (pid(i) for i in "ABCDE")

PATIENTS = [
    # CD, ongoing
    dict(patient_id=A, sex="M", birth_date="1985-03-10", diagnosis="CD", diagnosis_date="2010-05-01", cd_location="L3",
         cd_upper_gi=False, cd_behavior="B1", cd_perianal=True, uc_extent=None, smoking="never", height_cm=170.0,
         weight_kg=60.0, upa_start_date="2024-01-15", upa_stop_date=None, upa_stop_reason=None, last_followup_date="2025-01-20"),
    # CD, stopped
    dict(patient_id=B, sex="F", birth_date="1990-07-01", diagnosis="CD", diagnosis_date="2015-02-01", cd_location="L1",
         cd_upper_gi=False, cd_behavior="B2", cd_perianal=False, uc_extent=None, smoking="former", height_cm=165.0,
         weight_kg=55.0, upa_start_date="2024-02-01", upa_stop_date="2024-10-01", upa_stop_reason="inefficacy", last_followup_date="2024-12-01"),
    # UC
    dict(patient_id=C, sex="F", birth_date="1978-11-20", diagnosis="UC", diagnosis_date="2005-09-01", cd_location=None,
         cd_upper_gi=None, cd_behavior=None, cd_perianal=None, uc_extent="E3", smoking="never", height_cm=160.0,
         weight_kg=50.0, upa_start_date="2024-03-01", upa_stop_date=None, upa_stop_reason=None, last_followup_date="2025-03-01"),
    dict(patient_id=D, sex="M", birth_date="1995-01-05", diagnosis="UC", diagnosis_date="2019-04-01", cd_location=None,
         cd_upper_gi=None, cd_behavior=None, cd_perianal=None, uc_extent="E2", smoking="current", height_cm=175.0,
         weight_kg=70.0, upa_start_date="2024-04-10", upa_stop_date=None, upa_stop_reason=None, last_followup_date="2025-02-10"),
    # IBDU
    dict(patient_id=E, sex="M", birth_date="1988-08-08", diagnosis="IBDU", diagnosis_date="2018-01-01", cd_location=None,
         cd_upper_gi=None, cd_behavior=None, cd_perianal=None, uc_extent=None, smoking="never", height_cm=180.0,
         weight_kg=80.0, upa_start_date="2024-05-05", upa_stop_date=None, upa_stop_reason=None, last_followup_date="2024-12-31"),
]
BOOL_FIELDS = ["complex_perianal", "ileal_pouch", "pouchitis_chronic_ab_refractory", "psychosocial_comorbidity",
               "eim_eye", "eim_skin", "eim_joint", "eim_other", "pregnant_or_breastfeeding",
               "serious_infection_at_start", "malignancy_history"]

MEDICATIONS = [
    (A, "infliximab", "2015-01-01", "2018-01-01", "secondary_loss_of_response"),
    (A, "ustekinumab", "2018-02-01", "2023-12-01", "primary_nonresponse"),
    (A, "prednisone", "2023-11-01", "2024-02-01", "elective"),
    (B, "adalimumab", "2016-01-01", "2019-01-01", "primary_nonresponse"),
    (B, "vedolizumab", "2019-02-01", "2023-12-31", "secondary_loss_of_response"),
    (C, "vedolizumab", "2019-01-01", "2022-01-01", "primary_nonresponse"),
    (C, "tofacitinib", "2022-02-01", "2024-01-01", "secondary_loss_of_response"),
    (C, "mesalazine", "2010-01-01", None, None),
    (D, "infliximab", "2020-01-01", "2021-01-01", "primary_nonresponse"),
    (D, "ustekinumab", "2021-02-01", "2024-03-01", "secondary_loss_of_response"),
    (E, "adalimumab", "2019-01-01", "2023-01-01", "intolerance"),
]
SURGERIES = [
    (B, "2016-03-01", "ileocecal_resection", True),
    (B, "2020-06-01", "small_bowel_resection", True),
    (A, "2012-01-01", "perianal_abscess_drainage", True),
]
# (patient, day from UPA start, {fields})
HBI = ("hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications")
ASSESSMENTS = [
    (A, -7, dict(zip(HBI, (2, 1, 4, 0, 1)), ses_cd=10, upa_dose_mg=None)),
    (A, 84, dict(zip(HBI, (1, 0, 2, 0, 0)), upa_dose_mg=45)),
    (A, 182, dict(zip(HBI, (0, 0, 1, 0, 0)), ses_cd=2, upa_dose_mg=15)),
    (B, -5, dict(zip(HBI, (2, 2, 6, 1, 1)), rutgeerts="i3", upa_dose_mg=None)),
    (B, 84, dict(zip(HBI, (2, 1, 5, 1, 1)), upa_dose_mg=30)),
    (C, -20, dict(mayo_endo=2, upa_dose_mg=None)),
    (C, -3, dict(mayo_stool=2, mayo_bleeding=2, mayo_pga=2, upa_dose_mg=None)),
    (C, 56, dict(mayo_stool=1, mayo_bleeding=0, mayo_pga=1, mayo_endo=1, upa_dose_mg=45)),
    (D, -1, dict(mayo_stool=3, mayo_bleeding=2, mayo_pga=2, mayo_endo=3, upa_dose_mg=None)),
    (D, 56, dict(mayo_stool=1, mayo_bleeding=1, mayo_pga=1, upa_dose_mg=45)),
    (E, 30, dict(upa_dose_mg=45)),
]
LABS = []
for _p, _lo in ((A, -3), (B, -2), (C, -5), (D, -1), (E, 0)):
    LABS += [(_p, _lo, "CRP", 12.5, None), (_p, _lo, "ALB", 36.0, None), (_p, _lo, "HB", 118.0, None),
             (_p, _lo, "FC", 640.0, None), (_p, 56, "CRP", 0.5, "<"), (_p, 56, "ALB", 41.0, None)]
AES = [
    (A, "2024-03-01", "acne", False, False),
    (C, "2024-06-01", "hospitalization", True, False),
    (B, "2024-09-20", "herpes_zoster", False, True),
]
ELIGIBILITY = {A: True, B: False, C: True, D: True, E: False}


def _dates(df: pd.DataFrame, cols) -> pd.DataFrame:
    for c in cols:
        df[c] = pd.to_datetime(df[c]).astype("datetime64[ns]")
    return df


def _completed_years(start: pd.Series, end: pd.Series) -> pd.Series:
    before = (end.dt.month < start.dt.month) | ((end.dt.month == start.dt.month) & (end.dt.day < start.dt.day))
    return (end.dt.year - start.dt.year - before.astype(int)).astype("Int64")


def cohort() -> dict[str, pd.DataFrame]:
    """The clean core tables plus analytics.eligibility."""
    crf = load_crf()
    p = pd.DataFrame(PATIENTS)
    for f in BOOL_FIELDS:
        p[f] = False
    p.insert(0, "center", CENTER)
    p = _dates(p, ["birth_date", "diagnosis_date", "upa_start_date", "upa_stop_date", "last_followup_date"])
    for f in ["cd_upper_gi", "cd_perianal", *BOOL_FIELDS]:
        p[f] = p[f].astype("boolean")
    p["bmi"] = p["weight_kg"] / (p["height_cm"] / 100.0) ** 2
    p["eim_any"] = False
    p["age_at_upa_start"] = _completed_years(p["birth_date"], p["upa_start_date"])
    p["age_at_diagnosis"] = _completed_years(p["birth_date"], p["diagnosis_date"])
    p["montreal_age"] = np.where(p["age_at_diagnosis"] < 17, "A1", np.where(p["age_at_diagnosis"] > 40, "A3", "A2"))
    p["disease_duration_years"] = (p["upa_start_date"] - p["diagnosis_date"]).dt.days / 365.25
    p["treatment_end_date"] = p["upa_stop_date"].fillna(p["last_followup_date"])
    p["exposure_days"] = (p["treatment_end_date"] - p["upa_start_date"]).dt.days.astype("Int64")
    p["discontinued"] = p["upa_stop_date"].notna()
    start = p.set_index("patient_id")["upa_start_date"]
    lfu = p.set_index("patient_id")["last_followup_date"]
    tend = p.set_index("patient_id")["treatment_end_date"]

    m = pd.DataFrame(MEDICATIONS, columns=["patient_id", "drug", "start_date", "stop_date", "stop_reason"])
    m = _dates(m, ["start_date", "stop_date"])
    m.insert(0, "center", CENTER)
    m["drug_class"] = m["drug"].map({d: s["class"] for d, s in crf.drugs.items()})
    m["mechanism"] = m["drug_class"].replace({"anti_il12_23": "anti_il23_pathway", "anti_il23": "anti_il23_pathway"})
    m["advanced"] = m["drug"].map({d: bool(s["advanced"]) for d, s in crf.drugs.items()})
    m["start_day"] = (m["start_date"] - m["patient_id"].map(start)).dt.days.astype("Int64")
    m["stop_day"] = (m["stop_date"] - m["patient_id"].map(start)).dt.days.astype("Int64")
    m["end_date"] = m["stop_date"].fillna(m["patient_id"].map(lfu))
    m["timing"] = np.where(m["end_date"] < m["patient_id"].map(start), "before",
                           np.where(m["start_date"] > m["patient_id"].map(tend), "after", "overlapping"))

    s = pd.DataFrame(SURGERIES, columns=["patient_id", "surgery_date", "procedure", "ibd_related"])
    s = _dates(s, ["surgery_date"])
    s.insert(0, "center", CENTER)
    s["bowel_resection"] = s["procedure"].map(lambda x: bool(crf.procedures[x].get("bowel_resection"))) & s["ibd_related"]
    s["total_colectomy"] = s["procedure"].map(lambda x: bool(crf.procedures[x].get("total_colectomy"))) & s["ibd_related"]
    s["day"] = (s["surgery_date"] - s["patient_id"].map(start)).dt.days.astype("Int64")
    s["before_upa"] = s["surgery_date"] < s["patient_id"].map(start)

    rows = []
    for who, day, fields in ASSESSMENTS:
        r = {"center": CENTER, "patient_id": who, "visit_date": start[who] + pd.Timedelta(days=day)}
        r.update(fields)
        rows.append(r)
    a = pd.DataFrame(rows)
    ints = [*HBI, "mayo_stool", "mayo_bleeding", "mayo_pga", "mayo_endo", "ses_cd", "upa_dose_mg"]
    for c in ints:
        if c not in a.columns:
            a[c] = None
        a[c] = a[c].astype("Int64")
    if "rutgeerts" not in a.columns:
        a["rutgeerts"] = None
    a["rutgeerts"] = a["rutgeerts"].astype(object).where(a["rutgeerts"].notna(), None)
    a["day"] = (a["visit_date"] - a["patient_id"].map(start)).dt.days.astype("Int64")
    a["hbi_total"] = a[list(HBI)].sum(axis=1, min_count=5).where(a[list(HBI)].notna().all(axis=1)).astype("Int64")
    a["adapted_mayo"] = (a["mayo_stool"] + a["mayo_bleeding"] + a["mayo_endo"]).astype("Int64")
    a["partial_mayo"] = (a["mayo_stool"] + a["mayo_bleeding"] + a["mayo_pga"]).astype("Int64")
    a["has_endoscopy"] = a["mayo_endo"].notna() | a["ses_cd"].notna() | a["rutgeerts"].notna()
    a = a[["center", "patient_id", "visit_date", "day", *HBI, "hbi_total", "mayo_stool", "mayo_bleeding", "mayo_pga",
           "mayo_endo", "adapted_mayo", "partial_mayo", "ses_cd", "rutgeerts", "upa_dose_mg", "has_endoscopy"]]

    lab = pd.DataFrame(LABS, columns=["patient_id", "day", "test", "value", "qualifier"])
    lab.insert(0, "center", CENTER)
    lab["sample_date"] = lab["patient_id"].map(start) + pd.to_timedelta(lab["day"], unit="D")
    lab["day"] = lab["day"].astype("Int64")
    lab["unit"] = lab["test"].map({t: v["unit"] for t, v in crf.lab_tests.items()})
    lab["normal_low"] = lab["test"].map({t: (v.get("normal") or [None, None])[0] for t, v in crf.lab_tests.items()}).astype("float64")
    lab["normal_high"] = lab["test"].map({t: (v.get("normal") or [None, None])[1] for t, v in crf.lab_tests.items()}).astype("float64")
    lab["qualifier"] = lab["qualifier"].astype(object).where(lab["qualifier"].notna(), None)
    lab = lab[["center", "patient_id", "sample_date", "day", "test", "value", "qualifier", "unit", "normal_low", "normal_high"]]

    ae = pd.DataFrame(AES, columns=["patient_id", "onset_date", "term", "serious", "led_to_discontinuation"])
    ae = _dates(ae, ["onset_date"])
    ae.insert(0, "center", CENTER)
    ae["day"] = (ae["onset_date"] - ae["patient_id"].map(start)).dt.days.astype("Int64")
    stop = ae["patient_id"].map(p.set_index("patient_id")["upa_stop_date"])
    ae["treatment_emergent"] = (ae["day"] >= 0) & (stop.isna() | (ae["onset_date"] <= stop + pd.Timedelta(days=30)))

    el = p[["patient_id", "center", "diagnosis"]].copy()
    el["included"] = el["patient_id"].map(ELIGIBILITY)
    el["exclusion_reason"] = np.where(el["included"], None, "insufficient_data")
    el["all_reasons"] = el["exclusion_reason"]
    out = {
        "core.patients": p,
        "core.medications": m,
        "core.surgeries": s,
        "core.assessments": a,
        "core.labs": lab,
        "core.adverse_events": ae,
    }
    return {**with_every_crf_field(out, crf), "analytics.eligibility": el}


def with_every_crf_field(tables: dict[str, pd.DataFrame], crf) -> dict[str, pd.DataFrame]:
    """Every CRF field of a core table as a column, empty where a cohort records nothing
    (the optional fields another study collects), as the SQL models build them."""
    for name, df in tables.items():
        if not name.startswith("core."):
            continue
        for f, fs in crf.table(name.split(".", 1)[1]).fields.items():
            if f not in df.columns and f not in ("mrn", "abstractor_id") and fs.phi != "drop":
                df[f] = pd.Series(pd.NaT if fs.type == "date" else None, index=df.index,
                                  dtype="datetime64[ns]" if fs.type == "date" else object)
    return tables


def reconciled_rows() -> dict[str, list[dict]]:
    """The same cohort as rows of the reconciled tables (to build core via the SQL models)."""
    t = cohort()
    out = {}
    crf = load_crf()
    for name in ("patients", "medications", "surgeries", "assessments", "labs", "adverse_events"):
        df = t[f"core.{name}"]
        fields = ["center", "patient_id", *[f for f, s in crf.tables[name].fields.items() if f not in ("mrn",) and s.phi != "drop"]]
        if name == "labs":
            fields.append("qualifier")
        keep = [c for c in fields if c in df.columns]
        out[name] = df[keep].astype(object).where(df[keep].notna(), None).to_dict("records")
    return out
