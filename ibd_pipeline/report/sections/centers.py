"""Center heterogeneity: per-center forest plots and rates, random-effects pooled estimate."""

from __future__ import annotations

import pandas as pd

from .. import fmt as F
from ..context import ReportContext
from ..fmt import Cell, fmt_int, fmt_num, fmt_p, para, table
from ..labels import OVERALL, DX_LABELS, diagnoses_text, endpoint_label, endpoint_order, order, study_diagnoses, tp_label


def _center_flag(c: ReportContext, r) -> tuple[bool, bool, bool]:
    fn = F.small_cell(r["n"], c.small)
    fN = not F.missing(r["n_total"]) and F.num(r["n_total"]) < c.small
    stat = bool(r.get("small_cell")) if not F.missing(r.get("small_cell")) else False
    return fn, fN or stat, fn or fN or stat


def build(c: ReportContext) -> str:
    from ibd_pipeline.stats.figures import forest_plot

    h = c.wh.get("center_heterogeneity", ["diagnosis", "endpoint", "center", "n", "n_total", "pct", "ci_low", "ci_high"])
    tp = c.settings["statistics"]["heterogeneity"]["timepoint"]
    dxs = diagnoses_text(c.settings)
    several = len(study_diagnoses(c.settings)) > 1
    out = [para(f"Per-center rates at {tp_label(tp)} (complete case) with 95% Wilson CIs; random-effects "
                "pooled estimate (DerSimonian-Laird on the logit scale), I\u00b2 and Cochran's Q. "
                + (f"Forest plots show {dxs} pooled ('overall'); the table gives {dxs} separately." if several
                   else f"Forest plots and the table show the {dxs} patients."))]
    for ep in order(h["endpoint"], endpoint_order(c.settings)):
        e = h[h["endpoint"] == ep]
        label = endpoint_label(ep, c.settings)
        out.append(F.heading(3, label))
        plot_dx = OVERALL if (e["diagnosis"] == OVERALL).any() else e["diagnosis"].iloc[0]
        # a study of one diagnosis: its 'overall' rows are its patients, named by the diagnosis
        plot_name = DX_LABELS.get(plot_dx, plot_dx) if several else diagnoses_text(c.settings)

        def fig(e=e, ep=ep, label=label, plot_dx=plot_dx, plot_name=plot_name):
            d = e[e["diagnosis"] == plot_dx].sort_values("center")
            flags = [_center_flag(c, r)[2] for _, r in d.iterrows()]
            labels = [f"{r['center']} ({fmt_int(r['n'])}/{fmt_int(r['n_total'])}){' ' + F.DAGGER if f else ''}"
                      for (_, r), f in zip(d.iterrows(), flags)]
            r0 = d.iloc[0]
            pooled = None
            if "pooled_pct" in d and not F.missing(r0.get("pooled_pct")):
                pooled = (F.num(r0["pooled_pct"]), F.num(r0.get("pooled_ci_low")), F.num(r0.get("pooled_ci_high")))
            w = pd.to_numeric(d["weight"], errors="coerce") if "weight" in d else None
            weights = w.to_numpy() if w is not None and w.notna().any() else None
            i2 = f"I\u00b2 = {fmt_num(r0.get('i2'), 1)}%" if not F.missing(r0.get("i2")) else "I\u00b2 n/a"
            title = f"{label} \u2014 {plot_name}, {tp_label(tp)}: {i2}"
            return c.figure(f"center_{ep}_{plot_dx}", forest_plot,
                            (labels, d["pct"].to_numpy(float), d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float)),
                            {"weights": weights, "pooled": pooled, "title": title,
                             "xlabel": "Patients achieving (%), 95% CI", "pooled_label": "Pooled (DerSimonian-Laird)"},
                            alt=f"Center forest plot, {label}",
                            caption=f"{label}: per-center % (n/N; marker size = random-effects weight) and pooled estimate")

        out.append(c.part(fig))
        rows = []
        for dx in [x for x in c.diagnoses if not c.dx_rows(e, x).empty]:
            d = c.dx_rows(e, dx).sort_values("center")
            for _, r in d.iterrows():
                fn, fN, _ = _center_flag(c, r)
                c.flags += int(fn) + int(fN)
                rows.append([DX_LABELS.get(dx, dx), r["center"], Cell(fmt_int(r["n"]), flag=fn),
                             Cell(fmt_int(r["n_total"]), flag=fN),
                             F.fmt_est_ci(r["pct"], r["ci_low"], r["ci_high"], lambda v: fmt_num(v, 1)),
                             fmt_num(r.get("weight"), 1)])
            r0 = d.iloc[0]
            if "pooled_pct" in d:
                rows.append({"cls": "pooled", "cells": [
                    DX_LABELS.get(dx, dx), Cell("Pooled (random effects)", cls="em"), "", "",
                    F.fmt_est_ci(r0.get("pooled_pct"), r0.get("pooled_ci_low"), r0.get("pooled_ci_high"), lambda v: fmt_num(v, 1)),
                    f"I\u00b2 {fmt_num(r0.get('i2'), 1)}%; \u03c4\u00b2 {fmt_num(r0.get('tau2'), 3)}; Q p {fmt_p(r0.get('p_q'))}"]})
        out.append(table(["Diagnosis", "Center", "n", "N", "% (95% CI)", "Weight % / heterogeneity"], rows,
                         caption=f"{label}: per-center rates", notes=[c.small_note()]))
    return "\n".join(out)
