"""Persistence on upadacitinib: Kaplan-Meier figures and rates, log-rank tests, discontinuation rates."""

from __future__ import annotations

from .. import fmt as F
from ..context import ReportContext
from ..data import Unavailable
from ..fmt import DASH, EN, Cell, fmt_int, fmt_num, fmt_p, para, table
from ..labels import DX_LABELS, group_label, group_labels, km_groups, km_title, order


def _km_figures(c: ReportContext) -> str:
    from ibd_pipeline.stats.figures import km_plot

    pers = c.wh.get("persistence", ["patient_id", "diagnosis", "time_days", "event"])
    cov = c.wh.try_get("baseline_covariates", ["patient_id"])
    pst = c.settings["persistence"]
    months = [0] + [int(m) for m in pst["km_months"]]
    dpm = float(pst["days_per_month"])
    km = c.wh.try_get("km_estimates", ["group_var"])
    groups = order(km["group_var"], km_groups(c.settings)) if km is not None else km_groups(c.settings)
    out = []
    for gv in groups:
        def one(gv=gv):
            if gv != "overall" and gv not in pers.columns and (cov is None or gv not in cov.columns):
                raise Unavailable(f"grouping variable {gv} is in neither analytics.persistence nor "
                                  "analytics.baseline_covariates")
            cv = None if cov is None or gv in pers.columns or gv == "overall" else cov[["patient_id", gv]]
            return c.figure(f"km_{gv}", km_plot, (pers[[x for x in pers.columns if x != "stop_reason"]], cv, gv),
                            {"days_per_month": dpm, "months": months, "alpha": c.alpha,
                             "title": f"Persistence on UPA \u2014 {km_title(gv, c.settings)}",
                             "group_labels": group_labels(gv, c.settings)},
                            alt=f"Kaplan-Meier persistence, {km_title(gv, c.settings)}",
                            caption=f"Kaplan-Meier: {km_title(gv, c.settings)}; shaded 95% CI; numbers at risk below")
        out.append(c.part(one))
    return '<div class="grid">' + "".join(out) + "</div>"


def _km_table(c: ReportContext) -> str:
    km = c.wh.get("km_estimates", ["group_var", "group", "month", "survival", "ci_low", "ci_high", "n_at_risk"])
    months = sorted(km["month"].unique())
    rows = []
    for gv in order(km["group_var"], km_groups(c.settings)):
        g = km[km["group_var"] == gv]
        for grp in sorted(g["group"].astype(str).unique()):
            cells = [Cell(km_title(gv, c.settings), cls="lbl"), group_label(gv, grp, c.settings)]
            for m in months:
                x = g[(g["group"].astype(str) == grp) & (g["month"] == m)]
                if x.empty:
                    cells.append(DASH)
                    continue
                x = x.iloc[0]
                cells.append(f"{F.fmt_prop(x['survival'])} ({F.fmt_prop(x['ci_low'])}{EN}{F.fmt_prop(x['ci_high'])}); "
                             f"at risk {fmt_int(x['n_at_risk'])}")
            rows.append(cells)
    return table(["Grouping", "Group"] + [f"Month {int(m)}" for m in months], rows,
                 caption="Kaplan-Meier persistence (95% CI, log-log Greenwood) and numbers at risk")


def _logrank_table(c: ReportContext) -> str:
    lr = c.wh.get("logrank_tests", ["group_var", "groups", "n", "events", "test_statistic", "df", "p_value"])
    rows = [[km_title(r.group_var, c.settings),
             " vs ".join(group_label(r.group_var, g, c.settings) for g in str(r.groups).split("|")),
             fmt_int(r.n), fmt_int(r.events),
             fmt_num(r.test_statistic, 2), fmt_int(r.df), fmt_p(r.p_value)] for r in lr.itertuples()]
    return table(["Comparison", "Groups", "n", "Events", "Chi-square", "df", "p"], rows, caption="Log-rank tests")


def _discontinuation_table(c: ReportContext) -> str:
    d = c.wh.get("discontinuation_rates", ["group_var", "group", "n", "events", "patient_years", "rate_per_100py"])
    rows = [[DX_LABELS.get(str(r.group), str(r.group)) if r.group_var in ("overall", "diagnosis")
             else group_label(r.group_var, r.group, c.settings),
             fmt_int(r.n), fmt_int(r.events), fmt_num(r.patient_years, 1),
             F.fmt_est_ci(r.rate_per_100py, getattr(r, "ci_low", None), getattr(r, "ci_high", None), lambda v: fmt_num(v, 1))]
            for r in d.itertuples()]
    return table(["Group", "Patients", "Discontinuations", "Patient-years", "Per 100 patient-years (95% CI)"], rows,
                 caption="Discontinuations per 100 patient-years (exact Poisson CI)")


def build(c: ReportContext) -> str:
    return "\n".join([
        para("Persistence: time from UPA start to stop for any reason, censored at the last follow-up."),
        c.part(_km_figures, c),
        F.heading(3, "Kaplan-Meier rates"), c.part(_km_table, c),
        F.heading(3, "Log-rank tests"), c.part(_logrank_table, c),
        F.heading(3, "Discontinuation rate"), c.part(_discontinuation_table, c),
    ])
