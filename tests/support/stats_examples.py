"""Small seeded example frames in the input schemas of :mod:`ibd_pipeline.stats`
(for tests and for trying the functions; not study data)."""

from __future__ import annotations

import numpy as np
import pandas as pd

CENTERS = ("hz_a", "hz_b", "hz_c")
CLINICAL = ("induction", "month6", "month12")
LAB_TPS = ("baseline", "induction", "month6", "month12", "month18")
CLIN_ENDPOINTS = ("sf_clinical_remission", "clinical_response", "endoscopic_remission", "endoscopic_response")
LAB_ENDPOINTS = ("biochemical_remission", "crp_normal", "fc_normal")
TESTS = {"CRP": (8.0, 0.35), "FC": (600.0, 0.3), "ALB": (40.0, -0.02), "HB": (120.0, -0.02)}


def example_frames(seed: int = 1, n_uc: int = 28, n_cd: int = 52) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n = n_uc + n_cd
    dx = np.array(["UC"] * n_uc + ["CD"] * n_cd)
    pid = np.array([f"P{i:03d}" for i in range(n)])
    center = rng.choice(CENTERS, n, p=[0.45, 0.35, 0.20])
    age = np.where(dx == "CD", rng.normal(35, 9, n), rng.normal(50, 14, n)).round().clip(18, 85)
    bmi = rng.normal(20.5, 2.5, n).round(1)
    albumin = rng.normal(40, 5, n).round(1)
    prior_integrin = rng.binomial(1, np.where(dx == "UC", 0.8, 0.2))
    prior_il23 = rng.binomial(1, np.where(dx == "CD", 0.75, 0.3))
    cov = pd.DataFrame({
        "patient_id": pid, "center": center, "diagnosis": dx, "age": age,
        "male": rng.binomial(1, 0.6, n), "bmi": bmi, "bmi_le_18_5": (bmi <= 18.5).astype(int),
        "albumin": albumin, "albumin_le_35": (albumin <= 35).astype(int),
        "crp_gt_8": rng.binomial(1, 0.4, n), "fc_gt_150": rng.binomial(1, 0.7, n),
        "n_prior_mechanisms": rng.integers(2, 5, n), "prior_anti_tnf": rng.binomial(1, 0.9, n),
        "prior_anti_integrin": prior_integrin, "prior_anti_il12_23_or_il23": prior_il23,
        "prior_jak": rng.binomial(1, 0.1, n), "surgery_history": rng.binomial(1, np.where(dx == "CD", 0.6, 0.1)),
        "perianal": np.where(dx == "CD", rng.binomial(1, 0.7, n), 0), "eim_any": rng.binomial(1, 0.25, n),
        "steroid_at_baseline": rng.binomial(1, 0.45, n),
        "disease_duration_years": rng.gamma(3, 2.5, n).round(1),
        "montreal_age": np.where(dx == "CD", rng.choice(["A1", "A2", "A3"], n, p=[0.17, 0.62, 0.21]), None),
        "cd_location": np.where(dx == "CD", rng.choice(["L1", "L2", "L3", "L4"], n, p=[.23, .21, .52, .04]), None),
        "uc_extent": np.where(dx == "UC", rng.choice(["E1", "E2", "E3"], n, p=[.2, .35, .45]), None),
        "smoking": rng.choice(["never", "former", "current"], n, p=[.7, .2, .1]),
    })
    # month-12 remission: younger, no anti-integrin, prior IL-23 -> more likely
    lin = 1.2 - 0.06 * (age - 40) - 1.5 * prior_integrin + 1.2 * prior_il23
    p12 = 1 / (1 + np.exp(-lin))
    # persistence
    t_stop = rng.exponential(1400, n)
    t_cens = rng.uniform(200, 700, n)
    time = np.minimum(t_stop, t_cens).round()
    event = (t_stop <= t_cens).astype(int)
    pers = pd.DataFrame({"patient_id": pid, "center": center, "diagnosis": dx, "time_days": time,
                         "event": event, "stop_reason": np.where(event == 1, "secondary_loss_of_response", None)})
    # endpoints
    rows = []
    tp_day = {"baseline": 0, "induction": 70, "month6": 182, "month12": 365, "month18": 547}
    for i in range(n):
        base_p = {"induction": 0.55, "month6": 0.65, "month12": p12[i]}
        for tp in LAB_TPS:
            stopped = event[i] == 1 and time[i] < tp_day[tp]
            for ep in CLIN_ENDPOINTS + LAB_ENDPOINTS:
                if ep in CLIN_ENDPOINTS and tp not in CLINICAL:
                    continue
                if ep in CLIN_ENDPOINTS and stopped:
                    status = "not_achieved"
                else:
                    p = base_p.get(tp, 0.5) if ep in CLIN_ENDPOINTS else {"baseline": 0.25}.get(tp, 0.55)
                    status = "achieved" if rng.random() < p else "not_achieved"
                    if rng.random() < 0.07:
                        status = "not_evaluable"
                nri = "achieved" if status == "achieved" else "not_achieved"
                rows.append((pid[i], center[i], dx[i], tp, ep, status, nri, None, None))
    endpoints = pd.DataFrame(rows, columns=["patient_id", "center", "diagnosis", "timepoint", "endpoint",
                                            "status", "status_nri", "value", "reason"])
    # biomarkers
    rows = []
    for i in range(n):
        for k, tp in enumerate(LAB_TPS):
            for test, (level, decay) in TESTS.items():
                if rng.random() < 0.1:
                    continue
                v = level * np.exp(-decay * k) * rng.lognormal(0, 0.3)
                rows.append((pid[i], center[i], dx[i], tp, test, round(float(v), 2), None))
    biomarkers = pd.DataFrame(rows, columns=["patient_id", "center", "diagnosis", "timepoint", "test",
                                             "value", "qualifier"])
    # safety
    terms = ["acne", "infection", "anemia", "dyslipidemia", "neutropenia"]
    rows = []
    for i in range(n):
        for _ in range(rng.poisson(0.3)):
            rows.append((pid[i], center[i], dx[i], rng.choice(terms), bool(rng.random() < 0.1),
                         bool(rng.random() < 0.05), int(rng.integers(0, int(time[i]) + 1))))
    ae = pd.DataFrame(rows, columns=["patient_id", "center", "diagnosis", "term", "serious",
                                     "led_to_discontinuation", "onset_day"])
    exposure = pd.DataFrame({"patient_id": pid, "diagnosis": dx, "exposure_years": time / 365.25})
    outcome = pd.Series((rng.random(n) < p12).astype(int), index=pid, name="sf_clinical_remission_month12")
    return {"covariates": cov, "endpoints": endpoints, "biomarkers": biomarkers, "persistence": pers,
            "adverse_events": ae, "exposure": exposure, "outcome": outcome}
