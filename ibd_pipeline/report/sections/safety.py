"""Safety: exposure, events of special interest, adverse events by term."""

from __future__ import annotations

import pandas as pd

from .. import fmt as F
from ..context import ReportContext
from ..data import Unavailable
from ..fmt import DASH, EN, Cell, fmt_int, fmt_num, fmt_pct, para, table
from ..labels import OVERALL, DX_LABELS, ae_label


def _columns(c: ReportContext, t: pd.DataFrame) -> list[str]:
    """The diagnosis columns (labels.diagnosis_columns) the table has rows for."""
    return [dx for dx in c.diagnoses if not c.dx_rows(t, dx).empty]


def _ae_table(c: ReportContext, name: str, caption: str) -> str:
    t = c.wh.get(name, ["term", "diagnosis", "n_patients", "n_included", "n_events"])
    dxs = _columns(c, t)
    ns = {dx: c.dx_rows(t, dx)["n_included"].max() for dx in dxs}
    terms = list(dict.fromkeys(["any", *t["term"]]))  # the table's order: any, the CRF terms, others
    if "any" not in set(t["term"]):
        terms.remove("any")
    rows = []
    for term in terms:
        cells = [Cell(ae_label(term), cls="lbl")]
        for dx in dxs:
            x = c.dx_rows(t[t["term"] == term], dx)
            if x.empty:
                cells += [DASH, DASH, DASH]
                continue
            x = x.iloc[0]
            cells += [f"{fmt_int(x['n_patients'])} ({fmt_pct(x.get('pct_patients'))})", fmt_int(x["n_events"]),
                      F.fmt_est_ci(x.get("rate_per_100py"), x.get("rate_ci_low"), x.get("rate_ci_high"), lambda v: fmt_num(v, 1))]
        rows.append({"cls": "first" if term == "any" else "sub", "cells": cells})
    hdr1 = [Cell("", colspan=1)] + [Cell(f"{DX_LABELS.get(dx, dx)} (N = {fmt_int(ns[dx])})", colspan=3) for dx in dxs]
    hdr2 = ["Term"] + ["Patients n (%)", "Events", "Per 100 PY (95% CI)"] * len(dxs)
    return table([hdr1, hdr2], rows, caption=caption)


def _special_interest_table(c: ReportContext) -> str:
    """The JAK-inhibitor events of special interest of study.yaml safety.special_interest,
    each with its count even when no patient had one (0 is a result)."""
    spec = (c.settings.get("safety") or {}).get("special_interest") or []
    if not spec:
        raise Unavailable("no events of special interest in the settings (safety.special_interest)")
    t = c.wh.get("ae_summary", ["term", "diagnosis", "n_patients", "n_included", "n_events"])
    ser = c.wh.try_get("safety_serious", ["term", "diagnosis", "n_patients", "n_included", "n_events"])
    dxs = _columns(c, t)
    ns = {dx: c.dx_rows(t, dx)["n_included"].max() for dx in dxs}
    rows = []
    for item in spec:
        item = item if isinstance(item, dict) else {"name": item}
        term, serious = str(item["name"]), bool(item.get("serious"))
        src = t
        label = ae_label(term)
        if serious:
            label = f"Serious {label[0].lower()}{label[1:]}"
            if ser is None:
                rows.append([Cell(label, cls="lbl")] + [DASH] * (2 * len(dxs)))
                continue
            src = ser  # a serious table lists the terms with an event: an absent term had none
        cells = [Cell(label, cls="lbl")]
        for dx in dxs:
            x = c.dx_rows(src[src["term"] == term], dx)
            n_pat = int(x.iloc[0]["n_patients"]) if len(x) else 0
            n_ev = int(x.iloc[0]["n_events"]) if len(x) else 0
            cells += [f"{n_pat} ({fmt_pct(100.0 * n_pat / ns[dx] if ns[dx] else None)})", fmt_int(n_ev)]
        rows.append(cells)
    hdr1 = [Cell("", colspan=1)] + [Cell(f"{DX_LABELS.get(dx, dx)} (N = {fmt_int(ns[dx])})", colspan=2) for dx in dxs]
    hdr2 = ["Event"] + ["Patients n (%)", "Events"] * len(dxs)
    return table([hdr1, hdr2], rows, caption="Adverse events of special interest for JAK inhibitors",
                 notes=["Listed whether or not they occurred (settings safety.special_interest)."])


def _exposure(c: ReportContext) -> str:
    e = c.wh.get("exposure", ["diagnosis", "exposure_years"])
    rows = []
    for dx in c.diagnoses:
        g = e if dx == OVERALL else c.dx_rows(e, dx)
        if g.empty:
            continue
        yrs = pd.to_numeric(g["exposure_years"], errors="coerce")
        rows.append([DX_LABELS.get(dx, dx), fmt_int(len(g)), fmt_num(yrs.sum(), 1),
                     f"{fmt_num(yrs.median(), 2)} [{fmt_num(yrs.quantile(.25), 2)}{EN}{fmt_num(yrs.quantile(.75), 2)}]"])
    return table(["Diagnosis", "Patients", "Patient-years", "Exposure, years, median [IQR]"], rows,
                 caption="Exposure to upadacitinib")


def build(c: ReportContext) -> str:
    days = c.settings["safety"]["treatment_emergent_days_after_stop"]
    return "\n".join([
        para(f"Treatment-emergent adverse events (onset from day 0 to {days} days after the stop date): patients "
             "with at least one event per term (n, %), events, and events per 100 patient-years of exposure with "
             "exact Poisson 95% CIs."),
        c.part(_exposure, c),
        F.heading(3, "Adverse events of special interest"), c.part(_special_interest_table, c),
        F.heading(3, "Adverse events by term and diagnosis"), c.part(_ae_table, c, "ae_summary", "Adverse events by term"),
        F.heading(3, "Serious adverse events"), c.part(_ae_table, c, "safety_serious", "Serious adverse events"),
        F.heading(3, "Adverse events leading to discontinuation"),
        c.part(_ae_table, c, "safety_discontinuation", "Adverse events leading to discontinuation"),
    ])
