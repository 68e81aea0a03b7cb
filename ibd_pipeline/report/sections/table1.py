"""Table 1: baseline characteristics overall and by diagnosis (labels.diagnosis_columns), with
the test between the two diagnoses of a study that has two."""

from __future__ import annotations

from .. import fmt as F
from ..context import ReportContext
from ..fmt import DASH, Cell, fmt_p, table
from ..labels import OVERALL, DX_LABELS, comparison_text, diagnosis_columns, var_label


def build(c: ReportContext) -> str:
    cols = diagnosis_columns(c.settings, overall_first=True)
    vs = comparison_text(c.settings)
    by_dx = [dx for dx in cols if dx != OVERALL]
    t = c.wh.get("table1", ["variable", "level", OVERALL, *(by_dx + ["p_value", "test"] if vs else [])])
    # a study of one diagnosis: its column is the table's own, else the "overall" one (the same patients)
    one = len(cols) == 1
    src = {dx: OVERALL if one and (dx not in t.columns or t[dx].isna().all()) else dx for dx in cols}
    ns = t[t["variable"] == "N"]
    hdr = {dx: (f"{DX_LABELS[dx]} (N = {ns.iloc[0][src[dx]]})" if len(ns) else DX_LABELS[dx]) for dx in cols}
    rows, prev = [], None
    for r in t[t["variable"] != "N"].itertuples(index=False):
        first = r.variable != prev
        prev = r.variable
        level = "" if F.missing(r.level) else str(r.level)
        lvl = "" if level.lower() in ("yes", "none", "") else level
        rows.append({"cls": "first" if first else "sub", "cells": [
            Cell(var_label(r.variable, c.settings) if first else "", cls="lbl"), lvl,
            *[("" if F.missing(getattr(r, src[dx])) else str(getattr(r, src[dx]))) for dx in cols],
            *([fmt_p(r.p_value) if first else "", (str(r.test) if not F.missing(r.test) else DASH) if first else ""]
              if vs else []),
        ]})
    st = c.settings["statistics"]
    normal = st.get("normal_variables") or []
    if vs:
        notes = [f"Continuous: median [IQR], Wilcoxon rank-sum"
                 + (f" (mean \u00b1 SD with Welch's t for {', '.join(normal)})" if normal else "")
                 + "; categorical: n (%) of non-missing values, Pearson chi-square without continuity correction, "
                   f"or Fisher's exact when an expected count is below {st['fisher_expected_below']}. "
                   "'(missing)' rows give the number of patients without a value. Variables limited to one "
                   "diagnosis are not tested."]
    else:  # one diagnosis: nothing to compare
        notes = ["Continuous: median [IQR]" + (f" (mean \u00b1 SD for {', '.join(normal)})" if normal else "")
                 + "; categorical: n (%) of non-missing values. '(missing)' rows give the number of patients "
                   "without a value."]
    return table(["Characteristic", "Level", *(hdr[dx] for dx in cols), *(["p", "Test"] if vs else [])], rows,
                 cls="data table1", notes=notes)
