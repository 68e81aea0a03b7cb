"""The PK substudy: plasma upadacitinib concentration by endoscopic outcome group
(analytics.pk_concentrations; only a study with statistics.pharmacokinetics)."""

from __future__ import annotations

from ..context import ReportContext
from ..fmt import fmt_int, fmt_num, fmt_p, label, para, table

GROUP_LABELS = {"achieved": "achieved", "not_achieved": "not achieved"}


def build(c: ReportContext) -> str:
    pk = c.wh.try_get("pk_concentrations", ["endpoint", "timepoint", "group", "n", "median", "q1", "q3",
                                            "p_value", "test"])
    if pk is None:
        return c.na("table analytics.pk_concentrations not found or empty")
    rows = [[label(r["endpoint"]), label(r["timepoint"]), GROUP_LABELS.get(r["group"], r["group"]), fmt_int(r["n"]),
             f"{fmt_num(r['median'], 2)} ({fmt_num(r['q1'], 2)}-{fmt_num(r['q3'], 2)})", fmt_p(r["p_value"]), r["test"]]
            for _, r in pk.iterrows()]
    return "\n".join([
        para("Plasma upadacitinib concentration (ng/mL, one sample per patient) by the endpoint's status; "
             "patients whose endpoint is not evaluable are left out. Two-sided Wilcoxon rank-sum test between "
             "the groups (as R's wilcox.test)."),
        table(["Endpoint", "Time point", "Group", "n", "Median (IQR), ng/mL", "p", "Test"], rows,
              caption="Concentration by outcome group"),
    ])
