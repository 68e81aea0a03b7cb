"""Biomarker trajectories: figures and the table per time point."""

from __future__ import annotations

import pandas as pd

from ..context import ReportContext
from ..fmt import DASH, EN, Cell, fmt_int, fmt_num, fmt_p, table
from ibd_pipeline.stats.settings import BASELINE

from ..labels import (BIOMARKER_LABELS, BIOMARKER_ORDER, DX_LABELS, diagnoses_text, order, study_diagnoses, timepoints,
                      tp_key, tp_label)


def _units(c: ReportContext) -> dict:
    b = c.wh.try_get("biomarkers", ["test", "unit"])
    if b is None:
        return {}
    return b.dropna(subset=["unit"]).groupby("test")["unit"].first().to_dict()


def _biomarker_table(c: ReportContext, s: pd.DataFrame, units: dict) -> str:
    tests = c.wh.try_get("biomarker_tests", ["diagnosis", "test", "comparison", "p_value"])
    rows = []
    for test in order(s["test"], BIOMARKER_ORDER):
        g = s[s["test"] == test]
        name = f"{BIOMARKER_LABELS.get(test, test)} ({units[test]})" if units.get(test) else BIOMARKER_LABELS.get(test, test)
        first = True
        for tp in sorted(g["timepoint"].unique(), key=lambda t: tp_key(t, c.settings)):
            cells = [Cell(name if first else "", cls="lbl"), tp_label(tp)]
            for dx in c.diagnoses:
                x = c.dx_rows(g[g["timepoint"] == tp], dx)
                cells.append(DASH if x.empty else
                             f"{fmt_num(x.iloc[0]['median'], 2)} [{fmt_num(x.iloc[0]['q1'], 2)}{EN}"
                             f"{fmt_num(x.iloc[0]['q3'], 2)}] (n = {fmt_int(x.iloc[0]['n'])})")
                p = DASH
                if tests is not None and tp != BASELINE:
                    y = c.dx_rows(tests[(tests["test"] == test) & (tests["comparison"] == f"{BASELINE}_vs_{tp}")], dx)
                    if len(y):
                        p = fmt_p(y.iloc[0]["p_value"])
                cells.append(p)
            rows.append({"cls": "first" if first else "sub", "cells": cells})
            first = False
        if tests is not None:
            cells = [Cell("", cls="lbl"), Cell("Across time points (Kruskal-Wallis)", cls="em")]
            for dx in c.diagnoses:
                y = c.dx_rows(tests[(tests["test"] == test) & (tests["comparison"] == "across_timepoints")], dx)
                cells += [DASH, fmt_p(y.iloc[0]["p_value"]) if len(y) else DASH]
            rows.append({"cls": "sub", "cells": cells})
    hdr = ["Test", "Time point"]
    for dx in c.diagnoses:
        hdr += [f"{DX_LABELS[dx]} median [IQR] (n)", "p vs baseline"]
    notes = ["p vs baseline: Wilcoxon signed-rank on patients with both values; across time points: Kruskal-Wallis "
             "(as published)."]
    if tests is None:
        notes.append("Tests not available: table analytics.biomarker_tests not found or empty.")
    return table(hdr, rows, caption="Biomarkers per time point", notes=notes)


def build(c: ReportContext) -> str:
    s = c.wh.get("biomarker_summary", ["diagnosis", "test", "timepoint", "n", "median", "q1", "q3"])
    units = _units(c)

    def figs():
        from ibd_pipeline.stats.figures import biomarker_trajectory_plot

        out = []
        tps = timepoints(c.settings)
        dxs = study_diagnoses(c.settings)
        for test in order(s["test"], BIOMARKER_ORDER):
            lab = BIOMARKER_LABELS.get(test, test)
            out.append(c.figure(f"biomarker_{test}", biomarker_trajectory_plot,
                                (c.by_study_diagnosis(s[s["test"] == test]), test),
                                {"diagnoses": tuple(dxs), "unit": f"({units[test]})" if units.get(test) else "",
                                 "title": f"{lab} over time", "timepoint_order": tps,
                                 "timepoint_labels": {t: tp_label(t) for t in tps}},
                                alt=f"{lab} median and IQR per time point",
                                caption=f"{lab}: median [IQR] per time point, {diagnoses_text(c.settings)}", tight=False))
        return '<div class="grid">' + "".join(out) + "</div>"

    return c.part(figs) + c.part(_biomarker_table, c, s, units)
