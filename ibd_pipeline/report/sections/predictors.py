"""Predictors of the primary outcome: the logistic model and its variable selection."""

from __future__ import annotations

from .. import fmt as F
from ..context import ReportContext, ratio_forest, ratio_rows, yesno
from ..data import Unavailable
from ..fmt import Cell, fmt_int, fmt_num, para, table
from ..labels import ANALYSES, endpoint_label, tp_label, var_label


def build(c: ReportContext) -> str:
    st = c.settings["statistics"]
    po = st["predictor_outcome"]
    if st.get("predictor_method", "elastic_net_boruta") == "logistic":
        return _plain_logistic(c, st, po)
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


def _plain_logistic(c: ReportContext, st: dict, po: dict) -> str:
    """statistics.predictor_method logistic: the univariate models, then the model of the
    univariate p < entry variables (analytics.logistic_models)."""
    out = [para(f"Outcome: {endpoint_label(po['endpoint'], c.settings).lower()} at {tp_label(po['timepoint'])} "
                f"({ANALYSES.get(po['analysis'], po['analysis'])}). Each candidate covariate in a univariate logistic "
                f"regression; the covariates with a univariate p < {st['cox_entry_p']} entered one multivariable model "
                "together (the paper states no selection rule). A text covariate is compared level by level with its "
                "first level. Maximum likelihood when it converges without separation, else Firth-penalized; a term "
                "without a finite estimate is reported as not estimable.")]

    def label(r) -> str:
        v = var_label(r.get("variable"), c.settings)
        return v if F.missing(r.get("level")) else f"{v}: {r['level']} vs {r['reference']}"

    def model(which: str):
        m = c.wh.get("logistic_models", ["model", "variable", "odds_ratio", "ci_low", "ci_high", "p_value"])
        m = m[m["model"] == which]
        if m.empty:
            raise Unavailable("no covariate had a univariate p below the entry level: no multivariable model"
                              if which == "multivariable" else "no univariate model")
        shown = m.assign(variable=[label(r) for _, r in m.iterrows()])
        first = m.iloc[0]
        cap = f"{which.capitalize()} logistic regression"
        if which == "multivariable":
            cap += f" ({fmt_int(first['n'])} patients, {fmt_int(first['events'])} events)"
        notes = sorted({f"Method: {x}." for x in m["method"].dropna() if x})
        notes += sorted({f"Note: {x}." for x in m["note"].dropna() if x})
        parts = []
        if which == "multivariable":
            parts.append(c.part(ratio_forest, c, shown, "odds_ratio", "logistic_forest",
                                "Multivariable logistic model: odds of the outcome", "Odds ratio (95% CI), log scale",
                                "odds ratio"))

        def extra(r):
            return [fmt_int(r.get("n")), yesno(r.get("selected"))] if which == "univariate" else []

        heads = ["Covariate", "OR (95% CI)", "p"] + (["Patients", "Entered the model"] if which == "univariate" else [])
        parts.append(table(heads, ratio_rows(shown, "odds_ratio", extra, None), caption=cap, notes=notes))
        return "\n".join(parts)

    out += [c.part(model, "univariate"), c.part(model, "multivariable")]
    return "\n".join(out)
