"""Predictors of the study's primary outcome (``statistics.predictor_outcome``, pooled
UC + CD; docs/STUDY_RULES.md#statistics).

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
3. **Multivariable logistic model** on the elastic-net selection (if that is empty: on
   the Boruta-confirmed variables; if that is empty too: no model, reported in
   ``note``), capped by the **events-per-variable** limit (``events_per_variable``,
   study.yaml ``statistics.events_per_variable``, default 10; Peduzzi et al. 1996): at
   most floor(smaller outcome class / limit) variables, those with the largest
   |elastic-net coefficient|. Center is a fixed effect. Separation is checked first
   (linear program, firthmodels ``detect_separation``); without separation the model is
   statsmodels ``Logit`` (maximum likelihood), used only if it converged. With
   separation or no convergence it is **Firth-penalized** (firthmodels
   ``FirthLogisticRegression``, as R ``logistf``: profile penalized-likelihood CIs,
   penalized likelihood-ratio p; Heinze & Schemper 2002). A variable whose estimate is
   still not finite says "not estimable (events / n)" and carries no number.
   ``method`` names the estimator, ``converged`` and ``estimable`` are columns.
4. **ROC / AUC**: apparent ROC of the final model, AUC with DeLong's 95% CI, and
   Harrell's bootstrap optimism-corrected AUC (``bootstrap`` resamples, seeded): in
   each resample the elastic net is refitted at the CV-optimal (C, l1_ratio) (the
   selection step and the events-per-variable cap are repeated, the CV tuning is not),
   the logistic model is refitted on its selection (Firth when the model is Firth), and optimism = AUC(resample) - AUC(original data).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

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
                 "boruta_decision", "n", "events", "method", "note", "converged", "estimable"]
# a |log odds ratio| or CI bound beyond this (OR outside 1e-9..1e9) is no estimate
MAX_LOG_RATIO = 20.0
SELECTION_COLUMNS = ["variable", "enet_coef", "selected_by_enet", "boruta_decision", "boruta_rank"]
AUC_COLUMNS = ["auc", "ci_low", "ci_high", "ci_method", "optimism", "auc_optimism_corrected",
               "bootstrap_samples", "bootstrap_used", "n", "events"]
DEFAULT_L1_RATIOS = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass(frozen=True)
class AucResult:
    """An AUC with its DeLong standard error and confidence interval (:func:`delong_auc`).

    Attributes
    ----------
    auc : float
        Area under the ROC curve (NaN without positives or negatives).
    se : float
        DeLong standard error.
    ci_low, ci_high : float
        Wald limits clipped to [0, 1].
    """

    auc: float
    se: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class EnetTuning:
    """The cross-validated elastic-net tuning (:func:`predictor_analysis`).

    Attributes
    ----------
    C : float
        Inverse regularisation strength at the CV optimum.
    l1_ratio : float
        Elastic-net mixing at the CV optimum (0 = L2, 1 = L1).
    cv_folds : int
        Folds used (fewer than asked when the smaller outcome class is small).
    scoring : str
        The CV criterion.
    """

    C: float
    l1_ratio: float
    cv_folds: int
    scoring: str


def _empty(columns):
    return field(default_factory=lambda: pd.DataFrame(columns=columns))


@dataclass(frozen=True)
class PredictorAnalysis:
    """The predictor analysis (:func:`predictor_analysis`): its tables and how it went.

    Attributes
    ----------
    selection : DataFrame
        variable, enet_coef, selected_by_enet, boruta_decision, boruta_rank.
    logistic_model : DataFrame
        variable, coef, odds_ratio, ci_low, ci_high, p_value, selected_by_enet,
        boruta_decision, n, events, method, note, converged, estimable (a variable that
        is not estimable has no numbers and a note "not estimable (events / n)").
    roc : DataFrame
        fpr, tpr, threshold of the final model's apparent ROC curve.
    auc : DataFrame
        One row: auc, ci_low, ci_high, ci_method, optimism, auc_optimism_corrected,
        bootstrap_samples, bootstrap_used, n, events.
    enet : EnetTuning or None
        The elastic-net tuning (None when no analysis ran).
    variables : tuple of str
        The multivariable model's variables.
    note : str
        Why patients or variables were left out and how the model was fitted.
    """

    selection: pd.DataFrame = _empty(SELECTION_COLUMNS)
    logistic_model: pd.DataFrame = _empty(MODEL_COLUMNS)
    roc: pd.DataFrame = _empty(["fpr", "tpr", "threshold"])
    auc: pd.DataFrame = _empty(AUC_COLUMNS)
    enet: EnetTuning | None = None
    variables: tuple[str, ...] = ()
    note: str = ""


# --------------------------------------------------------------------- AUC
def delong_auc(y, score, alpha: float = 0.05) -> AucResult:
    """AUC with DeLong's variance and a Wald confidence interval.

    Parameters
    ----------
    y : array_like
        0/1 outcome.
    score : array_like
        Predicted score (higher = more likely 1).
    alpha : float, default 0.05
        Two-sided CI level (``statistics.alpha``).

    Returns
    -------
    AucResult
        NaN throughout when ``y`` has no 1 or no 0.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: ROC curve and AUC with 95% CI. The variance is the
    fast midrank form; the CI is clipped to [0, 1] as pROC's ``ci.auc(method='delong')``.

    References
    ----------
    .. [1] DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more
       correlated receiver operating characteristic curves: a nonparametric approach.
       Biometrics 1988;44:837-845.
    .. [2] Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas
       under correlated receiver operating characteristic curves. IEEE Signal Process
       Lett 2014;21:1389-1393. R ``pROC::ci.auc``.
    """
    y = np.asarray(y).astype(int)
    s = np.asarray(score, dtype=float)
    pos, neg = s[y == 1], s[y == 0]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return AucResult(np.nan, np.nan, np.nan, np.nan)
    tx = stats.rankdata(pos)
    ty = stats.rankdata(neg)
    tz = stats.rankdata(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:m] - tx) / n          # per-positive structural components
    v01 = 1.0 - (tz[m:] - ty) / m    # per-negative structural components
    var = (np.var(v10, ddof=1) / m if m > 1 else 0.0) + (np.var(v01, ddof=1) / n if n > 1 else 0.0)
    se = float(np.sqrt(var))
    z = stats.norm.ppf(1 - alpha / 2)
    return AucResult(float(auc), se, float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se)))


# ----------------------------------------------------------------- helpers
def outcome_from_endpoints(endpoints: pd.DataFrame, endpoint: str, timepoint: str,
                           analysis: str = "complete_case") -> pd.Series:
    """The 0/1 outcome per patient of one endpoint at one time point.

    Parameters
    ----------
    endpoints : DataFrame
        ``analytics.endpoints``.
    endpoint, timepoint : str
        The outcome (``statistics.predictor_outcome``).
    analysis : {"complete_case", "nri"}, default "complete_case"
        complete_case: ``status``, not-evaluable patients absent; nri: ``status_nri``.

    Returns
    -------
    Series
        1 = achieved, 0 = not achieved, indexed by patient_id, named ``<endpoint>_<timepoint>``.

    Notes
    -----
    docs/STUDY_RULES.md#endpoints (complete case primary, NRI sensitivity).
    """
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


def neg_log_loss(estimator, X, y) -> float:
    """scikit-learn's ``"neg_log_loss"`` scorer, value for value, without its input checks.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba``
    X : array
        The fold's held-out rows.
    y : array
        Their outcome (the classes of ``estimator.classes_``).

    Returns
    -------
    float
        Minus the mean of -log(p of the true class), p clipped to [eps, 1 - eps], as
        ``sklearn.metrics.log_loss`` on ``predict_proba``.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (predictors: the elastic net's 10-fold CV by log loss).
    The scorer's checks cost more than the fits (1,000 calls per cross-validation: about
    6 ms each against 50 us here; issue 14). Raises ValueError, as log_loss does, when the
    fold holds a different number of classes than the model.
    """
    p = estimator.predict_proba(X)
    classes = np.unique(y)
    if len(classes) != p.shape[1]:
        raise ValueError(f"y_true and y_prob contain different number of classes: {len(classes)} vs {p.shape[1]}")
    eps = np.finfo(p.dtype).eps
    true = np.clip(p[np.arange(len(y)), np.searchsorted(classes, y)], eps, 1 - eps)
    return -float(np.mean(-np.log(true)))


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
                                 scoring=neg_log_loss, max_iter=max_iter, tol=1e-4,
                                 random_state=seed, use_legacy_attributes=False).fit(Xs, y)
    return m


def _enet_at(X, y, C, l1_ratio, seed, max_iter):
    Xs = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", max_iter=max_iter, tol=1e-4,
                               random_state=seed).fit(Xs, y)
    return np.abs(m.coef_[0])


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


def _not_estimable(events: int, n: int) -> str:
    return f"not estimable ({events} events / {n})"


def _firth_logit(y, design: pd.DataFrame, alpha: float):
    """Firth-penalized logistic regression (firthmodels, as R logistf): coefficients,
    profile penalized-likelihood CIs and penalized likelihood-ratio p values.
    ``design`` without the constant (the intercept is fitted)."""
    from firthmodels import FirthLogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = FirthLogisticRegression(max_iter=200, gtol=1e-8, xtol=1e-8).fit(design.to_numpy(float), y)
        k = design.shape[1]
        ci = m.conf_int(alpha=alpha, method="pl", features=list(range(k)), max_iter=200, tol=1e-6)[:k]
        m.lrt(features=list(range(k)))
    params = pd.Series(m.coef_, index=design.columns)
    return {"params": params, "ci": pd.DataFrame(ci, index=design.columns), "p": pd.Series(m.lrt_pvalues_[:k], index=design.columns),
            "converged": bool(m.converged_), "predict": m.predict_proba(design.to_numpy(float))[:, 1]}


def _separated(design: pd.DataFrame, y) -> bool:
    """Complete or quasi-complete separation of the ML logistic fit (linear-programming
    check of Konis 2007, firthmodels ``detect_separation``); a rank-deficient design
    counts as not estimable by ML too."""
    from firthmodels import detect_separation

    try:
        return bool(detect_separation(design.to_numpy(float), y, fit_intercept=True).separation)
    except np.linalg.LinAlgError:
        return True


def _fit_logit(y, X, center, center_handling, alpha=0.05):
    """The multivariable logistic fit: dict with params, ci (log-odds scale), p,
    predict (fitted probabilities), converged, method, notes (see the module doc)."""
    import statsmodels.api as sm

    notes = []
    n_centers = center.nunique()
    design = X
    if center_handling == "fixed" and n_centers > 1:
        design = pd.concat([X, _center_dummies(center)], axis=1)
        where = ", center fixed effect"
    else:
        where = "" if n_centers > 1 else " (single center: no center term)"
    if center_handling == "cluster" and n_centers > 1:
        groups = pd.factorize(center)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sm.Logit(y, sm.add_constant(X, has_constant="add")).fit(
                disp=0, maxiter=200, cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        if n_centers < 10:
            notes.append(f"only {n_centers} clusters: cluster-robust SEs are unreliable (CIs and p use "
                         f"t with {n_centers - 1} df; interpret with caution)")
        return {"params": res.params, "ci": res.conf_int(alpha=alpha), "p": res.pvalues,
                "converged": bool(res.mle_retvals.get("converged", False)),
                "predict": np.asarray(res.predict(sm.add_constant(X, has_constant="add")), float),
                "method": f"logit, cluster-robust SE by center (CR1, t with {n_centers - 1} df)", "notes": notes}
    separated = _separated(design, y)
    if not separated:
        base = sm.add_constant(design, has_constant="add")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = sm.Logit(y, base).fit(disp=0, maxiter=200)
                converged = bool(res.mle_retvals.get("converged", False))
            except np.linalg.LinAlgError:
                converged = False
        if converged:
            return {"params": res.params, "ci": res.conf_int(alpha=alpha), "p": res.pvalues, "converged": True,
                    "predict": np.asarray(res.predict(base), float),
                    "method": f"logit (maximum likelihood, converged){where}", "notes": notes}
        notes.append("the maximum-likelihood fit did not converge")
    else:
        notes.append("separation (the maximum-likelihood estimates are infinite)")
    fit = _firth_logit(y, design, alpha)
    notes.append("Firth-penalized fit (profile penalized-likelihood CIs, penalized LR p)"
                 + ("" if fit["converged"] else " did not converge either"))
    fit.update(method=f"Firth-penalized logit{where}", notes=notes)
    return fit


def _capped(names, strength, max_vars: int) -> list[str]:
    """The ``max_vars`` names of largest ``strength`` (> 0), in their original order."""
    keep = [i for i in np.argsort(-np.asarray(strength, float), kind="stable")[:max_vars] if strength[i] > 1e-10]
    return [names[i] for i in sorted(keep)]


def _one_resample(state, idx):
    """One bootstrap resample (Harrell): optimism = AUC of the resample's model on the
    resample - its AUC on the original data; None when the resample's outcome is
    constant (skipped). The resample repeats the selection (elastic net at the tuned
    C / l1_ratio, capped at ``max_vars``) and the fit (Firth when the model was Firth)."""
    X, y, dummies, variables, enet_params, seed, max_iter, max_vars, firth = state
    yb = y[idx]
    if yb.min() == yb.max():
        return None
    Xb = X.iloc[idx]
    if enet_params is not None:
        strength = _enet_at(Xb.to_numpy(float), yb, enet_params.C, enet_params.l1_ratio, seed, max_iter)
        vars_b = _capped(list(X.columns), strength, max_vars)
    else:
        vars_b = list(variables)
    D = pd.concat([X[vars_b], dummies], axis=1).to_numpy(float)
    if D.shape[1] == 0:
        return 0.0  # intercept only: constant prediction, AUC 0.5 everywhere
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if firth:
            from firthmodels import FirthLogisticRegression

            m = FirthLogisticRegression(max_iter=200).fit(D[idx], yb)
        else:
            m = LogisticRegression(C=np.inf, max_iter=5000).fit(D[idx], yb)
    auc_b = roc_auc_score(yb, m.decision_function(D[idx]))
    auc_o = roc_auc_score(y, m.decision_function(D))
    return auc_b - auc_o


def _bootstrap_optimism(X, y, center, variables, fe, enet_params, n_boot, seed, max_iter, workers=1,
                        max_vars=None, firth=False):
    """Harrell's optimism: mean over resamples of AUC(resample model on resample) -
    AUC(resample model on the original data). The resamples are drawn in order from one
    seeded generator, then evaluated (in ``workers`` forked processes): the same values
    whatever the number of workers."""
    rng = np.random.default_rng(seed)
    n = len(y)
    dummies = _center_dummies(center) if fe else pd.DataFrame(index=X.index)
    idxs = [rng.integers(0, n, n) for _ in range(n_boot)]
    state = (X, y, dummies, variables, enet_params, seed, max_iter, max_vars or X.shape[1], firth)
    with Forked(state, workers) as pool:
        values = pool.map(_one_resample, idxs)
    return np.asarray([v for v in values if v is not None])


def _boruta_job(state, _item):
    X, y, seed, max_iter, alpha = state
    return _run_boruta(X, y, seed, max_iter, alpha)


def _capped_variables(variables: list[str], strength: dict, max_vars: int, min_class: int,
                      events_per_variable: float) -> tuple[list[str], str | None]:
    """Events per variable (Peduzzi 1996): the smaller outcome class caps the model's size;
    the ``max_vars`` variables of largest ``strength`` stay (in their order), with a note."""
    if not variables or len(variables) <= max_vars:
        return variables, None
    kept = sorted(variables, key=lambda v: -strength[v])[:max_vars]
    kept = [v for v in variables if v in kept]
    return kept, (f"events-per-variable limit {events_per_variable:g}: {min_class} patients in the smaller "
                  f"outcome class support {max_vars} variable(s); dropped "
                  f"{', '.join(v for v in variables if v not in kept)}")


def _model_and_optimism(X, y, center, variables, center_handling, alpha, boot_enet, bootstrap, seed, max_iter,
                        workers, max_vars):
    """The multivariable fit of ``variables`` (ML, else Firth) and its bootstrap optimism:
    (separated variables, fit, optimism values)."""
    if not variables:
        return [], None, np.array([])
    sep = _binary_separation(X[variables], y)
    fit = _fit_logit(y, X[variables], center, center_handling, alpha)
    fe = center_handling == "fixed" and center.nunique() > 1
    firth = fit["method"].startswith("Firth")
    opt = _bootstrap_optimism(X, y, center, variables, fe, boot_enet, bootstrap, seed, max_iter, workers,
                              max_vars=max_vars, firth=firth) if bootstrap else np.array([])
    return sep, fit, opt


@dataclass(frozen=True)
class PredictorDesign:
    """What :func:`predictor_analysis` reads of its inputs, in the order it reads it: the
    candidates' values (numeric), the outcome and the center of every patient, rows in
    the stable order of :func:`ibd_pipeline.stats.order.stable_order` on the whole
    covariates frame. The same design gives the same analysis (the seeds and settings
    aside): its content hash is the analysis' data version (issue 14)."""

    X: pd.DataFrame
    y: pd.Series
    center: pd.Series | None


