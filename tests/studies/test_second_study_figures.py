"""The second study's published figures, reproduced by the pipeline's own rules (issue 15
item 4): the eligibility catalogue, the endpoint rules with the week-k analysis sets and
the rates of ``stats.rates`` - the code every study runs - applied to the calibrated
synthetic single-center cohort with the study's settings. Counts exactly, Kaplan-Meier
within 0.5 percentage points, the 20 stops by reason."""

from __future__ import annotations

import functools

import pandas as pd
import pytest

from ibd_pipeline.cohort import eligibility
from ibd_pipeline.config import load_crf, load_published, load_settings, settings_path
from ibd_pipeline.endpoints import endpoints, persistence
from ibd_pipeline.stats.rates import endpoint_rates
from ibd_pipeline.stats.survival import km_at
from ibd_pipeline.synth.single_center import generate_single_center

STUDY = "single_center_cd"
SETTINGS = load_settings(settings_path(STUDY))
PUB = load_published(settings_path(STUDY).with_name("published_figures.yaml"))


@functools.lru_cache(maxsize=None)
def derived(seed: int):
    c = generate_single_center(PUB, SETTINGS, seed)
    f = {t: df.rename(columns={"mrn": "patient_id"}).assign(center=SETTINGS["synth"]["center"]) for t, df in c.frames.items()}
    crf = load_crf()
    el = eligibility(f["patients"], None, f["medications"], f["assessments"], f["labs"], f["surgeries"], SETTINGS, crf)
    inc = set(el.loc[el["included"], "patient_id"])
    g = {t: df[df["patient_id"].isin(inc)] for t, df in f.items()}
    ep = endpoints(g["patients"], g["medications"], g["surgeries"], g["assessments"], g["labs"], SETTINGS, crf)
    rates = endpoint_rates(ep)
    return el, rates[rates["diagnosis"] == "CD"].set_index(["endpoint", "timepoint", "analysis"]), persistence(g["patients"])


@pytest.fixture(params=[SETTINGS["synth"]["seed"], 7], ids=lambda s: f"seed{s}")
def study(request):
    return derived(request.param)


def nN(rates, endpoint, tp, analysis):
    r = rates.loc[(endpoint, tp, analysis)]
    return int(r["n"]), int(r["n_total"])


def test_population_included_and_every_rule_excluding(study):
    el, _, _ = study
    assert int(el["included"].sum()) == PUB["flow"]["included"]
    assert set(el["exclusion_reason"].dropna()) == set(SETTINGS["eligibility"]["order"])


@pytest.mark.parametrize("endpoint", ["clinical_remission", "clinical_response"])
def test_clinical_endpoints_n_of_N_exactly_with_stopped_patients_non_responders(study, endpoint):
    _, rates, _ = study
    for tp, fig in PUB["endpoints"][endpoint].items():
        assert nN(rates, endpoint, tp, "nri") == (fig["n"], fig["N"]), (endpoint, tp)
        assert fig["N"] == PUB["flow"]["analysis_sets"]["effectiveness"][tp]["N"]


@pytest.mark.parametrize("published, endpoint", [("crp_remission", "crp_remission"), ("fc_remission", "fc_remission"),
                                                 ("biomarker_remission", "biomarker_remission")])
def test_biomarker_remission_complete_case_exactly(study, published, endpoint):
    _, rates, _ = study
    for tp, fig in PUB["biomarkers"][published].items():
        assert nN(rates, endpoint, tp, "complete_case") == (fig["n"], fig["N"]), (endpoint, tp)


def test_endoscopic_response_and_remission_among_the_32(study):
    _, rates, _ = study
    for name in ("response", "remission"):
        fig = PUB["endpoints"]["endoscopic"][name]
        assert nN(rates, f"endoscopic_{name}", "followup_endoscopy", "complete_case") == (fig["n"], fig["N"])


def test_persistence_20_stops_by_reason_and_km_within_half_a_point(study):
    _, _, pers = study
    p = PUB["persistence"]
    assert int(pers["event"].sum()) == p["discontinued"]["n"]
    reasons = pers.loc[pers["event"] == 1, "stop_reason"].value_counts().to_dict()
    assert reasons == {"inefficacy": p["reasons"]["inefficacy"]["n"], "adverse_event": p["reasons"]["adverse_event"]["n"]}
    months = SETTINGS["persistence"]["km_months"]
    km = km_at(pers["time_days"], pers["event"], [m * SETTINGS["persistence"]["days_per_month"] for m in months])
    for m, s in zip(months, km["survival"]):
        assert abs(100 * s - p["km_percent"][f"m{int(m)}"]) <= 0.5, m
