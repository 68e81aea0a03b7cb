"""Scale of the quality suite: a synthetic cohort of N patients with ~100 lab rows each.

The test checks a 150-patient cohort (15k lab rows) is clean; ``synthetic_core`` is also
what ``benchmarks/quality_suite.py`` times at 10k+ patients (outside the test suite).
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from ibd_pipeline.config import load_crf, load_settings
from ibd_pipeline.quality import run_quality_suite_detailed
from tests.quality.test_quality_cohort import pid, with_every_crf_field


def synthetic_core(n_patients: int, labs_per_patient: int = 100, seed: int = 1) -> dict[str, pd.DataFrame]:
    """Clean core tables of ``n_patients`` (vectorised; realistic dtypes)."""
    rng = np.random.default_rng(seed)
    crf = load_crf()
    n = n_patients
    ids = np.array([pid(f"S{i}") for i in range(n)], dtype=object)
    dx = rng.choice(["CD", "UC", "IBDU"], size=n, p=[0.6, 0.35, 0.05])
    birth = pd.Timestamp("1960-01-01") + pd.to_timedelta(rng.integers(0, 365 * 40, n), unit="D")
    diag = birth + pd.to_timedelta(rng.integers(365 * 12, 365 * 19, n), unit="D")
    start = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 800, n), unit="D")
    lfu = start + pd.to_timedelta(rng.integers(200, 700, n), unit="D")
    stopped = rng.random(n) < 0.25
    stop = pd.Series(start + pd.to_timedelta(rng.integers(60, 190, n), unit="D")).where(stopped)
    h = rng.uniform(150, 190, n).round(1)
    w = rng.uniform(45, 90, n).round(1)
    p = pd.DataFrame({
        "center": "zcmu1", "patient_id": ids, "sex": rng.choice(["M", "F"], n), "birth_date": birth, "diagnosis": dx,
        "diagnosis_date": diag,
        "cd_location": np.where(dx == "CD", rng.choice(["L1", "L2", "L3"], n), None),
        "cd_behavior": np.where(dx == "CD", rng.choice(["B1", "B2", "B3"], n), None),
        "uc_extent": np.where(dx == "UC", rng.choice(["E1", "E2", "E3"], n), None),
        "smoking": rng.choice(["current", "former", "never"], n), "height_cm": h, "weight_kg": w,
        "upa_start_date": start, "upa_stop_date": stop.to_numpy(),
        "upa_stop_reason": np.where(stopped, "inefficacy", None), "last_followup_date": lfu,
    })
    p["bmi"] = p["weight_kg"] / (p["height_cm"] / 100) ** 2
    b, s = p["birth_date"], p["upa_start_date"]
    p["age_at_upa_start"] = (s.dt.year - b.dt.year - ((s.dt.month < b.dt.month) | ((s.dt.month == b.dt.month) & (s.dt.day < b.dt.day))).astype(int)).astype("Int64")
    d = p["diagnosis_date"]
    p["age_at_diagnosis"] = (d.dt.year - b.dt.year - ((d.dt.month < b.dt.month) | ((d.dt.month == b.dt.month) & (d.dt.day < b.dt.day))).astype(int)).astype("Int64")
    p["treatment_end_date"] = p["upa_stop_date"].fillna(p["last_followup_date"])
    p["exposure_days"] = (p["treatment_end_date"] - p["upa_start_date"]).dt.days.astype("Int64")

    # labs: labs_per_patient rows per patient between UPA start - 30 and last follow-up
    tests = list(crf.lab_tests)
    k = labs_per_patient
    li = np.repeat(np.arange(n), k)
    span = (p["last_followup_date"] - p["upa_start_date"]).dt.days.to_numpy() + 30
    test = np.array(tests, dtype=object)[np.arange(n * k) % len(tests)]
    # one row per (patient, date, test): the test cycles, the date steps every len(tests) rows
    offs = np.minimum(-30 + (np.arange(n * k) % k) // len(tests) * 7, span[li] - 30)
    lim = {t: (lo + hi) / 2 for t, (lo, hi) in {"CRP": (0, 50), "FC": (0, 500), "ESR": (0, 40), "ALB": (30, 50), "VITD25": (20, 100),
                                                "WBC": (3, 10), "NEUT": (1, 7), "HB": (90, 160), "PLT": (100, 400), "ALT": (5, 60),
                                                "AST": (5, 60), "HDL": (0.8, 2), "TC": (3, 6), "LDL": (1, 4), "CK": (30, 250),
                                                "FIB": (2, 5), "EGFR": (60, 130)}.items()}
    lab = pd.DataFrame({
        "center": "zcmu1", "patient_id": ids[li],
        "sample_date": p["upa_start_date"].to_numpy()[li] + pd.to_timedelta(offs, unit="D").to_numpy(),
        "day": pd.array(offs, dtype="Int64"), "test": test,
        "value": pd.Series(test).map(lim).to_numpy() * rng.uniform(0.5, 1.5, n * k),
        "qualifier": None,
        "unit": pd.Series(test).map({t: v["unit"] for t, v in crf.lab_tests.items()}).to_numpy(),
    })
    # assessments: 6 visits per patient
    v = 6
    ai = np.repeat(np.arange(n), v)
    aday = np.tile(np.array([-3, 56, 84, 182, 365, 400]), n)
    aday = np.minimum(aday, span[ai] - 30)
    adx = dx[ai]
    a = pd.DataFrame({"center": "zcmu1", "patient_id": ids[ai],
                      "visit_date": p["upa_start_date"].to_numpy()[ai] + pd.to_timedelta(aday, unit="D").to_numpy()})
    a = a.assign(day=pd.array(aday, dtype="Int64"))
    cd = adx == "CD"
    uc = adx == "UC"
    for f, hi in (("hbi_wellbeing", 4), ("hbi_pain", 3), ("hbi_liquid_stools", 10), ("hbi_mass", 3), ("hbi_complications", 3)):
        a[f] = pd.array(np.where(cd, rng.integers(0, hi + 1, n * v), -1), dtype="Int64")
        a.loc[~cd, f] = pd.NA
    a["hbi_total"] = a[["hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications"]].sum(axis=1, min_count=5).astype("Int64")
    for f in ("mayo_stool", "mayo_bleeding", "mayo_pga", "mayo_endo"):
        a[f] = pd.array(np.where(uc, rng.integers(0, 4, n * v), -1), dtype="Int64")
        a.loc[~uc, f] = pd.NA
    a["adapted_mayo"] = (a["mayo_stool"] + a["mayo_bleeding"] + a["mayo_endo"]).astype("Int64")
    a["ses_cd"] = pd.array([pd.NA] * (n * v), dtype="Int64")
    a["rutgeerts"] = None
    a["upa_dose_mg"] = pd.array(np.where(aday <= 84, 45, 15), dtype="Int64")
    a = a.drop_duplicates(["patient_id", "visit_date"])

    m = pd.DataFrame({"center": "zcmu1", "patient_id": ids, "drug": "infliximab",
                      "start_date": p["upa_start_date"] - pd.Timedelta(days=900),
                      "stop_date": p["upa_start_date"] - pd.Timedelta(days=400), "stop_reason": "primary_nonresponse"})
    s_ = pd.DataFrame({"center": "zcmu1", "patient_id": ids[:: 10], "surgery_date": (p["upa_start_date"] - pd.Timedelta(days=1000))[:: 10].to_numpy(),
                       "procedure": "ileocecal_resection", "ibd_related": True})
    ae = pd.DataFrame({"center": "zcmu1", "patient_id": ids[:: 5], "onset_date": (p["upa_start_date"] + pd.Timedelta(days=20))[:: 5].to_numpy(),
                       "term": "acne", "serious": False, "led_to_discontinuation": False})
    el = pd.DataFrame({"patient_id": ids, "included": dx != "IBDU", "diagnosis": dx})
    return with_every_crf_field({"core.patients": p, "core.labs": lab, "core.assessments": a, "core.medications": m,
            "core.surgeries": s_, "core.adverse_events": ae, "analytics.eligibility": el}, crf)


def test_a_synthetic_cohort_of_150_patients_is_clean():
    t = synthetic_core(150)
    assert len(t["core.labs"]) == 15_000
    run = run_quality_suite_detailed(t, load_settings(), load_crf())
    bad = run.results[~run.results["passed"]]
    assert bad.empty, bad[["check_id", "n_failed", "examples"]].to_string()
    assert (run.results.set_index("check_id").loc[["conf_unit_labs_unit", "plaus_unique_labs_key"], "n_rows"] == 15_000).all()
