"""Predictors of steroid-free clinical remission at month 12 (pooled UC + CD).

1. **Elastic-net logistic regression** (scikit-learn ``LogisticRegressionCV``, saga
   solver, standardised features, stratified ``cv_folds``-fold CV with a fixed seed,
   log-loss scoring, a grid of C values x ``l1_ratios`` strictly between L2 and L1):
   variables with a non-zero coefficient at the CV-optimal (C, l1_ratio) are selected.
   (scikit-learn >= 1.8 deprecates ``penalty='elasticnet'``; an l1_ratio in (0, 1) with
   saga is the same elastic-net penalty.)
2. **Boruta** (``boruta.BorutaPy`` 0.4.3 around a seeded random forest): each variable
   confirmed / tentative / rejected. ``two_step=False`` gives the original Boruta test
   (Kursa & Rudnicki 2010): binomial test of the hit counts against shadow features,
   Bonferroni-corrected over the variables.
3. **Multivariable logistic model** (statsmodels ``Logit``) on the elastic-net
   selection (if that is empty: on the Boruta-confirmed variables; if that is empty
   too: no model, reported in ``note``), center as a fixed effect. When a center's
   outcome is constant (its dummy would predict perfectly: quasi-complete separation)
   or the fixed-effect fit does not converge, the model falls back to cluster-robust
   (CR1 sandwich) standard errors by center without center terms, with t(G-1)
   reference distribution for G centers (Cameron & Miller 2015), said in ``method`` and
   ``note`` - with three centers this is a weak fallback and the note says so.
   Binary covariates with an empty cell against the outcome are flagged.
4. **ROC / AUC**: apparent ROC of the final model, AUC with DeLong's 95% CI, and
   Harrell's bootstrap optimism-corrected AUC (``bootstrap`` resamples, seeded): in
   each resample the elastic net is refitted at the CV-optimal (C, l1_ratio) (the
   selection step is repeated, the CV tuning is not), the logistic model is refitted
   on its selection, and optimism = AUC(resample) - AUC(original data).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from ..forking import Forked, init_worker
from .order import stable_order

MODEL_COLUMNS = ["variable", "coef", "odds_ratio", "ci_low", "ci_high", "p_value", "selected_by_enet",
                 "boruta_decision", "n", "events", "method", "note"]
SELECTION_COLUMNS = ["variable", "enet_coef", "selected_by_enet", "boruta_decision", "boruta_rank"]
AUC_COLUMNS = ["auc", "ci_low", "ci_high", "ci_method", "optimism", "auc_optimism_corrected",
               "bootstrap_samples", "bootstrap_used", "n", "events"]
DEFAULT_L1_RATIOS = (0.1, 0.25, 0.5, 0.75, 0.9)


# --------------------------------------------------------------------- AUC
def delong_auc(y, score, alpha: float = 0.05) -> dict:
    """AUC with DeLong's (1988) variance (fast midrank form of Sun & Xu 2014) and a
    Wald CI clipped to [0, 1] (as pROC's ``ci.auc(method='delong')``)."""
    y = np.asarray(y).astype(int)
    s = np.asarray(score, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return {"auc": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    tx = stats.rankdata(pos)
    ty = stats.rankdata(neg)
    tz = stats.rankdata(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:m] - tx) / n          # per-positive structural components
    v01 = 1.0 - (tz[m:] - ty) / m    # per-negative structural components
    var = (np.var(v10, ddof=1) / m if m > 1 else 0.0) + (np.var(v01, ddof=1) / n if n > 1 else 0.0)
    se = float(np.sqrt(var))
    z = stats.norm.ppf(1 - alpha / 2)
    return {"auc": float(auc), "se": se, "ci_low": float(max(0.0, auc - z * se)),
            "ci_high": float(min(1.0, auc + z * se))}


# ----------------------------------------------------------------- helpers
def outcome_from_endpoints(endpoints: pd.DataFrame, endpoint: str = "sf_clinical_remission",
                           timepoint: str = "month12", analysis: str = "complete_case") -> pd.Series:
    """The 0/1 outcome per patient_id (complete_case: not-evaluable patients absent;
    nri: status_nri)."""
    sub = endpoints[(endpoints["endpoint"] == endpoint) & (endpoints["timepoint"] == timepoint)]
    col = "status" if analysis == "complete_case" else "status_nri"
    sub = sub[sub[col].isin(["achieved", "not_achieved"])]
    return pd.Series((sub[col] == "achieved").astype(int).to_numpy(), index=sub["patient_id"].to_numpy(),
                     name=f"{endpoint}_{timepoint}")


def _align_outcome(covariates: pd.DataFrame, outcome: pd.Series) -> pd.Series:
    if "patient_id" in covariates and len(set(outcome.index) & set(covariates["patient_id"])):
        return covariates["patient_id"].map(outcome)
    return outcome.reindex(covariates.index)


def _numeric(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        s = df[c]
        if str(s.dtype) in ("bool", "boolean"):
            s = s.astype("Float64")
        out[c] = pd.to_numeric(s, errors="coerce").astype(float)
    return out


def _binary_separation(X: pd.DataFrame, y: np.ndarray) -> list[str]:
    flagged = []
    for c in X.columns:
        vals = set(np.unique(X[c]))
        if vals <= {0.0, 1.0} and len(vals) == 2:
            tab = pd.crosstab(X[c], y)
            if tab.shape == (2, 2) and (tab.to_numpy() == 0).any():
                flagged.append(c)
    return flagged


def _fit_enet(Xs, y, cv, seed, l1_ratios, Cs, max_iter, workers=1):
    """The elastic-net CV; with ``workers`` > 1 its (fold, l1_ratio) paths run in that
    many processes (joblib, each path computed exactly as in-process)."""
    from contextlib import nullcontext

    import joblib

    par = (joblib.parallel_config(backend="multiprocessing", n_jobs=workers, initializer=init_worker)
           if workers > 1 else nullcontext())
    with warnings.catch_warnings(), par:
        warnings.simplefilter("ignore")
        m = LogisticRegressionCV(Cs=Cs, l1_ratios=list(l1_ratios), solver="saga", cv=cv,
                                 scoring="neg_log_loss", max_iter=max_iter, tol=1e-4,
                                 random_state=seed, use_legacy_attributes=False).fit(Xs, y)
    return m


def _enet_at(X, y, C, l1_ratio, seed, max_iter):
    Xs = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", max_iter=max_iter, tol=1e-4,
                               random_state=seed).fit(Xs, y)
    return np.abs(m.coef_[0]) > 1e-10


def _run_boruta(X, y, seed, max_iter, alpha):
    from boruta import BorutaPy

    rf = RandomForestClassifier(n_jobs=1, max_depth=5, class_weight="balanced", random_state=seed)
    b = BorutaPy(rf, n_estimators="auto", max_iter=max_iter, alpha=alpha, two_step=False,
                 random_state=seed, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b.fit(np.asarray(X, dtype=float), np.asarray(y, dtype=int))
    decision = np.where(b.support_, "confirmed", np.where(b.support_weak_, "tentative", "rejected"))
    return decision, b.ranking_


def _center_dummies(center: pd.Series) -> pd.DataFrame:
    d = pd.get_dummies(center.astype(str), prefix="center", drop_first=True, dtype=float)
    return d


def _fit_logit(y, X, center, center_handling):
    """Returns (result, design, method, notes)."""
    import statsmodels.api as sm

    notes = []
    base = sm.add_constant(X, has_constant="add")
    n_centers = center.nunique()
    if center_handling == "fixed" and n_centers > 1:
        rates = pd.Series(y, index=X.index).groupby(center).agg(["min", "max"])
        constant = rates.index[rates["min"] == rates["max"]].tolist()
        if not constant:
            design = pd.concat([base, _center_dummies(center)], axis=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    res = sm.Logit(y, design).fit(disp=0, maxiter=200)
                    conv = bool(res.mle_retvals.get("converged", True))
                    dummies = [c for c in design.columns if c.startswith("center_")]
                    huge = (res.bse[dummies] > 100).any() or (res.params[dummies].abs() > 15).any()
                except Exception as exc:  # singular matrix etc.
                    conv, huge = False, True
                    notes.append(f"center fixed-effect fit failed ({type(exc).__name__})")
            if conv and not huge:
                return res, design, "logit, center fixed effect", notes
            notes.append("center fixed-effect model did not converge / separated")
        else:
            notes.append(f"outcome constant within center(s) {', '.join(map(str, constant))}: "
                         "a center dummy predicts perfectly (quasi-complete separation)")
        center_handling = "cluster"
        notes.append("fell back to cluster-robust SEs by center")
    if center_handling == "cluster" and n_centers > 1:
        groups = pd.factorize(center)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sm.Logit(y, base).fit(disp=0, maxiter=200, cov_type="cluster", cov_kwds={"groups": groups},
                                        use_t=True)
        if n_centers < 10:
            notes.append(f"only {n_centers} clusters: cluster-robust SEs are unreliable (CIs and p use "
                         f"t with {n_centers - 1} df; interpret with caution)")
        return res, base, f"logit, cluster-robust SE by center (CR1, t with {n_centers - 1} df)", notes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.Logit(y, base).fit(disp=0, maxiter=200)
    return res, base, "logit (single center: no center term)", notes


def _one_resample(state, idx):
    """One bootstrap resample (Harrell): optimism = AUC of the resample's model on the
    resample - its AUC on the original data; None when the resample's outcome is
    constant (skipped)."""
    X, y, dummies, variables, enet_params, seed, max_iter = state
    yb = y[idx]
    if yb.min() == yb.max():
        return None
    Xb = X.iloc[idx]
    if enet_params is not None:
        keep = _enet_at(Xb.to_numpy(float), yb, enet_params["C"], enet_params["l1_ratio"], seed, max_iter)
        vars_b = [c for c, k in zip(X.columns, keep) if k]
    else:
        vars_b = list(variables)
    D = pd.concat([X[vars_b], dummies], axis=1).to_numpy(float)
    if D.shape[1] == 0:
        return 0.0  # intercept only: constant prediction, AUC 0.5 everywhere
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LogisticRegression(C=np.inf, max_iter=5000).fit(D[idx], yb)
    auc_b = roc_auc_score(yb, m.decision_function(D[idx]))
    auc_o = roc_auc_score(y, m.decision_function(D))
    return auc_b - auc_o


def _bootstrap_optimism(X, y, center, variables, fe, enet_params, n_boot, seed, max_iter, workers=1):
    """Harrell's optimism: mean over resamples of AUC(resample model on resample) -
    AUC(resample model on the original data). The resamples are drawn in order from one
    seeded generator, then evaluated (in ``workers`` forked processes): the same values
    whatever the number of workers."""
    rng = np.random.default_rng(seed)
    n = len(y)
    dummies = _center_dummies(center) if fe else pd.DataFrame(index=X.index)
    idxs = [rng.integers(0, n, n) for _ in range(n_boot)]
    with Forked((X, y, dummies, variables, enet_params, seed, max_iter), workers) as pool:
        values = pool.map(_one_resample, idxs)
    return np.asarray([v for v in values if v is not None])


def _boruta_job(state, _item):
    X, y, seed, max_iter, alpha = state
    return _run_boruta(X, y, seed, max_iter, alpha)


# -------------------------------------------------------------------- main
def predictor_analysis(
    covariates: pd.DataFrame,
    outcome: pd.Series,
    seed: int,
    cv_folds: int = 10,
    bootstrap: int = 200,
    candidates=None,
    center_col: str = "center",
    center_handling: str = "fixed",
    l1_ratios=DEFAULT_L1_RATIOS,
    Cs=20,
    boruta_max_iter: int = 100,
    alpha: float = 0.05,
    max_iter: int = 10000,
    workers: int | None = 1,
) -> dict:
    """Elastic-net selection, Boruta confirmation, multivariable logistic model, ROC.

    ``outcome``: 0/1 Series indexed by patient_id (see :func:`outcome_from_endpoints`)
    or aligned with ``covariates``' index; patients with a missing outcome or a missing
    candidate are left out (complete case, ``n``).
    ``candidates``: covariate columns (default: every column but patient_id, center,
    diagnosis). ``center_handling``: "fixed" (default, with the cluster fallback) or
    "cluster". ``Cs``: number of C values (log grid 1e-4..1e4) or the list of C values
    searched by the elastic-net CV; ``l1_ratios``: the mixing values searched.
    ``workers``: processes for the independent fits (Boruta beside the elastic-net CV,
    the CV paths, the bootstrap resamples; None = ``$IBD_STATS_WORKERS`` or the CPUs) -
    the results do not depend on it.

    Returns a dict of DataFrames ``selection`` [variable, enet_coef, selected_by_enet,
    boruta_decision, boruta_rank], ``logistic_model`` [variable, coef, odds_ratio,
    ci_low, ci_high, p_value, selected_by_enet, boruta_decision, n, events, method,
    note], ``roc`` [fpr, tpr, threshold], ``auc`` (one row) [auc, ci_low, ci_high,
    ci_method, optimism, auc_optimism_corrected, bootstrap_samples, bootstrap_used, n,
    events]; plus ``enet`` (dict: C, l1_ratio, cv_folds), ``variables`` (model
    variables), ``note`` (str).
    """
    if candidates is None:
        candidates = [c for c in covariates.columns if c not in ("patient_id", center_col, "diagnosis")]
    candidates = list(candidates)
    notes: list[str] = []
    # folds, resamples and the forest follow the row order: a stable one, not the keyed ids'
    covariates = stable_order(covariates.assign(_outcome=_align_outcome(covariates, outcome)))
    y_all = covariates.pop("_outcome")
    X_all = _numeric(covariates[candidates])
    ok = y_all.notna() & X_all.notna().all(axis=1)
    if (~ok).sum():
        notes.append(f"{int((~ok).sum())} patient(s) left out for a missing outcome or covariate")
    X = X_all[ok]
    y = y_all[ok].astype(int).to_numpy()
    center = covariates.loc[ok, center_col] if center_col in covariates else pd.Series("all", index=X.index)
    n, events = int(len(y)), int(y.sum())
    const = [c for c in X.columns if X[c].nunique() < 2]
    if const:
        notes.append(f"constant candidate(s) dropped: {', '.join(const)}")
        X = X.drop(columns=const)
    empty_model = pd.DataFrame(columns=MODEL_COLUMNS)
    result = {"selection": pd.DataFrame(columns=SELECTION_COLUMNS), "logistic_model": empty_model,
              "roc": pd.DataFrame(columns=["fpr", "tpr", "threshold"]),
              "auc": pd.DataFrame(columns=AUC_COLUMNS), "enet": {}, "variables": [], "note": ""}
    min_class = int(min(events, n - events))
    if min_class < 2 or X.shape[1] == 0:
        notes.append("too few events/non-events or no usable candidate: no analysis")
        result["note"] = "; ".join(notes)
        return result

    # 1. elastic net
    folds = min(cv_folds, min_class)
    if folds < cv_folds:
        notes.append(f"{folds}-fold CV (fewer patients in the smaller outcome class than {cv_folds} folds)")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    Xs = StandardScaler().fit_transform(X.to_numpy(float))
    with Forked((X.to_numpy(float), y, seed, boruta_max_iter, alpha), workers) as pool:
        boruta = pool.submit(_boruta_job, None)  # 2. Boruta, beside the elastic net
        enet = _fit_enet(Xs, y, cv, seed, l1_ratios, Cs, max_iter, pool.workers)
        decision, ranking = boruta.get()
    coef = enet.coef_[0]
    sel = np.abs(coef) > 1e-10
    enet_params = {"C": float(np.ravel(enet.C_)[0]), "l1_ratio": float(np.ravel(enet.l1_ratio_)[0]),
                   "cv_folds": folds, "scoring": "neg_log_loss"}

    selection = pd.DataFrame({"variable": X.columns, "enet_coef": coef, "selected_by_enet": sel,
                              "boruta_decision": decision, "boruta_rank": ranking.astype(int)})
    for c in const:
        selection.loc[len(selection)] = [c, 0.0, False, "rejected", np.nan]
    result["selection"] = selection
    result["enet"] = enet_params

    variables = [c for c, s in zip(X.columns, sel) if s]
    boot_enet = enet_params
    if not variables:
        variables = [c for c, d in zip(X.columns, decision) if d == "confirmed"]
        boot_enet = None
        if variables:
            notes.append("elastic net selected no variable: model on the Boruta-confirmed variables")
    if not variables:
        notes.append("no variable selected by the elastic net or confirmed by Boruta: no multivariable model")
        result["logistic_model"] = pd.DataFrame(
            [{"variable": None, "n": n, "events": events, "method": None, "note": "; ".join(notes)}],
            columns=MODEL_COLUMNS)
        result["note"] = "; ".join(notes)
        return result
    result["variables"] = variables

    # 3. multivariable logistic
    sep = _binary_separation(X[variables], y)
    if sep:
        notes.append(f"quasi-complete separation (empty cell) for {', '.join(sep)}: OR not estimable")
    res, design, method, fit_notes = _fit_logit(y, X[variables], center, center_handling)
    notes += fit_notes
    ci = res.conf_int(alpha=alpha)
    note = "; ".join(notes) or None
    rows = []
    dec = dict(zip(selection["variable"], selection["boruta_decision"]))
    sel_map = dict(zip(selection["variable"], selection["selected_by_enet"]))
    for v in variables:
        rows.append({"variable": v, "coef": float(res.params[v]), "odds_ratio": float(np.exp(res.params[v])),
                     "ci_low": float(np.exp(ci.loc[v, 0])), "ci_high": float(np.exp(ci.loc[v, 1])),
                     "p_value": float(res.pvalues[v]), "selected_by_enet": bool(sel_map[v]),
                     "boruta_decision": dec[v], "n": n, "events": events, "method": method, "note": note})
    result["logistic_model"] = pd.DataFrame(rows, columns=MODEL_COLUMNS)

    # 4. ROC, DeLong CI, optimism
    p_hat = np.asarray(res.predict(design), dtype=float)
    fpr, tpr, thr = roc_curve(y, p_hat)
    result["roc"] = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})
    d = delong_auc(y, p_hat, alpha)
    fe = method.startswith("logit, center fixed")
    opt = _bootstrap_optimism(X, y, center, variables, fe, boot_enet, bootstrap, seed, max_iter, workers) \
        if bootstrap else np.array([])
    mean_opt = float(opt.mean()) if opt.size else np.nan
    result["auc"] = pd.DataFrame([{
        "auc": d["auc"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "ci_method": "DeLong",
        "optimism": mean_opt, "auc_optimism_corrected": d["auc"] - mean_opt if opt.size else np.nan,
        "bootstrap_samples": int(bootstrap), "bootstrap_used": int(opt.size), "n": n, "events": events,
    }], columns=AUC_COLUMNS)
    result["note"] = "; ".join(notes)
    return result
