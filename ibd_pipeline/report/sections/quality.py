"""Data quality checks (only when analytics.quality_results exists)."""

from __future__ import annotations

import pandas as pd

from .. import fmt as F
from ..context import ReportContext
from ..fmt import fmt_int, para, table


def build(c: ReportContext) -> str:
    q = c.wh.get("quality_results", ["check_id"])
    q = q.drop(columns=[x for x in ("examples",) if x in q.columns])  # failing rows may carry patient ids
    sev = q["severity"].astype(str) if "severity" in q else pd.Series(["?"] * len(q))
    counts = sev.value_counts()
    out = [para(f"{len(q)} checks: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")]
    if "category" in q:
        g = q.assign(_sev=sev).groupby(["category", "_sev"]).size().unstack(fill_value=0)
        rows = [[cat] + [fmt_int(g.loc[cat].get(s, 0)) for s in g.columns] for cat in g.index]
        out.append(table(["Category"] + [str(s) for s in g.columns], rows, caption="Checks by category and result"))
    bad = q[sev.str.lower() != "ok"]
    if len(bad):
        cols = [x for x in ("check_id", "category", "table_name", "column_name", "description", "n_rows", "n_failed",
                            "failed_share", "threshold", "severity") if x in bad.columns]
        rows = []
        for _, r in bad.iterrows():
            row = []
            for x in cols:
                v = r[x]
                row.append(F.fmt_prop(v, 2) if x in ("failed_share", "threshold") else
                           (fmt_int(v) if x in ("n_rows", "n_failed") else ("" if F.missing(v) else str(v))))
            rows.append(row)
        out.append(table([F.label(x) for x in cols], rows, caption="Checks that did not pass",
                         notes=["Example failing rows stay in analytics.quality_results (they can carry patient ids)."]))
    else:
        out.append(para("Every check passed."))
    return "\n".join(out)
