"""Endpoints: rates over time with Wilson CIs per diagnosis of the study, the test between
its two diagnoses (UC vs CD) when it has two, Cochran's Q."""

from __future__ import annotations

import pandas as pd

from .. import fmt as F
from ..context import ReportContext
from ..data import Unavailable
from ..fmt import DASH, Cell, fmt_int, fmt_num, fmt_p, para, table
from ..labels import (ANALYSES, BIOMARKER_UNITS, DX_LABELS, comparison_text, diagnoses_text, endpoint_label,
                      endpoint_order, order, study_diagnoses, timepoints, tp_key, tp_label)


def _rates(c: ReportContext) -> pd.DataFrame:
    r = c.wh.get("endpoint_rates", ["diagnosis", "timepoint", "endpoint", "analysis", "n", "n_total", "pct",
                                    "ci_low", "ci_high"])
    r["N"] = r["n_total"]  # figure code of either vintage (r.N / r.n_total)
    return r


def _same_analyses(r: pd.DataFrame, ep: str) -> bool:
    s = r[r["endpoint"] == ep]
    a = s[s["analysis"] == "complete_case"].set_index(["diagnosis", "timepoint"])[["n", "n_total"]]
    b = s[s["analysis"] == "nri"].set_index(["diagnosis", "timepoint"])[["n", "n_total"]]
    return len(a) > 0 and a.sort_index().equals(b.sort_index())


def _endpoint_figures(c: ReportContext, r: pd.DataFrame, ep: str) -> str:
    label = endpoint_label(ep, c.settings)
    analyses = [a for a in ANALYSES if (r[(r["endpoint"] == ep)]["analysis"] == a).any()]
    same = "nri" in analyses and _same_analyses(r, ep)
    figs = []
    for a in analyses:
        if a == "nri" and same:
            c.nri_same.append(label)
            continue
        from ibd_pipeline.stats.figures import endpoint_plot

        tps = timepoints(c.settings)
        dxs = study_diagnoses(c.settings)
        figs.append(c.figure(f"endpoint_{ep}_{a}", endpoint_plot, (c.by_study_diagnosis(r[r["endpoint"] == ep]), ep, a),
                             {"diagnoses": tuple(dxs), "title": f"{label} \u2014 {ANALYSES[a]}",
                              "timepoint_order": tps, "timepoint_labels": {t: tp_label(t) for t in tps}},
                             alt=f"{label}, {ANALYSES[a]}",
                             caption=f"{label}: % of patients (n/N) with 95% Wilson CI, {ANALYSES[a].lower()}"))
    return "".join(figs)


def _rates_table(c: ReportContext, r: pd.DataFrame, analysis: str) -> str:
    vs = comparison_text(c.settings)  # the test between the study's two diagnoses, if it has two
    comp = c.wh.try_get("endpoint_comparisons", ["timepoint", "endpoint", "analysis", "p_value"]) if vs else None
    sub = r[r["analysis"] == analysis]
    if sub.empty:
        raise Unavailable(f"no {analysis} rates")
    if analysis == "nri":  # endpoints where NRI equals complete case are stated once, not repeated
        sub = sub[[not _same_analyses(r, ep) for ep in sub["endpoint"]]]
        if sub.empty:
            return para("Every NRI rate equals its complete-case rate (no result was 'not evaluable'); the "
                        "complete-case table above applies to both analyses.", "note")
    rows = []
    for ep in order(sub["endpoint"], endpoint_order(c.settings)):
        e = sub[sub["endpoint"] == ep]
        first = True
        for tp in sorted(e["timepoint"].unique(), key=lambda t: tp_key(t, c.settings)):
            cells = [Cell(endpoint_label(ep, c.settings) if first else "", cls="lbl"), tp_label(tp)]
            for dx in c.diagnoses:
                x = c.dx_rows(e[e["timepoint"] == tp], dx)
                cells.append(DASH if x.empty else F.fmt_rate_cell(*x.iloc[0][["n", "n_total", "pct", "ci_low", "ci_high"]]))
            if vs:
                p = test = DASH
                if comp is not None:
                    y = comp[(comp["endpoint"] == ep) & (comp["timepoint"] == tp) & (comp["analysis"] == analysis)]
                    if len(y):
                        p, test = fmt_p(y.iloc[0]["p_value"]), str(y.iloc[0].get("test", DASH))
                cells += [p, test]
            rows.append({"cls": "first" if first else "sub", "cells": cells})
            first = False
    notes = ["n/N (%; 95% Wilson CI)."]
    if vs and comp is None:
        notes.append(f"{vs} tests not available: table analytics.endpoint_comparisons not found or empty.")
    return table(["Endpoint", "Time point", *_dx_headers(c), *([f"{vs} p", "Test"] if vs else [])], rows,
                 caption=f"Endpoint rates \u2014 {ANALYSES[analysis]}", notes=notes)


