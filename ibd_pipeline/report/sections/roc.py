"""ROC curve of the logistic model and its discrimination table."""

from __future__ import annotations

from .. import fmt as F
from ..context import ReportContext
from ..fmt import fmt_int, fmt_num, table


def build(c: ReportContext) -> str:
    roc = c.wh.get("roc_curve", ["fpr", "tpr"])
    auc = c.wh.try_get("model_auc", ["auc", "ci_low", "ci_high"])
    from ibd_pipeline.stats.figures import roc_plot

    out = [c.figure("roc", roc_plot, (roc, auc), {"title": "ROC curve of the multivariable logistic model"},
                    alt="ROC curve", caption="ROC curve (apparent) with AUC, 95% CI and optimism-corrected AUC")]
    if auc is not None:
        a = auc.iloc[0]
        rows = [["AUC (apparent)", fmt_num(a["auc"], 3)],
                [f"95% CI ({a.get('ci_method', 'DeLong')})", F.fmt_range(a["ci_low"], a["ci_high"], lambda v: fmt_num(v, 3))],
                ["Bootstrap optimism", fmt_num(a.get("optimism"), 3)],
                ["Optimism-corrected AUC", fmt_num(a.get("auc_optimism_corrected"), 3)],
                ["Bootstrap samples (used / requested)", f"{fmt_int(a.get('bootstrap_used'))} / {fmt_int(a.get('bootstrap_samples'))}"],
                ["Patients / events", f"{fmt_int(a.get('n'))} / {fmt_int(a.get('events'))}"]]
        out.append(table(["Quantity", "Value"], rows, caption="Discrimination"))
    else:
        out.append(c.na("table analytics.model_auc not found or empty"))
    return "\n".join(out)
