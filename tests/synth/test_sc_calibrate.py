"""The single-center generator's model-term calibration (synth/sc_calibrate.py): its numpy
fits agree with the pipeline's estimators (statsmodels Logit, lifelines Cox with Efron
ties), and the calibration only moves values between patients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ibd_pipeline.config import load_published, load_settings, settings_path
from ibd_pipeline.synth.sc_calibrate import (
    CoxRisk,
    PUBLISHED_TERMS,
    cox_fit,
    logit_fit,
    model_targets,
    wald_p,
)
from ibd_pipeline.synth.single_center import generate_single_center

STUDY = "single_center_cd"
SETTINGS = load_settings(settings_path(STUDY))
PUB = load_published(settings_path(STUDY).with_name("published_figures.yaml"))


def test_logit_fit_is_statsmodels_logit():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    X = np.column_stack([rng.random(90) < 0.4, rng.normal(5, 2, 90)]).astype(float)
    y = (rng.random(90) < 1 / (1 + np.exp(-(0.8 * X[:, 0] - 0.3 * X[:, 1] + 1)))).astype(float)
    b, z = logit_fit(X, y)
    ref = sm.Logit(y, sm.add_constant(X)).fit(disp=0)
    assert np.allclose(b, ref.params[1:], atol=1e-8) and np.allclose(z, ref.tvalues[1:], atol=1e-6)
    assert logit_fit(np.ones((4, 1)) * np.array([[1], [1], [0], [0]]), np.array([1.0, 1, 0, 0])) is None  # separation


def test_cox_fit_is_lifelines_efron_with_ties():
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(5)
    n = 80
    x = np.column_stack([rng.random(n) < 0.3, rng.normal(0, 1, n)]).astype(float)
    t = np.round(rng.exponential(200 * np.exp(-0.7 * x[:, 0]), n) / 20) * 20 + 20  # tied days
    e = rng.random(n) < 0.6
    b, z = cox_fit(x, CoxRisk(t, e))
    df = pd.DataFrame({"T": t, "E": e.astype(int), "a": x[:, 0], "b": x[:, 1]})
    ref = CoxPHFitter().fit(df, "T", "E")
    assert np.allclose(b, ref.params_.to_numpy(), atol=1e-6)
    assert np.allclose([wald_p(v) for v in z], ref.summary["p"].to_numpy(), atol=1e-5)


def test_every_published_term_has_a_reading():
    targets = model_targets(PUB, 0.05)
    n_terms = sum(len(PUB[m][k]) for m in ("logistic_week12_clinical_remission", "cox_discontinuation")
                  for k in ("univariate", "multivariable"))
    assert len(targets) == n_terms
    assert {t.covariate for t in targets} <= {c for c, _, _ in PUBLISHED_TERMS.values()}
    with pytest.raises(ValueError, match="no pipeline term"):
        model_targets({"cox_discontinuation": {"univariate": {"shoe_size": {"hr": 1.2, "p": 0.3}}}}, 0.05)


def test_the_calibration_reproduces_the_terms_and_is_deterministic():
    seed = int(SETTINGS["synth"]["seed"])
    a = generate_single_center(PUB, SETTINGS, seed)
    b = generate_single_center(PUB, SETTINGS, seed)
    mt = a.design["model_terms"]
    assert mt == b.design["model_terms"]
    assert mt["not_reproduced"] == [] and mt["penalty_after"] <= mt["penalty_before"]
    assert mt["not_reachable"] == []  # the univariate p < 0.05 Cox variables enter together: every term can be printed
    for t in a.frames:
        pd.testing.assert_frame_equal(a.frames[t], b.frames[t])
