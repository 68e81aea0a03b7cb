"""Published vs derived: every quantity the published multicenter study reported that
the pipeline also derives (flow counts, baseline counts, endpoint and biomarker n/N,
safety counts, discontinuations), side by side with a match flag.

The published figures are the project's one copy (``published_figures.yaml`` beside
``study.yaml``, read by :func:`ibd_pipeline.config.load_published`), so the product never
reads the study team's folders at run time.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from ..config import load_published
from ..stats.settings import BASELINE
from .data import Unavailable
from .fmt import fmt_p, fmt_ratio, leading_int, missing

COMPARISON_COLUMNS = ["domain", "quantity", "diagnosis", "timepoint", "published", "derived", "match", "note"]
# the diagnosis keys of the published-figures file (a baseline entry {UC: n, CD: n, overall: n}),
# its vocabulary - not the study's diagnoses (labels.study_diagnoses)
DIAGNOSES = ("UC", "CD", "overall")
# published baseline keys whose Table 1 variable has another name
BASELINE_ALIASES = {"ibd_surgery_history": "surgery_history", "cd_perianal": "perianal", "age_years": "age"}
# AE terms (schemas/crf.yaml ae_terms) counted as "thromboembolic or malignant"
THROMBO_MALIGNANT_TERMS = ("vte", "mace", "malignancy", "nmsc")
OTHER = "other"


Getter = Callable[[str], pd.DataFrame]


def _row(domain, quantity, dx, tp, published, derived, match, note=""):
    return {"domain": domain, "quantity": quantity, "diagnosis": dx, "timepoint": tp,
            "published": published, "derived": derived, "match": match, "note": note}


def _cmp(a, b):
    if a is None or b is None or missing(a) or missing(b):
        return None
    return bool(a == b)


# ------------------------------------------------------------------ flow
def _flow_rows(pub: dict, get: Getter) -> list[dict]:
    rows = []
    try:
        f = get("patient_flow")
        f = f[f["center"].astype(str) == "all"]
    except Unavailable as e:
        return [_row("flow", "patient flow", "overall", None, None, None, None, f"not available: {e}")]

    def n(step, reason=None):
        sel = f[(f["step"] == step) & (f["reason"].isna() if reason is None else f["reason"] == reason)]
        return int(sel["n"].sum()) if len(sel) else None

    def add(q, p, d, note=""):
        if p is not None:
            rows.append(_row("flow", q, "overall", None, p, d, _cmp(p, d), note))

    add("screened", pub.get("screened"), n("screened"))
    excluded = pub.get("excluded") or {}
    for reason, p in excluded.items():
        if reason == OTHER:
            if (f["step"] == "other_reason").any():
                d = n("other_reason", OTHER)
                pts = n("excluded_by_reason", OTHER)
                note = (f"derived = named 'other' reasons among the {pts} patients excluded as 'other' "
                        "(a patient can have more than one); the published 8+1+23+2+10 = 44 exceeds "
                        "122-80 = 42 for the same reason")
            else:
                d = n("excluded_by_reason", OTHER)
                note = ("derived = patients excluded as 'other' (the flow table does not count the "
                        "named reasons per patient); the published 10 counts named reasons, a patient "
                        "can have more than one (8+1+23+2+10 = 44 > 122-80 = 42)")
            add("excluded: other", p, d, note)
        else:
            add(f"excluded: {reason}", p, n("excluded_by_reason", reason))
    if pub.get("screened") is not None and pub.get("included") is not None:
        add("excluded (total, implied screened - included)", pub["screened"] - pub["included"], n("excluded"))
    add("included", pub.get("included"), n("included"))
    for dx, p in (pub.get("by_diagnosis") or {}).items():
        rows.append(_row("flow", "included", dx, None, p, n("included_by_diagnosis", dx),
                         _cmp(p, n("included_by_diagnosis", dx))))
    return rows


# ------------------------------------------------------------------ baseline
def _var_diagnoses(settings: dict) -> dict[str, list[str]]:
    out = {}
    for v in (settings.get("statistics") or {}).get("table1_variables") or []:
        if isinstance(v, dict) and v.get("diagnoses"):
            out[v["name"]] = list(v["diagnoses"])
    return out


class _Baseline:
    """Counts n of patients per Table 1 variable/level/diagnosis: from analytics.table1
    ('48 (60.0%)' -> 48), else from analytics.baseline_covariates."""

    def __init__(self, get: Getter):
        self.t1 = self.cov = None
        self.reason = ""
        try:
            self.t1 = get("table1")
        except Unavailable as e:
            self.reason = str(e)
        try:
            self.cov = get("baseline_covariates")
        except Unavailable as e:
            self.reason = (self.reason + "; " if self.reason else "") + str(e)

    def count(self, var: str, level: str | None, dx: str):
        if self.t1 is not None and var in set(self.t1["variable"]):
            rows = self.t1[self.t1["variable"] == var]
            if level is None:
                rows = rows[rows["level"].astype(str).str.lower().isin(["yes", "true", "1"])]
            else:
                rows = rows[rows["level"].astype(str) == str(level)]
            col = dx if dx in rows.columns else None
            if col is None or rows.empty:
                return 0 if col is not None and level is not None else None
            return leading_int(rows.iloc[0][col])
        if self.cov is not None and var in self.cov.columns:
            c = self.cov if dx == "overall" else self.cov[self.cov["diagnosis"] == dx]
            s = c[var]
            if level is None:
                return int(s.fillna(False).astype(bool).sum())
            return int((s.astype(str) == str(level)).sum())
        return None

    def summary(self, var: str, dx: str):
        if self.t1 is None or var not in set(self.t1["variable"]) or dx not in self.t1.columns:
            return None
        rows = self.t1[(self.t1["variable"] == var) & ~self.t1["level"].astype(str).isin(["(missing)"])]
        return None if rows.empty else str(rows.iloc[0][dx])


def _baseline_rows(pub: dict, get: Getter, settings: dict) -> list[dict]:
    b = _Baseline(get)
    if b.t1 is None and b.cov is None:
        return [_row("baseline", "baseline characteristics", "overall", None, None, None, None,
                     f"not available: {b.reason}")]
    var_dx = _var_diagnoses(settings)
    rows = []

    def one(quantity, var, level, dx, p, note=""):
        d = b.count(var, level, dx)
        rows.append(_row("baseline", quantity, dx, None, p, d, _cmp(p, d),
                         note or ("" if d is not None else f"{var} is not derived")))

    rows += _lab_mean_rows(pub.get("baseline_means") or {}, get)
    for key, val in pub.items():
        if key == "baseline_means":
            continue
        var = BASELINE_ALIASES.get(key, key)
        if isinstance(val, str) or (isinstance(val, dict) and val and all(isinstance(v, str) for v in val.values())):
            # a summary statistic (median [IQR], mean (SD)): shown, not compared
            items = val.items() if isinstance(val, dict) else [(var_dx.get(var, ["overall"])[0], val)]
            for dx, text in items:
                rows.append(_row("baseline", f"{key} (summary)", dx, None, text, b.summary(var, dx), None,
                                 "summary statistic: shown, not compared"))
            continue
        if isinstance(val, int):
            dxs = var_dx.get(var, ["overall"])
            one(key, var, None, dxs[0] if len(dxs) == 1 else "overall", val)
            continue
        if isinstance(val, dict):
            if set(val) <= set(DIAGNOSES):
                for dx, p in val.items():
                    one(key, var, None, dx, p)
            elif all(isinstance(v, dict) for v in val.values()):
                # concomitant_with_upa: {drug: {dx: n}} -> concomitant_<drug>
                for sub, byx in val.items():
                    v2 = f"concomitant_{sub}" if key.startswith("concomitant") else f"{var}_{sub}"
                    for dx, p in byx.items():
                        one(f"{key}: {sub}", v2, None, dx, p)
            else:
                # levels of a categorical variable, for the diagnoses the settings limit it to
                dxs = var_dx.get(var, ["overall"])
                dx = dxs[0] if len(dxs) == 1 else "overall"
                for level, p in val.items():
                    one(f"{key} = {level}", var, level, dx, p)
    return rows


# ------------------------------------------------------------------ rates
def _rate_rows(domain: str, pub: dict, get: Getter, timepoints: list[str]) -> list[dict]:
    try:
        r = get("endpoint_rates")
        r = r[r["analysis"] == "complete_case"]
    except Unavailable as e:
        return [_row(domain, domain, "overall", None, None, None, None, f"not available: {e}")]
    rows = []
    for endpoint, by_dx in pub.items():
        for dx, series in (by_dx or {}).items():
            for i, pair in enumerate(series or []):
                tp = timepoints[i] if i < len(timepoints) else f"#{i + 1}"
                p = f"{pair[0]}/{pair[1]}"
                sel = r[(r["endpoint"] == endpoint) & (r["diagnosis"] == dx) & (r["timepoint"] == tp)]
                if sel.empty:
                    rows.append(_row(domain, endpoint, dx, tp, p, None, None, "not derived"))
                    continue
                n, N = int(sel.iloc[0]["n"]), int(sel.iloc[0]["n_total"])
                rows.append(_row(domain, endpoint, dx, tp, p, f"{n}/{N}",
                                 bool(n == pair[0] and N == pair[1]), "complete case"))
    return rows


# ------------------------------------------------------------------ safety
def _safety_rows(pub: dict, get: Getter) -> list[dict]:
    rows = []
    ae = ae_reason = None
    try:
        ae = get("ae_summary")
    except Unavailable as e:
        ae_reason = str(e)

    def ae_count(term, dx):
        if ae is None:
            return None
        sel = ae[(ae["term"] == term) & (ae["diagnosis"] == dx)]
        if sel.empty:
            # every observed term appears for every diagnosis: an absent term was never observed
            return 0 if (ae["diagnosis"] == dx).any() else None
        return int(sel.iloc[0]["n_patients"])

    def add(q, dx, p, d, note=""):
        if d is None and not note:
            note = f"not available: {ae_reason}" if ae_reason else "not derived"
        rows.append(_row("safety", q, dx, None, p, d, _cmp(p, d), note))

    for dx, p in (pub.get("patients_with_any_ae") or {}).items():
        add("patients with any AE", dx, p, ae_count("any", dx))
    for term, by_dx in (pub.get("by_term") or {}).items():
        for dx, p in by_dx.items():
            add(f"patients with {term}", dx, p, ae_count(term, dx))
    if "thromboembolic_or_malignant" in pub:
        d, note = None, ""
        try:
            events = get("adverse_events")
            d = int(events.loc[events["term"].isin(THROMBO_MALIGNANT_TERMS), "patient_id"].nunique())
            note = f"patients with an AE term in {', '.join(THROMBO_MALIGNANT_TERMS)}"
        except Unavailable:
            if ae is not None:
                sel = ae[(ae["diagnosis"] == "overall") & ae["term"].isin(THROMBO_MALIGNANT_TERMS)]
                d = int(sel["n_patients"].sum())
                note = "sum over terms (a patient with two such terms counts twice)"
        add("thromboembolic or malignant events", "overall", pub["thromboembolic_or_malignant"], d, note)
    disc = pub.get("discontinued") or {}
    if disc:
        counts, note = None, ""
        try:
            pers = get("persistence")
            counts = {dx: int(pers.loc[pers["diagnosis"] == dx, "event"].fillna(0).astype(int).sum()) for dx in disc}
            note = "UPA stopped (persistence events)"
        except Unavailable as e:
            try:
                dr = get("discontinuation_rates")
                dr = dr[dr["group_var"] == "diagnosis"]
                counts = {dx: (int(dr.loc[dr["group"] == dx, "events"].iloc[0]) if (dr["group"] == dx).any() else None)
                          for dx in disc}
                note = "discontinuation_rates events"
            except Unavailable:
                note = f"not available: {e}"
        for dx, p in disc.items():
            d = counts.get(dx) if counts else None
            add("discontinued", dx, p, d, note)
    return rows


def _lab_mean_rows(pub: dict, get: Getter) -> list[dict]:
    """Published baseline lab means (key TEST_unit) vs the mean baseline value of the
    included patients (analytics.biomarkers, time point baseline): shown with the
    relative difference, not compared (a mean of 80 patients is not reproduced exactly)."""
    if not pub:
        return []
    try:
        b = get("biomarkers")
        b = b[b["timepoint"] == BASELINE]
    except Unavailable as e:
        return [_row("lab means", "baseline lab means", "overall", BASELINE, None, None, None, f"not available: {e}")]
    rows = []
    for key, p in pub.items():
        test = key.split("_")[0]
        v = pd.to_numeric(b.loc[b["test"] == test, "value"], errors="coerce").dropna()
        if v.empty:
            rows.append(_row("lab means", f"mean {key}", "overall", BASELINE, p, None, None, f"{test} not derived"))
            continue
        d = float(v.mean())
        rel = 100.0 * (d - float(p)) / float(p)
        rows.append(_row("lab means", f"mean {key}", "overall", BASELINE, p, round(d, 1), None,
                         f"difference {rel:+.0f}% (n = {len(v)}); a mean: shown, not compared"))
    return rows


def _direction(ratio) -> str | None:
    r = pd.to_numeric(pd.Series([ratio]), errors="coerce").iloc[0]
    if pd.isna(r) or r <= 0 or r == float("inf"):
        return None
    return "higher odds" if r > 1 else "lower odds" if r < 1 else "no effect"


def _predictor_rows(pub: dict, get: Getter) -> list[dict]:
    """Published Table 2 predictors vs the derived model: the estimate, whether the
    covariate was selected (in the multivariable model, or by the elastic net / Boruta)
    and whether its direction agrees. With about 80 patients the effects are recovered
    only roughly, so predictors are compared by direction, not by value."""
    try:
        m = get("logistic_model")
    except Unavailable:
        m = None
    try:
        sel = get("predictor_selection")
    except Unavailable:
        sel = None
    rows = []
    for key, v in pub.items():
        var = v.get("covariate", key)  # the pipeline's name of the published variable
        p = f"OR {v.get('or')} ({v.get('ci', [None, None])[0]}-{v.get('ci', [None, None])[1]}), p {v.get('p')}"
        d, derived_dir = None, None
        in_model = m is not None and var in set(m["variable"])
        if in_model:
            r = m[m["variable"] == var].iloc[0]
            d = f"OR {fmt_ratio(r['odds_ratio'])} ({fmt_ratio(r['ci_low'])}-{fmt_ratio(r['ci_high'])}), p {fmt_p(r['p_value'])}"
            derived_dir = _direction(r["odds_ratio"])
        picked = []
        if sel is not None and var in set(sel["variable"]):
            s_ = sel[sel["variable"] == var].iloc[0]
            if "selected_by_enet" in sel and bool(s_["selected_by_enet"]) is True:
                picked.append("elastic net")
            if "boruta_decision" in sel and str(s_["boruta_decision"]) == "confirmed":
                picked.append("Boruta")
            if derived_dir is None and "enet_coef" in sel and not missing(s_["enet_coef"]) and float(s_["enet_coef"]) != 0:
                derived_dir = "higher odds" if float(s_["enet_coef"]) > 0 else "lower odds"
        pub_dir = _direction(v.get("or"))
        selected = "selected by " + " and ".join(picked) if picked else ("in the model" if in_model else "not selected")
        agree = ("direction agrees" if derived_dir == pub_dir else "direction differs") if derived_dir else \
            "direction not estimable"
        rows.append(_row("predictors", key, "overall", None, p,
                         f"{d or 'not in the derived model'}; {selected}",
                         None, f"published {pub_dir}; derived {derived_dir or DASH_TEXT}: {agree} "
                               "(compared by direction only: n is small)"))
    return rows


DASH_TEXT = "\u2014"


def compare_published(published: dict, get: Getter, settings: dict | None = None) -> pd.DataFrame:
    """One row per published quantity the pipeline derives: domain, quantity, diagnosis,
    timepoint, published, derived, match (True / False / None = not compared), note.
    ``get(name)`` returns an analytics table or raises :class:`Unavailable`."""
    settings = settings or {}
    tps = settings.get("timepoints") or {}
    # the published series are per time point in the settings' order (timepoints.clinical, .labs)
    clinical, labs = list(tps.get("clinical") or []), list(tps.get("labs") or [])
    rows: list[dict] = []
    if published.get("flow"):
        rows += _flow_rows(published["flow"], get)
    if published.get("baseline"):
        rows += _baseline_rows(published["baseline"], get, settings)
    if published.get("endpoints"):
        rows += _rate_rows("endpoints", published["endpoints"], get, clinical)
    if published.get("biomarkers"):
        rows += _rate_rows("biomarkers", published["biomarkers"], get, labs)
    if published.get("safety"):
        rows += _safety_rows(published["safety"], get)
    if published.get("predictors"):
        rows += _predictor_rows(published["predictors"], get)
    out = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    return out