def predictor_design(covariates: pd.DataFrame, outcome: pd.Series, candidates=None,
                     center_col: str = "center") -> PredictorDesign:
    """What :func:`predictor_analysis` reads of its inputs.

    Parameters
    ----------
    covariates, outcome, candidates, center_col
        As :func:`predictor_analysis`.

    Returns
    -------
    PredictorDesign

    Notes
    -----
    docs/STUDY_RULES.md#statistics: rows in the stable, non-secret order (issue 13).
    """
    if candidates is None:
        candidates = [c for c in covariates.columns if c not in ("patient_id", center_col, "diagnosis")]
    # folds, resamples and the forest follow the row order: a stable one, not the keyed ids'
    ordered = stable_order(covariates.assign(_outcome=_align_outcome(covariates, outcome)))
    return PredictorDesign(X=_numeric(ordered[list(candidates)]), y=ordered["_outcome"],
                           center=ordered[center_col] if center_col in ordered else None)


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
    events_per_variable: float = 10,
    design: PredictorDesign | None = None,
) -> PredictorAnalysis:
    """Predictors of a binary outcome: elastic-net selection, Boruta confirmation, a
    multivariable logistic model and its ROC curve.

    Parameters
    ----------
    covariates : DataFrame
        Baseline covariates (``analytics.baseline_covariates``), with patient_id and center.
    outcome : Series
        0/1 outcome indexed by patient_id (:func:`outcome_from_endpoints`) or aligned with
        ``covariates``' index; patients with a missing outcome or a missing candidate are
        left out (complete case, ``n``).
    seed : int
        Seed of the CV folds, Boruta's forest and the bootstrap (``statistics.seed``).
    cv_folds : int, default 10
        Elastic-net CV folds (``statistics.cv_folds``); fewer when the smaller outcome
        class is smaller.
    bootstrap : int, default 200
        Bootstrap resamples of the optimism (``statistics.bootstrap_samples``); 0 = none.
    candidates : sequence of str, optional
        Covariate columns (``statistics.covariates``; default every column but
        patient_id, center, diagnosis).
    center_col : str, default "center"
    center_handling : {"fixed", "cluster"}, default "fixed"
        Center as a fixed effect, or cluster-robust SEs by center.
    l1_ratios : sequence of float
        The elastic-net mixing values searched.
    Cs : int or sequence of float, default 20
        Number of C values (log grid 1e-4..1e4) or the C values searched.
    boruta_max_iter : int, default 100
    alpha : float, default 0.05
        CI level and Boruta's test level (``statistics.alpha``).
    max_iter : int, default 10000
        Solver iterations.
    workers : int or None, default 1
        Processes for the independent fits (Boruta beside the CV, the CV paths, the
        bootstrap; None = ``$IBD_STATS_WORKERS`` or the CPUs); the result does not depend on it.
    events_per_variable : float, default 10
        The model takes at most floor(smaller outcome class / this) variables (largest
        |elastic-net coefficient|, else best Boruta rank); none supportable: no model,
        "not estimable (events / n)" (``statistics.events_per_variable``).
    design : PredictorDesign, optional
        :func:`predictor_design` of these inputs when the caller made it already (e.g. to
        hash it); made here otherwise.

    Returns
    -------
    PredictorAnalysis

    Notes
    -----
    docs/STUDY_RULES.md#statistics (predictors). The steps are those of the module
    docstring: the ML logit when it converges without separation, else Firth.

    References
    ----------
    .. [1] Zou H, Hastie T. Regularization and variable selection via the elastic net.
       J R Stat Soc B 2005;67:301-320.
    .. [2] Kursa MB, Rudnicki WR. Feature selection with the Boruta package. J Stat Softw
       2010;36(11).
    .. [3] Heinze G, Schemper M. A solution to the problem of separation in logistic
       regression. Stat Med 2002;21:2409-2419 (R ``logistf``).
    .. [4] Peduzzi P et al. A simulation study of the number of events per variable in
       logistic regression analysis. J Clin Epidemiol 1996;49:1373-1379.
    .. [5] Harrell FE, Lee KL, Mark DB. Multivariable prognostic models. Stat Med
       1996;15:361-387 (bootstrap optimism).
    """
    if design is None:
        design = predictor_design(covariates, outcome, candidates, center_col)
    X_all, y_all = design.X, design.y
    notes: list[str] = []
    ok = y_all.notna() & X_all.notna().all(axis=1)
    if (~ok).sum():
        notes.append(f"{int((~ok).sum())} patient(s) left out for a missing outcome or covariate")
    X = X_all[ok]
    y = y_all[ok].astype(int).to_numpy()
    center = design.center[ok] if design.center is not None else pd.Series("all", index=X.index)
    n, events = int(len(y)), int(y.sum())
    const = [c for c in X.columns if X[c].nunique() < 2]
    if const:
        notes.append(f"constant candidate(s) dropped: {', '.join(const)}")
        X = X.drop(columns=const)
    min_class = int(min(events, n - events))
    if min_class < 2 or X.shape[1] == 0:
        notes.append("too few events/non-events or no usable candidate: no analysis")
        return PredictorAnalysis(note="; ".join(notes))

    # 1. elastic net
    folds = min(cv_folds, min_class)
    if folds < cv_folds:
        notes.append(f"{folds}-fold CV (fewer patients in the smaller outcome class than {cv_folds} folds)")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    Xs = StandardScaler().fit_transform(X.to_numpy(float))
    max_vars = int(min_class // events_per_variable)
    early = None
    with Forked((X.to_numpy(float), y, seed, boruta_max_iter, alpha), workers) as pool:
        boruta = pool.submit(_boruta_job, None)  # 2. Boruta, beside the elastic net
        # Boruta (the longest part) keeps one process to itself: the elastic net, the fit
        # and the bootstrap share the others (in-process on two cores; three processes on
        # two cores made Boruta and the bootstrap each twice as slow, issue 14)
        workers = max(1, pool.workers - 1) if pool.forked else pool.workers
        enet = _fit_enet(Xs, y, cv, seed, l1_ratios, Cs, max_iter, workers)
        coef = enet.coef_[0]
        sel = np.abs(coef) > 1e-10
        enet_params = EnetTuning(C=float(np.ravel(enet.C_)[0]), l1_ratio=float(np.ravel(enet.l1_ratio_)[0]),
                                 cv_folds=folds, scoring="neg_log_loss")
        if sel.any() and max_vars > 0:
            # the model's variables are the elastic net's: its fit and bootstrap do not wait
            # for Boruta (the same computations, while Boruta runs; issue 14)
            variables, cap_note = _capped_variables([c for c, x in zip(X.columns, sel) if x],
                                                    dict(zip(X.columns, np.abs(coef))), max_vars, min_class,
                                                    events_per_variable)
            early = (variables, cap_note, *_model_and_optimism(X, y, center, variables, center_handling, alpha,
                                                               enet_params, bootstrap, seed, max_iter, workers,
                                                               max_vars))
        decision, ranking = boruta.get()

    selection = pd.DataFrame({"variable": X.columns, "enet_coef": coef, "selected_by_enet": sel,
                              "boruta_decision": decision, "boruta_rank": ranking.astype(int)})
    for c in const:
        selection.loc[len(selection)] = [c, 0.0, False, "rejected", np.nan]

    if early is not None:
        variables, cap_note, sep, fit, opt = early
        if cap_note:
            notes.append(cap_note)
    else:
        variables = [c for c, s in zip(X.columns, sel) if s]
        boot_enet = enet_params
        strength = dict(zip(X.columns, np.abs(coef)))
        if not variables:
            variables = [c for c, d in zip(X.columns, decision) if d == "confirmed"]
            boot_enet = None
            strength = {c: -float(r) for c, r in zip(X.columns, ranking)}
            if variables:
                notes.append("elastic net selected no variable: model on the Boruta-confirmed variables")
        variables, cap_note = _capped_variables(variables, strength, max_vars, min_class, events_per_variable)
        if cap_note:
            notes.append(cap_note)
        if variables:
            sep, fit, opt = _model_and_optimism(X, y, center, variables, center_handling, alpha, boot_enet,
                                                bootstrap, seed, max_iter, workers, max_vars)
    if not variables:
        if max_vars == 0:
            notes.append(f"{_not_estimable(events, n)}: fewer than {events_per_variable:g} patients in the "
                         "smaller outcome class per variable")
        else:
            notes.append("no variable selected by the elastic net or confirmed by Boruta: no multivariable model")
        model = pd.DataFrame(
            [{"variable": None, "n": n, "events": events, "method": None, "note": "; ".join(notes),
              "converged": None, "estimable": False}], columns=MODEL_COLUMNS)
        return PredictorAnalysis(selection=selection, logistic_model=model, enet=enet_params, note="; ".join(notes))

    # 3. multivariable logistic: ML when it converges without separation, else Firth
    if sep:
        notes.append(f"empty cell against the outcome for {', '.join(sep)}")
    notes += fit["notes"]
    method = fit["method"]
    rows = []
    dec = dict(zip(selection["variable"], selection["boruta_decision"]))
    sel_map = dict(zip(selection["variable"], selection["selected_by_enet"]))
    for v in variables:
        b, lo, hi, p = (float(fit["params"][v]), float(fit["ci"].loc[v, 0]), float(fit["ci"].loc[v, 1]),
                        float(fit["p"][v]))
        ok = fit["converged"] and all(np.isfinite([b, lo, hi])) and max(abs(b), abs(lo), abs(hi)) < MAX_LOG_RATIO
        row = {"variable": v, "selected_by_enet": bool(sel_map[v]), "boruta_decision": dec[v], "n": n,
               "events": events, "method": method, "converged": fit["converged"], "estimable": ok}
        if ok:
            row.update(coef=b, odds_ratio=float(np.exp(b)), ci_low=float(np.exp(lo)), ci_high=float(np.exp(hi)),
                       p_value=p)
        rows.append(row)
    bad = [r["variable"] for r in rows if not r["estimable"]]
    if bad:
        notes.append(f"{', '.join(bad)}: {_not_estimable(events, n)}")
    note = "; ".join(notes) or None
    for r in rows:
        r["note"] = note if r["estimable"] else f"{_not_estimable(events, n)}; {note}"
    model = pd.DataFrame(rows, columns=MODEL_COLUMNS)

    # 4. ROC, DeLong CI, optimism
    p_hat = np.asarray(fit["predict"], dtype=float)
    fpr, tpr, thr = roc_curve(y, p_hat)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})
    d = delong_auc(y, p_hat, alpha)
    mean_opt = float(opt.mean()) if opt.size else np.nan
    auc = pd.DataFrame([{
        "auc": d.auc, "ci_low": d.ci_low, "ci_high": d.ci_high, "ci_method": "DeLong",
        "optimism": mean_opt, "auc_optimism_corrected": d.auc - mean_opt if opt.size else np.nan,
        "bootstrap_samples": int(bootstrap), "bootstrap_used": int(opt.size), "n": n, "events": events,
    }], columns=AUC_COLUMNS)
    return PredictorAnalysis(selection=selection, logistic_model=model, roc=roc, auc=auc, enet=enet_params,
                             variables=tuple(variables), note="; ".join(notes))
