"""Predictors of the primary outcome: the logistic model and its variable selection."""

from __future__ import annotations

from .. import fmt as F
from ..context import ReportContext, ratio_forest, ratio_rows, yesno
from ..fmt import Cell, fmt_int, fmt_num, para, table
from ..labels import ANALYSES, endpoint_label, tp_label, var_label


def build(c: ReportContext) -> str:
    st = c.settings["statistics"]
    po = st["predictor_outcome"]
    out = [para(f"Outcome: {endpoint_label(po['endpoint'], c.settings).lower()} at {tp_label(po['timepoint'])} "
                f"({ANALYSES.get(po['analysis'], po['analysis'])}). Selection: elastic-net "
                f"logistic regression with {st['cv_folds']}-fold cross-validation, Boruta random-forest "
                "importance as confirmation; then a multivariable logistic model with center as a fixed effect, at most "
                f"one variable per {st['events_per_variable']} patients of the smaller outcome class; "
                "maximum likelihood when it converges without separation, else Firth-penalized (profile-likelihood "
                "CIs). A variable without a finite estimate is reported as not estimable.")]

    def model():
        m = c.wh.get("logistic_model", ["variable", "odds_ratio", "ci_low", "ci_high", "p_value"])
        parts = [c.part(ratio_forest, c, m, "odds_ratio", "logistic_forest",
                        "Logistic model: odds of the outcome", "Odds ratio (95% CI), log scale", "odds ratio")]

        def extra(r):
            return [yesno(r.get("selected_by_enet")),
                    "" if F.missing(r.get("boruta_decision")) else str(r.get("boruta_decision"))]

        first = m.iloc[0]
        cap = "Multivariable logistic model"
        if "n" in m and "events" in m:
            cap += f" ({fmt_int(first['n'])} patients, {fmt_int(first['events'])} events)"
        notes = []
        if "method" in m and not F.missing(first.get("method")):
            notes.append(f"Method: {first['method']}.")
        if "note" in m and not F.missing(first.get("note")):
            notes.append(f"Note: {first['note']}.")
        parts.append(table(["Variable", "OR (95% CI)", "p", "Selected by elastic net", "Boruta"],
                           ratio_rows(m, "odds_ratio", extra, c.settings), caption=cap, notes=notes))
        return "\n".join(parts)

    def selection():
        s = c.wh.get("predictor_selection", ["variable"])
        if "boruta_rank" in s:
            s = s.sort_values(["boruta_rank", "variable"], kind="stable")
        rows = [[Cell(var_label(r.get("variable"), c.settings), cls="lbl"), fmt_num(r.get("enet_coef"), 3),
                 yesno(r.get("selected_by_enet")),
                 "" if F.missing(r.get("boruta_decision")) else str(r.get("boruta_decision")),
                 fmt_int(r.get("boruta_rank"))] for _, r in s.iterrows()]
        return table(["Candidate", "Elastic-net coefficient", "Selected (elastic net)", "Boruta decision", "Boruta rank"],
                     rows, caption="Variable selection")

    out += [c.part(model), F.heading(3, "Variable selection"), c.part(selection)]
    return "\n".join(out)
