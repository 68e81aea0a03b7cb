"""Table 1: baseline characteristics by UC, CD and overall."""

from __future__ import annotations

from .. import fmt as F
from ..context import ReportContext
from ..fmt import DASH, Cell, fmt_p, table
from ..labels import DIAGNOSES, DX_LABELS, var_label


def build(c: ReportContext) -> str:
    t = c.wh.get("table1", ["variable", "level", "overall", "UC", "CD", "p_value", "test"])
    ns = t[t["variable"] == "N"]
    hdr = {dx: (f"{DX_LABELS[dx]} (N = {ns.iloc[0][dx]})" if len(ns) else DX_LABELS[dx]) for dx in DIAGNOSES}
    rows, prev = [], None
    for r in t[t["variable"] != "N"].itertuples(index=False):
        first = r.variable != prev
        prev = r.variable
        level = "" if F.missing(r.level) else str(r.level)
        lvl = "" if level.lower() in ("yes", "none", "") else level
        rows.append({"cls": "first" if first else "sub", "cells": [
            Cell(var_label(r.variable, c.settings) if first else "", cls="lbl"), lvl,
            *[("" if F.missing(getattr(r, dx)) else str(getattr(r, dx))) for dx in ("overall", "UC", "CD")],
            fmt_p(r.p_value) if first else "", (str(r.test) if not F.missing(r.test) else DASH) if first else "",
        ]})
    st = c.settings["statistics"]
    normal = st.get("normal_variables") or []
    notes = [f"Continuous: median [IQR], Wilcoxon rank-sum"
             + (f" (mean \u00b1 SD with Welch's t for {', '.join(normal)})" if normal else "")
             + "; categorical: n (%) of non-missing values, Pearson chi-square without continuity correction, "
               f"or Fisher's exact when an expected count is below {st['fisher_expected_below']}. "
               "'(missing)' rows give the number of patients without a value. Variables limited to one "
               "diagnosis are not tested."]
    return table(["Characteristic", "Level", hdr["overall"], hdr["UC"], hdr["CD"], "p", "Test"], rows,
                 cls="data table1", notes=notes)
