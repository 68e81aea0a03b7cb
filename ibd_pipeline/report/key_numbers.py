"""The report's key numbers (returned to the caller and shown in the box at the top)."""

from __future__ import annotations

import math

from . import fmt as F
from .context import ReportContext
from .fmt import DASH
from .labels import DX_LABELS, diagnosis_labels, endpoint_label, study_diagnoses, tp_label


def key_numbers(c: ReportContext) -> dict:
    """The headline numbers of the built report (flow, the primary outcome of
    ``statistics.predictor_outcome``, AUC, persistence at the last of
    ``persistence.km_months``, discontinuations), JSON-friendly: a missing table leaves
    its numbers out. Keys name the outcome (``<endpoint>_<timepoint>_<dx>``) and the month
    (``km_<m>m_persistence_pct``)."""
    k: dict = {}
    wh = c.wh
    f = wh.try_get("patient_flow", ["step", "reason", "center", "n"])
    if f is not None:
        a = f[f["center"].astype(str) == "all"]

        def n(step, reason=None):
            s = a[(a["step"] == step) & (a["reason"].isna() if reason is None else a["reason"] == reason)]
            return int(s["n"].sum()) if len(s) else None

        k.update(screened=n("screened"), excluded=n("excluded"), included=n("included"))
        k.update({f"included_{dx.lower()}": n("included_by_diagnosis", dx) for dx in study_diagnoses(c.settings)})
    r = wh.try_get("endpoint_rates", ["diagnosis", "timepoint", "endpoint", "analysis", "n", "n_total", "pct"])
    if r is not None:
        po = c.settings["statistics"]["predictor_outcome"]
        ep, tp = po["endpoint"], po["timepoint"]
        for dx in c.diagnoses:
            x = c.dx_rows(r[(r["endpoint"] == ep) & (r["timepoint"] == tp) & (r["analysis"] == po["analysis"])], dx)
            if len(x):
                k[f"{ep}_{tp}_{dx.lower()}_pct"] = round(F.num(x.iloc[0]["pct"]), 1)
                k[f"{ep}_{tp}_{dx.lower()}"] = f"{int(x.iloc[0]['n'])}/{int(x.iloc[0]['n_total'])}"
    auc = wh.try_get("model_auc", ["auc"])
    if auc is not None:
        a = auc.iloc[0]
        k["auc"] = round(F.num(a["auc"]), 3)
        for col in ("ci_low", "ci_high", "auc_optimism_corrected"):
            if col in auc:
                k[f"auc_{col}" if col != "auc_optimism_corrected" else col] = round(F.num(a[col]), 3)
    km = wh.try_get("km_estimates", ["group_var", "month", "survival"])
    if km is not None:
        month = _last_month(c.settings)
        x = km[(km["group_var"] == "overall") & (km["month"] == month)]
        if len(x):
            k[f"km_{month:g}m_persistence_pct"] = round(100 * F.num(x.iloc[0]["survival"]), 1)
            if "ci_low" in x:
                k[f"km_{month:g}m_persistence_ci"] = (f"{100 * F.num(x.iloc[0]['ci_low']):.1f}-"
                                                     f"{100 * F.num(x.iloc[0]['ci_high']):.1f}")
    dr = wh.try_get("discontinuation_rates", ["group_var", "rate_per_100py", "events"])
    if dr is not None:
        x = dr[dr["group_var"] == "overall"]
        if len(x):
            k["discontinuations"] = int(x.iloc[0]["events"])
            k["discontinuation_per_100py"] = round(F.num(x.iloc[0]["rate_per_100py"]), 1)
    # JSON-friendly (no NaN)
    return {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in k.items()}


def _last_month(settings: dict) -> float:
    return float(max(settings["persistence"]["km_months"]))


def key_items(k: dict, settings: dict) -> list[tuple[str, str]]:
    """The (label, value) pairs of the key-numbers box at the top of the page (the
    template escapes them); a number that is not available is left out. The outcome and
    the month are the settings' (``statistics.predictor_outcome``, ``persistence.km_months``)."""
    items: list[tuple[str, str]] = []

    def add(lbl, val):
        if val is not None:
            items.append((lbl, str(val)))

    add("Screened", k.get("screened"))
    dxs = study_diagnoses(settings)
    if len(dxs) > 1:
        add(f"Included ({' / '.join(diagnosis_labels(settings))})", None if k.get("included") is None else
            f"{k['included']} ({' / '.join(str(k.get(f'included_{dx.lower()}')) for dx in dxs)})")
    else:
        add(f"Included ({DX_LABELS.get(dxs[0], dxs[0])})", k.get("included"))
    po = settings["statistics"]["predictor_outcome"]
    ep, tp = po["endpoint"], po["timepoint"]
    what = f"{endpoint_label(ep, settings)}, {tp_label(tp).lower()}"
    for dx in dxs:
        v = k.get(f"{ep}_{tp}_{dx.lower()}")
        if v:
            add(f"{what}, {DX_LABELS.get(dx, dx)}", f"{v} ({k.get(f'{ep}_{tp}_{dx.lower()}_pct')}%)")
    month = _last_month(settings)
    if k.get(f"km_{month:g}m_persistence_pct") is not None:
        add(f"On UPA at {month:g} months (KM)", f"{k[f'km_{month:g}m_persistence_pct']}%")
    if k.get("auc") is not None:
        add("Model AUC, apparent", k["auc"])
        add("Model AUC, optimism-corrected (bootstrap)", k.get("auc_optimism_corrected", DASH))
    if k.get("published_compared"):
        add("Published quantities matched", f"{k['published_compared'] - k.get('published_mismatches', 0)} / {k['published_compared']}")
    return items
