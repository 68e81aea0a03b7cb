"""The Wilcoxon rank-sum test equals R's wilcox.test (exact without ties, normal
approximation with ties or n >= 50), and the PK substudy table groups the concentrations
by endpoint status with that test."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from ibd_pipeline.stats.pk import pk_by_outcome
from ibd_pipeline.stats.ranksum import ASYMPTOTIC, EXACT, wilcoxon_rank_sum

rng = np.random.default_rng(20250930)
CASES = {
    "exact": (np.round(rng.lognormal(2.5, 1.0, 14), 3), np.round(rng.lognormal(2.3, 0.8, 10), 3) + 0.0005),
    "ties": (np.array([1, 2, 2, 3, 5, 8, 8.0]), np.array([2, 3, 3, 4, 9, 10, 12, 12.0])),
    "large": (rng.normal(0, 1, 60), rng.normal(0.4, 1, 55)),
}


def _r_wilcox(tmp_path):
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip("Rscript not installed")
    (tmp_path / "cases.json").write_text(json.dumps({k: [a.tolist(), b.tolist()] for k, (a, b) in CASES.items()}))
    script = ("suppressMessages(library(jsonlite)); d <- fromJSON(commandArgs(TRUE)[1], simplifyVector = FALSE);"
              "out <- lapply(d, function(c) { t <- suppressWarnings(wilcox.test(unlist(c[[1]]), unlist(c[[2]])));"
              " list(W = unname(t$statistic), p = t$p.value, method = t$method) });"
              "cat(toJSON(out, auto_unbox = TRUE, digits = NA))")
    p = subprocess.run([rscript, "-e", script, str(tmp_path / "cases.json")], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def test_rank_sum_equals_r_wilcox_test_exact_tied_and_large_samples(tmp_path):
    r = _r_wilcox(tmp_path)
    for name, (a, b) in CASES.items():
        got = wilcoxon_rank_sum(a, b)
        assert got.statistic == pytest.approx(r[name]["W"]), name
        assert got.p == pytest.approx(r[name]["p"], abs=1e-10), name
        assert got.method == (EXACT if "exact" in r[name]["method"] else ASYMPTOTIC), r[name]["method"]
    assert wilcoxon_rank_sum(*CASES["exact"]).method == EXACT
    assert wilcoxon_rank_sum(*CASES["ties"]).method == ASYMPTOTIC


def test_rank_sum_of_an_empty_group_is_not_computed():
    got = wilcoxon_rank_sum([1.0, np.nan], [np.nan])
    assert np.isnan(got.p) and got.method is None and (got.n1, got.n2) == (1, 0)


def test_pk_table_groups_concentrations_by_endpoint_status_and_tests_them():
    pk = pd.DataFrame({"patient_id": ["a", "b", "c", "d", "e", "e", "f"],
                       "sample_date": pd.to_datetime(["2024-07-01"] * 5 + ["2024-09-01", "2024-07-01"]),
                       "upa_ng_ml": [30.0, 20.0, 10.0, 5.0, 2.0, 99.0, None]})
    ep = pd.DataFrame({"patient_id": ["a", "b", "c", "d", "e", "f", "a"],
                       "timepoint": ["followup_endoscopy"] * 6 + ["week12"],
                       "endpoint": ["endoscopic_remission"] * 7,
                       "status": ["achieved", "achieved", "not_achieved", "not_achieved", "not_achieved",
                                  "achieved", "not_achieved"]})
    t = pk_by_outcome(pk, ep, ["endoscopic_remission"], "followup_endoscopy").set_index("group")
    # e's first sample (2.0) only; f has no concentration; a's week-12 row is another time point
    assert t.loc["achieved", "n"] == 2 and t.loc["not_achieved", "n"] == 3
    assert t.loc["achieved", "median"] == 25.0 and t.loc["not_achieved", "median"] == 5.0
    assert (t.loc["not_achieved", "q1"], t.loc["not_achieved", "q3"]) == (3.5, 7.5)
    ref = wilcoxon_rank_sum([30.0, 20.0], [10.0, 5.0, 2.0])
    assert t.loc["achieved", "p_value"] == pytest.approx(ref.p) and ref.p == pytest.approx(0.2)
    assert t.loc["achieved", "statistic"] == 6.0 and t.loc["achieved", "test"] == "Wilcoxon rank-sum (exact)"
