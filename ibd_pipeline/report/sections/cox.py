"""Cox models of discontinuation: forest plot and tables."""

from __future__ import annotations

from .. import fmt as F
from ..context import ReportContext, estimable, ratio_forest, ratio_rows, study_centers
from ..fmt import DASH, fmt_int, fmt_num, para, table
from ...stats.settings import SELECTION_TEXT
from ...study_model import COX_SELECTION_DEFAULT


def build(c: ReportContext) -> str:
    cox = c.wh.get("cox_model", ["model", "variable", "hr", "ci_low", "ci_high", "p_value"])
    st = c.settings["statistics"]
    multi = cox[cox["model"] == "multivariable"]
    uni = cox[cox["model"] == "univariate"]
    selection = SELECTION_TEXT[st.get("cox_selection", COX_SELECTION_DEFAULT)]
    # one center: no strata (the models' note says so per row)
    strata = ", stratified by center" if len(study_centers(c.wh)) != 1 else ""
    out = [para(f"Cox proportional hazards models of discontinuation (lifelines, Efron ties){strata}: "
                f"univariate per candidate covariate, then one multivariable model: {selection} "
                f"(entry p < {st['cox_entry_p']}). PH test: Schoenfeld-residual test p per variable.")]

    def extra(r):
        note = r.get("note")
        return [fmt_num(r.get("ph_test_p"), 3) if not F.missing(r.get("ph_test_p")) else DASH,
                fmt_int(r.get("n")), fmt_int(r.get("events")), "" if F.missing(note) else str(note)]

    if len(multi):
        out.append(c.part(ratio_forest, c, multi, "hr", "cox_forest", "Cox model (multivariable): hazard of discontinuation",
                          "Hazard ratio (95% CI), log scale", "multivariable hazard ratio"))
        out.append(table(["Variable", "HR (95% CI)", "p", "PH test p", "n", "Events", "Note"], ratio_rows(multi, "hr", extra, c.settings),
                         caption="Multivariable Cox model"))
    else:
        out.append(para("No covariate entered the multivariable model (none reached the entry p); the forest "
                        "plot shows the univariate estimates.", "note"))
        if len(uni):
            out.append(c.part(ratio_forest, c, uni, "hr", "cox_forest", "Cox models (univariate): hazard of discontinuation",
                              "Hazard ratio (95% CI), log scale", "univariate hazard ratio"))
    if len(uni):
        out.append(table(["Variable", "HR (95% CI)", "p", "PH test p", "n", "Events", "Note"], ratio_rows(uni, "hr", extra, c.settings),
                         caption="Univariate Cox models",
                         # the note only where an estimate is highlighted
                         notes=["Highlighted estimates are not estimable (e.g. no event in one level): read as "
                                "'no information', not as an effect."] if not estimable(uni, "hr").all() else None))
    return "\n".join(out)
