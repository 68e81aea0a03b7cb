"""A small synthetic warehouse for the report tests: the seeded example frames of
``stats_examples`` (tests/support/stats_examples.py) run through the real stats / cohort functions, plus
hand-made provenance tables, written into the ``analytics`` schema of a DuckDB file
with the layouts the pipeline writes. No file outside the test's tmp_path is used."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ibd_pipeline import stats
from ibd_pipeline.stats import analyses
from ibd_pipeline.cohort import patient_flow
from ibd_pipeline.config import load_crf, load_settings
from ibd_pipeline.pseudonym import patient_id
from ibd_pipeline.report.data import flatten_settings
from tests.support.stats_examples import example_frames
from ibd_pipeline.stats.safety import DECIMALS as AE_DECIMALS

KEY = b"report-test-key"
SMALL_CENTER = "hz_c"  # gets a re-abstraction sample of 3 patients (a small cell)
SCREENED_EXTRA = 17  # excluded patients added to the 80 included: 97 screened vs 122 published


def _pid(center: str, i: int) -> str:
    return patient_id(KEY, center, f"MRN{i:05d}")


def build_tables() -> dict[str, pd.DataFrame]:
    """Every analytics table of the fixture warehouse (the session fixture
    ``report_tables`` of tests/report/conftest.py computes them once)."""
    settings = load_settings()
    st = settings["statistics"]
    f = example_frames(5)
    cov = f["covariates"]
    ids = {old: _pid(c, i) for i, (old, c) in enumerate(zip(cov["patient_id"], cov["center"]))}
    remap = lambda df: df.assign(patient_id=df["patient_id"].map(ids))  # noqa: E731
    cov, endpoints, biomarkers = remap(cov), remap(f["endpoints"]), remap(f["biomarkers"])
    persistence, ae, exposure = remap(f["persistence"]), remap(f["adverse_events"]), remap(f["exposure"])
    # make NRI differ from complete case for one endpoint (some results not evaluable)
    # trimmed to keep the tests fast: 2 biomarkers, no biochemical-remission endpoint
    biomarkers = biomarkers[biomarkers["test"].isin(["CRP", "FC"])]
    endpoints = endpoints[endpoints["endpoint"] != "biochemical_remission"].reset_index(drop=True)
    # lab endpoints always evaluable: NRI == complete case there (the report then shows one figure)
    lab = endpoints["endpoint"].isin(["biochemical_remission", "crp_normal", "fc_normal"])
    endpoints.loc[lab & (endpoints["status"] == "not_evaluable"), "status"] = "not_achieved"
    biomarkers = biomarkers.assign(unit=biomarkers["test"].map({"CRP": "mg/L", "FC": "ug/g", "ALB": "g/L", "HB": "g/L"}))
    exposure = exposure.assign(center=exposure["patient_id"].map(cov.set_index("patient_id")["center"]))

    # eligibility: the 80 included + excluded patients (one 'other' patient with two other reasons)
    excl = [("not_dtt", "hz_a"), ("not_dtt", "hz_b"), ("not_dtt", SMALL_CENTER), ("under_18", "hz_a"),
            ("insufficient_data", "hz_a"), ("insufficient_data", "hz_a"), ("insufficient_data", "hz_b"),
            ("insufficient_data", "hz_b"), ("insufficient_data", SMALL_CENTER), ("concomitant_biologic", "hz_b"),
            ("other:ibdu", "hz_a"), ("other:malignancy", "hz_b"), ("other:short_exposure", "hz_a"),
            ("other:pregnancy_or_breastfeeding", SMALL_CENTER), ("not_dtt", "hz_a"),
            ("insufficient_data", "hz_a"), ("other:serious_infection", "hz_b")]
    assert len(excl) == SCREENED_EXTRA
    el_rows = [(p, c, d, True, None, None) for p, c, d in zip(cov["patient_id"], cov["center"], cov["diagnosis"])]
    for k, (reason, center) in enumerate(excl):
        allr = reason + ("|other:short_exposure" if reason == "other:malignancy" else "")
        el_rows.append((_pid(center, 1000 + k), center, "CD" if k % 2 else "UC", False, reason, allr))
    eligibility = pd.DataFrame(el_rows, columns=["patient_id", "center", "diagnosis", "included",
                                                 "exclusion_reason", "all_reasons"])
    flow = patient_flow(eligibility, settings)

    t1_vars = [v for v in st["table1_variables"] if v["name"] in cov.columns]
    p = stats.params_from_settings(settings)
    p1 = replace(p, table1_variables=tuple(t1_vars))
    cands = [c for c in st["covariates"] if c in cov.columns]
    pred = _predictor_tables(cands)
    # as the rates asset writes analytics.ae_summary: every CRF term, rounded
    ae_t = stats.ae_tables(ae, exposure, exposure[["patient_id", "diagnosis"]], terms=load_crf().ae_terms,
                           decimals=AE_DECIMALS)

    centers = sorted(cov["center"].unique())
    deliveries = pd.DataFrame([
        {"center": c, "round": r, "table_name": t, "file_name": f"{r}_{t}_20250401.csv", "sheet": None,
         "sha256": hashlib.sha256(f"{c}|{r}|{t}".encode()).hexdigest(), "seq": i, "received_at": "2025-04-01T00:00:00+00:00",
         "rows_in": 40 + i, "rows_accepted": 40 + i - (i % 3 == 0), "rows_quarantined": int(i % 3 == 0),
         "status": "current", "message": ""}
        for c in centers for r in ("A", "B") for i, t in enumerate(("patients", "labs"))])
    sample = pd.concat([cov[cov["center"] == c].head(3 if c == SMALL_CENTER else 8)[["center", "patient_id", "diagnosis"]]
                        for c in centers], ignore_index=True)
    agr = []
    for c in centers:
        n = int((sample["center"] == c).sum())
        agr += [(c, "patients", "sex", n, n, 100.0, 1.0, np.nan),
                (c, "patients", "birth_date", n, n - 1, 100.0 * (n - 1) / n, np.nan, np.nan),
                (c, "labs", "value", 4 * n, 4 * n, 100.0, np.nan, 0.99),
                (c, "patients", "*", 2 * n, 2 * n - 1, 100.0 * (2 * n - 1) / (2 * n), np.nan, np.nan),
                (c, "labs", "*", 4 * n, 4 * n, 100.0, np.nan, np.nan),
                (c, "*", "*", 6 * n, 6 * n - 1, 100.0 * (6 * n - 1) / (6 * n), np.nan, np.nan)]
    agreement = pd.DataFrame(agr, columns=["center", "table_name", "field", "n_compared", "n_agree", "pct_agree",
                                           "kappa", "icc"])
    discrepancies = pd.DataFrame([
        {"center": r.center, "patient_id": r.patient_id, "table_name": "patients", "record_key": r.patient_id,
         "field": "birth_date", "value_a": "1980-01-01", "value_b": "1980-01-02", "resolved_value": None,
         "status": "open"} for r in sample.groupby("center").head(1).itertuples()])

    out = {
        "deliveries": deliveries, "agreement": agreement, "discrepancies": discrepancies,
        "reabstraction_sample": sample, "eligibility": eligibility, "patient_flow": flow,
        "table1": analyses.table1_analysis(cov, p1),
        "endpoints": endpoints, "endpoint_rates": stats.endpoint_rates(endpoints),
        **analyses.endpoint_tests(endpoints, p).tables(),
        "biomarkers": biomarkers, "biomarker_summary": stats.biomarker_summary(biomarkers),
        "biomarker_tests": stats.biomarker_tests(biomarkers),
        "predictor_selection": pred["selection"], "logistic_model": pred["logistic_model"],
        "roc_curve": pred["roc"], "model_auc": pred["auc"] if isinstance(pred["auc"], pd.DataFrame) else pd.DataFrame([pred["auc"]]),
        "persistence": persistence, "baseline_covariates": cov,
        "km_estimates": stats.km_estimates(persistence, cov, group_vars=p.km_groups, months=p.km_months,
                                           days_per_month=p.days_per_month, alpha=p.alpha),
        "logrank_tests": stats.logrank_tests(persistence, cov, group_vars=p.logrank_groups),
        "cox_model": _cox_table(cands),
        "discontinuation_rates": stats.discontinuation_rate(persistence, days_per_year=p.days_per_year, alpha=p.alpha),
        "center_heterogeneity": analyses.heterogeneity_analysis(endpoints, p),
        "ae_summary": ae_t.by_term, "safety_serious": ae_t.serious, "safety_discontinuation": ae_t.discontinuation,
        "adverse_events": ae, "exposure": exposure,
    }
    return out


def _predictor_tables(cands: list[str]) -> dict[str, pd.DataFrame]:
    """Hand-made outputs of stats.predictor_analysis (running it takes seconds): one
    estimable covariate, one separated (OR not estimable), an ROC with tied scores."""
    sel = pd.DataFrame({"variable": cands, "enet_coef": [0.4 if c == "age" else (-0.2 if c == "prior_anti_integrin" else 0.0)
                                                          for c in cands],
                        "selected_by_enet": [c in ("age", "prior_anti_integrin") for c in cands],
                        "boruta_decision": ["confirmed" if c == "age" else "rejected" for c in cands],
                        "boruta_rank": list(range(1, len(cands) + 1))})
    note = "2 patient(s) left out for a missing outcome or covariate; quasi-complete separation for prior_anti_integrin"
    model = pd.DataFrame([
        {"variable": "age", "coef": -0.08, "odds_ratio": 0.92, "ci_low": 0.87, "ci_high": 0.97, "p_value": 0.002,
         "selected_by_enet": True, "boruta_decision": "confirmed", "n": 78, "events": 41, "method": "logit, center fixed effect",
         "note": note},
        {"variable": "prior_anti_integrin", "coef": -21.0, "odds_ratio": 7.6e-10, "ci_low": np.nan, "ci_high": np.nan,
         "p_value": np.nan, "selected_by_enet": True, "boruta_decision": "rejected", "n": 78, "events": 41,
         "method": "logit, center fixed effect", "note": note}])
    roc = pd.DataFrame({"fpr": [0.0, 0.0, 0.1, 0.4, 0.4, 1.0], "tpr": [0.0, 0.3, 0.5, 0.8, 0.9, 1.0],
                        "threshold": [np.inf, 0.95, 0.8, 0.6, 0.5, 0.1]})
    auc = pd.DataFrame([{"auc": 0.81, "ci_low": 0.71, "ci_high": 0.91, "ci_method": "DeLong", "optimism": 0.04,
                         "auc_optimism_corrected": 0.77, "bootstrap_samples": 200, "bootstrap_used": 198, "n": 78,
                         "events": 41}])
    return {"selection": sel, "logistic_model": model, "roc": roc, "auc": auc}


def _cox_table(cands: list[str]) -> pd.DataFrame:
    """Hand-made output of stats.cox_models (layout ibd_pipeline.stats.survival.COX_COLUMNS)."""
    rows = []
    for i, v in enumerate(cands):
        hr = 1.0 + 0.1 * (i - 5)
        rows.append({"model": "univariate", "variable": v, "coef": float(np.log(hr)), "hr": hr, "ci_low": hr / 2,
                     "ci_high": hr * 2, "p_value": 0.01 + 0.06 * i, "ph_test_p": 0.5, "step": pd.NA, "n": 80,
                     "events": 26, "note": None})
    rows.append({"model": "univariate", "variable": "prior_jak", "coef": -16.0, "hr": 1.1e-7, "ci_low": 0.0,
                 "ci_high": np.inf, "p_value": 0.99, "ph_test_p": 1.0, "step": pd.NA, "n": 80, "events": 26,
                 "note": "possible monotone likelihood (e.g. no events in a level) for prior_jak"})
    rows.append({"model": "multivariable", "variable": cands[0], "coef": -0.69, "hr": 0.5, "ci_low": 0.3,
                 "ci_high": 0.85, "p_value": 0.01, "ph_test_p": 0.4, "step": 1, "n": 80, "events": 26, "note": None})
    out = pd.DataFrame(rows)
    out["step"] = out["step"].astype("Int64")
    return out


def write_warehouse(path: Path, tables: dict[str, pd.DataFrame], *, drop=(), empty=(), extra: dict | None = None, rename: dict | None = None,
                    settings: dict | None = None) -> Path:
    """The fixture warehouse (``tables``: ``report_tables``) as a DuckDB file: ``drop`` leaves tables out, ``empty``
    writes them without rows, ``extra`` adds tables, ``rename`` {table: {old: new}}
    renames columns (e.g. to reproduce DuckDB's N -> N_1 collision)."""
    t = dict(tables)
    t.update(extra or {})
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS analytics")
        con.execute("CREATE SCHEMA IF NOT EXISTS ref")
        for name, df in t.items():
            if name in drop:
                continue
            df = df.rename(columns=(rename or {}).get(name, {}))
            df = df.head(0) if name in empty else df
            con.register("_df", df)
            con.execute(f'CREATE TABLE analytics."{name}" AS SELECT * FROM _df')
            con.unregister("_df")
        flat = flatten_settings(settings if settings is not None else load_settings())
        con.register("_s", pd.DataFrame({"key": list(flat), "value": [str(v) for v in flat.values()]}))
        con.execute("CREATE TABLE ref.settings AS SELECT * FROM _s")
    finally:
        con.close()
    return path


def all_patient_ids(tables: dict[str, pd.DataFrame]) -> set[str]:
    ids: set[str] = set()
    for df in tables.values():
        if "patient_id" in df.columns:
            ids.update(str(x) for x in df["patient_id"].dropna())
    return ids


def quality_results(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    pid = next(iter(sorted(all_patient_ids(tables))))
    return pd.DataFrame([
        {"check_id": "patients.birth_date.not_null", "category": "completeness", "subcategory": "field",
         "table_name": "core.patients", "column_name": "birth_date", "description": "birth date present",
         "n_rows": 80, "n_failed": 0, "failed_share": 0.0, "threshold": 0.0, "severity": "ok", "passed": True,
         "examples": "[]", "gx_expectation": "expect_column_values_to_not_be_null"},
        {"check_id": "labs.value.range", "category": "plausibility", "subcategory": "range",
         "table_name": "core.labs", "column_name": "value", "description": "lab values in range",
         "n_rows": 400, "n_failed": 3, "failed_share": 0.0075, "threshold": 0.0, "severity": "warn", "passed": False,
         "examples": json.dumps([{"patient_id": pid, "value": 9999}]), "gx_expectation": "expect_column_values_to_be_between"},
    ])