def _dx_headers(c: ReportContext) -> list[str]:
    return [DX_LABELS.get(dx, dx) for dx in c.diagnoses]


def _cochran_table(c: ReportContext) -> str:
    q = c.wh.get("cochran_q", ["diagnosis", "endpoint", "analysis", "q", "df", "p", "n_patients"])
    rows = []
    for ep in order(q["endpoint"], endpoint_order(c.settings)):
        for a in order(q.loc[q["endpoint"] == ep, "analysis"], list(ANALYSES)):
            cells = [Cell(endpoint_label(ep, c.settings), cls="lbl"), ANALYSES.get(a, a)]
            for dx in c.diagnoses:
                x = c.dx_rows(q[(q["endpoint"] == ep) & (q["analysis"] == a)], dx)
                if x.empty:
                    cells.append(DASH)
                    continue
                x = x.iloc[0]
                if F.missing(x["q"]):
                    note = x.get("note")
                    cells.append(f"{'not computed' if F.missing(note) else note} (n = {fmt_int(x['n_patients'])})")
                else:
                    cells.append(f"Q = {fmt_num(x['q'], 2)}, df {fmt_int(x['df'])}, p = {fmt_p(x['p'])} "
                                 f"(n = {fmt_int(x['n_patients'])})")
            rows.append(cells)
    tps = q["timepoints"].dropna().astype(str).iloc[0] if "timepoints" in q and q["timepoints"].notna().any() else ""
    return table(["Endpoint", "Analysis", *_dx_headers(c)], rows,
                 caption=f"Change across time points: Cochran's Q ({tps.replace(',', ', ')}) on patients with "
                         "every time point")


def _definitions(c: ReportContext) -> str:
    """The endpoint rules in words, written from the settings (endpoints/definitions.py)."""
    from ibd_pipeline.endpoints.definitions import endpoint_definitions, missing_data_text

    defs = endpoint_definitions(c.settings, BIOMARKER_UNITS)
    parts = []
    for ep in dict.fromkeys(d.endpoint for d in defs):
        mine = [d for d in defs if d.endpoint == ep]
        if mine[0].kind == "biomarker":
            continue  # its label carries its rule (labels.endpoint_label)
        rule = "; ".join(f"{d.diagnosis}: {d.text}" if len(mine) > 1 else d.text for d in mine)
        parts.append(f"{endpoint_label(ep, c.settings)} ({rule})")
    bio = [endpoint_label(d.endpoint, c.settings) for d in defs if d.kind == "biomarker"]
    text = "Endpoints: " + "; ".join(parts) + "." if parts else ""
    if bio:
        text += " Biomarker endpoints: " + "; ".join(bio) + "."
    return para(text.strip() + " " + missing_data_text(c.settings, lambda n: endpoint_label(n, c.settings)))


def build(c: ReportContext) -> str:
    out = []
    out.append(c.part(_definitions, c))
    try:
        r = _rates(c)
    except Unavailable as e:
        out.append(c.na(str(e)))
        r = None
    if r is not None:
        c.nri_same = []
        figs = [c.part(_endpoint_figures, c, r, ep) for ep in order(r["endpoint"], endpoint_order(c.settings))]
        dxs = study_diagnoses(c.settings)
        out.append(F.heading(3, "Rates over time" + (f", {diagnoses_text(c.settings)}" if len(dxs) > 1 else "")))
        out.append('<div class="grid">' + "".join(figs) + "</div>")
        if c.nri_same:
            out.append(para("Non-responder imputation gives exactly the complete-case n/N at every time point for: "
                            + "; ".join(c.nri_same) + " (no result was 'not evaluable'), so their NRI figures and "
                            "NRI table rows are not repeated: read the complete-case ones.", "note"))
        vs = comparison_text(c.settings)
        out.append(F.heading(3, f"Rates and {vs} comparisons" if vs else "Rates"))
        for a in ANALYSES:
            out.append(c.part(_rates_table, c, r, a))
    out.append(F.heading(3, "Cochran's Q across time points"))
    out.append(c.part(_cochran_table, c))
    return "\n".join(out)
