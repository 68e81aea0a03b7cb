"""The pharmacokinetic substudy (docs/STUDY_RULES.md#statistics): plasma upadacitinib
concentration by the endoscopic outcome groups at the settings' time point
(``statistics.pharmacokinetics``), median (IQR) per group and the Wilcoxon rank-sum test
(:mod:`.ranksum`, R's ``wilcox.test``) between the groups."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .ranksum import wilcoxon_rank_sum

PK_COLUMNS = ["endpoint", "timepoint", "group", "n", "median", "q1", "q3", "statistic", "p_value", "test"]
GROUPS = ("achieved", "not_achieved")


def pk_by_outcome(pk_samples: pd.DataFrame, endpoints: pd.DataFrame, endpoint_names, timepoint: str) -> pd.DataFrame:
    """Concentration (ng/mL) by outcome group: one row per endpoint and group.

    Parameters
    ----------
    pk_samples : DataFrame
        ``core.pk_samples`` (patient_id, sample_date, upa_ng_ml).
    endpoints : DataFrame
        ``analytics.endpoints`` (patient_id, timepoint, endpoint, status).
    endpoint_names : sequence of str
        The endpoints that define the groups (``statistics.pharmacokinetics.endpoints``).
    timepoint : str
        Their time point (``statistics.pharmacokinetics.timepoint``).

    Returns
    -------
    DataFrame
        :data:`PK_COLUMNS`: n, median, Q1, Q3 (type-7 quantiles, as R's ``quantile``) of
        the patients with a concentration whose status is ``achieved`` or
        ``not_achieved`` (not-evaluable patients are left out); the rank-sum W of the
        ``achieved`` group, two-sided p and the test's method on both rows of an endpoint.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: one concentration per patient, the patient's first
    sample (the substudy draws one, 24 h after the previous dose at the follow-up
    endoscopy); samples without a concentration are left out.
    """
    k = pk_samples.dropna(subset=["upa_ng_ml"]).sort_values(["patient_id", "sample_date"])
    k = k.drop_duplicates("patient_id", keep="first")[["patient_id", "upa_ng_ml"]]
    rows = []
    for name in endpoint_names:
        e = endpoints[(endpoints["endpoint"] == name) & (endpoints["timepoint"] == timepoint)]
        m = e[["patient_id", "status"]].merge(k, on="patient_id")
        vals = {g: m.loc[m["status"] == g, "upa_ng_ml"].to_numpy(float) for g in GROUPS}
        test = wilcoxon_rank_sum(vals["achieved"], vals["not_achieved"])
        for g in GROUPS:
            v = vals[g]
            q = np.quantile(v, [0.5, 0.25, 0.75]) if v.size else [np.nan] * 3
            rows.append({"endpoint": name, "timepoint": timepoint, "group": g, "n": int(v.size),
                         "median": float(q[0]), "q1": float(q[1]), "q3": float(q[2]),
                         "statistic": test.statistic, "p_value": test.p,
                         "test": f"Wilcoxon rank-sum ({test.method})" if test.method else "not tested"})
    out = pd.DataFrame(rows, columns=PK_COLUMNS)
    return out.astype({"n": "Int64"})


__all__ = ["GROUPS", "PK_COLUMNS", "pk_by_outcome"]
