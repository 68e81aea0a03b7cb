"""Table 1: baseline characteristics by diagnosis (UC, CD) and overall
(docs/STUDY_RULES.md#statistics).

Continuous variables: median [Q1-Q3] (numpy/R type-7 quantiles) with the Wilcoxon
rank-sum test as R's ``wilcox.test`` (gtsummary's default) computes it
(:func:`rank_sum_test`: exact p when both groups have fewer than 50 values and there are
no ties, otherwise the normal approximation with continuity correction), or
mean +/- SD (ddof=1) with Welch's t-test where the variable is declared normal.
Categorical and binary variables: n (%) of the non-missing values, Pearson chi-square
without continuity correction, or Fisher's exact test when an expected count is below
``fisher_expected_below`` (see :mod:`.contingency`). The test used is named per row;
every row of a variable carries that variable's test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .contingency import NOT_TESTED, chi_square_or_fisher
from .ranksum import wilcoxon_rank_sum

GROUPS = ("UC", "CD")
TABLE1_COLUMNS = ["variable", "level", "overall", "UC", "CD", "statistic", "p_value", "test"]
WILCOXON = "Wilcoxon rank-sum"
WELCH = "Welch's t"


def fmt_median_iqr(values, digits: int = 1) -> str:
    """Median [Q1-Q3] of the non-missing values as text.

    Parameters
    ----------
    values : array_like
    digits : int, default 1
        Decimals (0 when every value and quartile is a whole number, e.g. counts).

    Returns
    -------
    str
        ``"med [q1-q3]"`` (type-7 quantiles); empty without values.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: continuous variables as median [IQR].
    """
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(float)
    if v.size == 0:
        return ""
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    if np.all(v == np.round(v)) and all(float(q).is_integer() for q in (q1, med, q3)):
        digits = 0  # counts (e.g. prior mechanisms): "2 [2-3]", not "2.0 [2.0-3.0]"
    return f"{med:.{digits}f} [{q1:.{digits}f}-{q3:.{digits}f}]"


def fmt_mean_sd(values, digits: int = 1) -> str:
    """Mean +/- SD (ddof=1) of the non-missing values as text.

    Parameters
    ----------
    values : array_like
    digits : int, default 1

    Returns
    -------
    str
        Empty without values.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: ``statistics.normal_variables`` as mean +/- SD.
    """
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(float)
    if v.size == 0:
        return ""
    sd = np.std(v, ddof=1) if v.size > 1 else np.nan
    return f"{v.mean():.{digits}f} \u00b1 {sd:.{digits}f}"


def fmt_n_pct(n: int, total: int, digits: int = 1) -> str:
    """``"n (pct%)"`` of ``total`` (empty when total is 0).

    Parameters
    ----------
    n, total : int
    digits : int, default 1

    Returns
    -------
    str

    Notes
    -----
    docs/STUDY_RULES.md#statistics: categorical variables as n (%) of the non-missing values.
    """
    if total == 0:
        return ""
    return f"{n} ({100.0 * n / total:.{digits}f}%)"


def _to_binary(s: pd.Series) -> pd.Series:
    """0/1, True/False, 'yes'/'no' -> float 1/0 with NaN for missing."""
    if s.dtype == object:
        m = s.map(lambda x: None if x is None or (isinstance(x, float) and np.isnan(x))
                  else {"yes": 1, "true": 1, "1": 1, "no": 0, "false": 0, "0": 0}.get(str(x).lower(), x))
        return pd.to_numeric(m, errors="coerce")
    return pd.to_numeric(s.astype("Float64") if str(s.dtype) == "boolean" else s, errors="coerce").astype(float)


def _infer_type(s: pd.Series) -> str:
    if str(s.dtype) in ("bool", "boolean"):
        return "binary"
    if pd.api.types.is_numeric_dtype(s):
        vals = set(pd.Series(s).dropna().unique().tolist())
        return "binary" if vals <= {0, 1} else "continuous"
    return "categorical"


def rank_sum_test(a, b, exact_below: int = 50) -> tuple[float, float]:
    """Two-sided Wilcoxon rank-sum (Mann-Whitney) test with R's defaults.

    Parameters
    ----------
    a, b : array_like
        The two samples.
    exact_below : int, default 50
        The exact distribution when both samples have fewer values than this and no
        value is tied, else the normal approximation with tie and continuity correction
        (``correct=TRUE``).

    Returns
    -------
    tuple of float
        ``(W, p)``: W of ``a``, two-sided p.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: Table 1's continuous variables (gtsummary's default).

    References
    ----------
    .. [1] Mann HB, Whitney DR. On a test of whether one of two random variables is
       stochastically larger than the other. Ann Math Stat 1947;18:50-60. R
       ``stats::wilcox.test``.
    """
    res = wilcoxon_rank_sum(a, b, exact_below)
    return res.statistic, res.p


def _continuous_rows(df, name, normal, digits):
    x = pd.to_numeric(df[name], errors="coerce").astype(float)
    groups = {g: x[df["diagnosis"] == g].dropna() for g in GROUPS}
    fmt = fmt_mean_sd if normal else fmt_median_iqr
    row = {"variable": name, "level": None, "overall": fmt(x, digits)}
    for g in GROUPS:
        row[g] = fmt(groups[g], digits)
    a, b = groups["UC"].to_numpy(), groups["CD"].to_numpy()
    min_n = 2 if normal else 1
    if a.size >= min_n and b.size >= min_n:
        if normal:
            res = stats.ttest_ind(a, b, equal_var=False)
            row.update(statistic=float(res.statistic), p_value=float(res.pvalue), test=WELCH)
        else:
            stat, p = rank_sum_test(a, b)
            row.update(statistic=stat, p_value=p, test=WILCOXON)
    else:
        row.update(statistic=np.nan, p_value=np.nan, test=NOT_TESTED)
    rows = [row]
    n_missing = int(x.isna().sum())
    if n_missing:
        rows.append({"variable": name, "level": "(missing)", "overall": str(n_missing),
                     **{g: str(int(x[df["diagnosis"] == g].isna().sum())) for g in GROUPS},
                     "statistic": row["statistic"], "p_value": row["p_value"], "test": row["test"]})
    return rows


def _categorical_rows(df, name, levels, binary, digits, fisher_expected_below, seed):
    if binary:
        x = _to_binary(df[name])
        cats = x.map({1.0: "yes", 0.0: "no"})
        levels = ["yes", "no"]
        show = ["yes"]
    else:
        cats = df[name].astype(object).where(df[name].notna(), None)
        cats = cats.map(lambda v: None if v is None else str(v))
        if levels is None:
            levels = sorted(cats.dropna().unique().tolist())
        else:
            levels = [str(lv) for lv in levels]
            extra = sorted(set(cats.dropna()) - set(levels))
            levels = levels + extra
        show = levels
    diag = df["diagnosis"]
    table = np.array([[int(((diag == g) & (cats == lv)).sum()) for lv in levels] for g in GROUPS])
    res = chi_square_or_fisher(table, fisher_expected_below, seed=seed)
    totals = {g: int(((diag == g) & cats.notna()).sum()) for g in GROUPS}
    total_all = int(cats.notna().sum())
    rows = []
    for lv in show:
        row = {"variable": name, "level": lv,
               "overall": fmt_n_pct(int((cats == lv).sum()), total_all, digits)}
        for g in GROUPS:
            row[g] = fmt_n_pct(int(((diag == g) & (cats == lv)).sum()), totals[g], digits)
        row.update(statistic=res.statistic, p_value=res.p_value, test=res.test)
        rows.append(row)
    n_missing = int(cats.isna().sum())
    if n_missing:
        rows.append({"variable": name, "level": "(missing)", "overall": str(n_missing),
                     **{g: str(int(((diag == g) & cats.isna()).sum())) for g in GROUPS},
                     "statistic": res.statistic, "p_value": res.p_value, "test": res.test})
    return rows


def table1(
    covariates: pd.DataFrame,
    variables: list[dict] | list[str],
    normal_variables=(),
    fisher_expected_below: float = 5,
    digits: int = 1,
    seed: int = 0,
) -> pd.DataFrame:
    """Table 1: baseline characteristics by diagnosis (UC, CD) and overall.

    Parameters
    ----------
    covariates : DataFrame
        ``analytics.baseline_covariates`` (with diagnosis).
    variables : list of dict or list of str
        ``statistics.table1_variables``: dicts ``{"name": col, "type": "continuous" |
        "binary" | "categorical", "levels": [...], "diagnoses": [...]}`` (``type``
        inferred when absent: bool or 0/1 -> binary, other numbers -> continuous, text
        -> categorical), or plain column names. ``diagnoses`` restricts a variable to
        those patients: the other column stays empty and the variable is not tested.
    normal_variables : sequence of str
        Reported as mean +/- SD with Welch's t (``statistics.normal_variables``).
    fisher_expected_below : float, default 5
        ``statistics.fisher_expected_below`` (:func:`chi_square_or_fisher`).
    digits : int, default 1
    seed : int, default 0
        ``statistics.seed`` (Monte Carlo Fisher of large tables).

    Returns
    -------
    DataFrame
        variable, level, overall, UC, CD (text cells), statistic, p_value, test. The
        first row is ``variable='N'``; binary variables show one row (level ``yes``),
        categorical ones a row per level; a ``(missing)`` row counts missing values.

    Raises
    ------
    KeyError
        For a variable that is no column of ``covariates``.
    ValueError
        For an unknown variable type.

    Notes
    -----
    docs/STUDY_RULES.md#statistics (Table 1 by diagnosis).
    """
    normal = set(normal_variables or ())
    df = covariates.copy()
    df["diagnosis"] = df["diagnosis"].astype(object)
    rows = [{"variable": "N", "level": None, "overall": str(len(df)),
             **{g: str(int((df["diagnosis"] == g).sum())) for g in GROUPS},
             "statistic": np.nan, "p_value": np.nan, "test": None}]
    for spec in variables:
        spec = {"name": spec} if isinstance(spec, str) else dict(spec)
        name = spec["name"]
        if name not in df.columns:
            raise KeyError(f"Table 1 variable {name!r} is not a column of the covariates frame")
        vtype = spec.get("type") or _infer_type(df[name])
        sub = df[df["diagnosis"].isin(spec["diagnoses"])] if spec.get("diagnoses") else df
        if vtype == "continuous":
            rows += _continuous_rows(sub, name, name in normal, digits)
        elif vtype in ("binary", "categorical"):
            rows += _categorical_rows(sub, name, spec.get("levels"), vtype == "binary", digits,
                                      fisher_expected_below, seed)
        else:
            raise ValueError(f"unknown Table 1 variable type {vtype!r} for {name!r}")
    out = pd.DataFrame(rows, columns=TABLE1_COLUMNS)
    out["statistic"] = out["statistic"].astype(float)
    out["p_value"] = out["p_value"].astype(float)
    return out
