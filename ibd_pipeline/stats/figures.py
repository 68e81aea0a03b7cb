"""Figures for the study report (matplotlib, Agg backend). Every function returns a
``matplotlib.figure.Figure`` (already detached from pyplot's figure manager);
:func:`figure_to_png` turns one into PNG bytes. Time points follow the order and labels
the caller passes (the report's, from ``study.yaml``)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from lifelines import KaplanMeierFitter  # noqa: E402
from lifelines.plotting import add_at_risk_counts  # noqa: E402

from .rates import sort_timepoints  # noqa: E402
from .survival import _groups, with_covariates  # noqa: E402

DX_COLORS = {"UC": "#1f77b4", "CD": "#d62728", "overall": "#444444"}


def figure_to_png(fig, dpi: int = 150) -> bytes:
    """A figure as PNG bytes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int, default 150

    Returns
    -------
    bytes

    Notes
    -----
    docs/STUDY_RULES.md#statistics: the report embeds its figures as PNG.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _detach(fig):
    plt.close(fig)
    return fig


def forest_plot(labels, estimates, ci_low, ci_high, log_scale: bool = False, ref_line: float | None = None,
                weights=None, pooled: tuple | None = None, flags=None, title: str = "",
                xlabel: str = "", pooled_label: str = "Pooled (random effects)"):
    """Forest plot: one row per label with its point estimate and CI.

    Parameters
    ----------
    labels : sequence of str
    estimates, ci_low, ci_high : array_like
        Rows with a non-finite estimate get no marker.
    log_scale : bool, default False
        Log x axis (odds / hazard ratios).
    ref_line : float, optional
        A dashed vertical reference line (e.g. 1).
    weights : array_like, optional
        Marker area by weight (e.g. random-effects weights).
    pooled : tuple of float, optional
        ``(estimate, low, high)`` of a pooled diamond under the rows.
    flags : sequence of bool, optional
        Rows marked with an asterisk (e.g. small cells).
    title, xlabel, pooled_label : str

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    docs/STUDY_RULES.md#statistics: the Cox, logistic and center forest plots.
    """
    labels = [str(x) for x in labels]
    est = np.asarray(estimates, dtype=float)
    lo = np.asarray(ci_low, dtype=float)
    hi = np.asarray(ci_high, dtype=float)
    k = len(labels)
    rows = k + (2 if pooled is not None else 0)
    fig = plt.figure(figsize=(7.5, 1.2 + 0.38 * rows))
    ax = fig.add_subplot(111)
    ypos = np.arange(k)[::-1] + (2 if pooled is not None else 0)
    sizes = 40.0 if weights is None else 20 + 300 * np.asarray(weights, float) / np.nanmax(weights)
    ok = np.isfinite(est)
    ax.errorbar(est[ok], ypos[ok], xerr=[est[ok] - lo[ok], hi[ok] - est[ok]], fmt="none", ecolor="black",
                capsize=3, lw=1)
    ax.scatter(est[ok], ypos[ok], s=sizes if np.isscalar(sizes) else np.asarray(sizes)[ok], marker="s",
               color="#1f4e79", zorder=3)
    ticklabels = list(labels)
    if flags is not None:
        ticklabels = [f"{lab} *" if f else lab for lab, f in zip(labels, flags)]
    yt, yl = list(ypos), ticklabels
    if pooled is not None:
        pe, pl, ph = pooled
        ax.fill([pl, pe, ph, pe], [0.5, 0.8, 0.5, 0.2], color="#c00000", zorder=3)
        yt.append(0.5)
        yl.append(pooled_label)
    ax.set_yticks(yt)
    ax.set_yticklabels(yl)
    if ref_line is not None:
        ax.axvline(ref_line, color="grey", ls="--", lw=1)
    if log_scale:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.set_ylim(-0.3 if pooled is not None else ypos.min() - 0.7, ypos.max() + 0.7)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _detach(fig)


def km_plot(persistence: pd.DataFrame, covariates: pd.DataFrame | None = None, group_var: str = "overall", *,
            days_per_month: float, months, alpha: float = 0.05,
            at_risk: bool = True, title: str = "", duration_col: str = "time_days", event_col: str = "event",
            group_labels: dict | None = None):
    """Kaplan-Meier curves of persistence with CI bands and the numbers at risk.

    Parameters
    ----------
    persistence : DataFrame
        ``analytics.persistence``.
    covariates : DataFrame, optional
        For a grouping variable not in ``persistence``.
    group_var : str, default "overall"
        ``overall`` or a grouping column (``persistence.km_groups``).
    days_per_month : float
        The x axis is in months of this many days (``persistence.days_per_month``).
    months : sequence of float
        x ticks and the times of the numbers at risk (0 and ``persistence.km_months``).
    alpha : float, default 0.05
    at_risk : bool, default True
        Numbers at risk under the axis (lifelines ``add_at_risk_counts``).
    title : str
    duration_col, event_col : str
    group_labels : dict, optional
        The legend's names of the groups ({level: label}, e.g. {"yes": "Albumin <= 35 g/L"}).

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    docs/STUDY_RULES.md#statistics: Kaplan-Meier curves with numbers at risk.
    """
    df = with_covariates(persistence, covariates, [group_var])
    fig = plt.figure(figsize=(7.5, 5.5))
    ax = fig.add_subplot(111)
    fitters = []
    for g, sub in _groups(df, group_var):
        label = (group_labels or {}).get(str(g)) or ("All patients" if group_var == "overall" else f"{group_var} = {g}")
        kmf = KaplanMeierFitter(alpha=alpha).fit(sub[duration_col] / days_per_month, sub[event_col], label=label)
        kmf.plot_survival_function(ax=ax, ci_show=True, color=DX_COLORS.get(g))
        fitters.append(kmf)
    ax.set_xlabel("Months since UPA start")
    ax.set_ylabel("Probability of remaining on UPA")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(list(months))
    ax.set_xlim(0, max(months) * 1.02)
    ax.set_title(title)
    if at_risk and fitters:
        plt.figure(fig.number)
        plt.sca(ax)
        add_at_risk_counts(*fitters, ax=ax, xticks=list(months), rows_to_show=["At risk"])
    fig.tight_layout()
    return _detach(fig)


def roc_plot(roc: pd.DataFrame, auc: pd.DataFrame | dict | None = None, title: str = "ROC curve"):
    """ROC curve.

    Parameters
    ----------
    roc : DataFrame
        fpr, tpr (``analytics.roc_curve``).
    auc : DataFrame or dict, optional
        A row with auc, ci_low, ci_high (and auc_optimism_corrected) for the legend
        (``analytics.model_auc``).
    title : str

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    docs/STUDY_RULES.md#statistics: ROC curve and AUC with 95% CI.
    """
    fig = plt.figure(figsize=(5.5, 5.5))
    ax = fig.add_subplot(111)
    label = "Model"
    if auc is not None:
        a = auc.iloc[0] if isinstance(auc, pd.DataFrame) else pd.Series(auc)
        label = f"AUC {a['auc']:.3f} ({a['ci_low']:.3f}-{a['ci_high']:.3f})"
        if "auc_optimism_corrected" in a and pd.notna(a["auc_optimism_corrected"]):
            label += f"; optimism-corrected {a['auc_optimism_corrected']:.3f}"
    # straight segments: with tied scores a ROC point moves in fpr and tpr at once
    ax.plot(roc["fpr"], roc["tpr"], color="#1f4e79", lw=2, label=label)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("Sensitivity")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _detach(fig)


def endpoint_plot(rates: pd.DataFrame, endpoint: str, analysis: str = "complete_case",
                  diagnoses=("UC", "CD"), title: str | None = None, timepoint_order=None,
                  timepoint_labels: dict | None = None):
    """Endpoint rate (%) with Wilson CI across time points, one line per diagnosis.

    Parameters
    ----------
    rates : DataFrame
        :func:`ibd_pipeline.stats.endpoint_rates`.
    endpoint : str
    analysis : {"complete_case", "nri"}, default "complete_case"
    diagnoses : sequence of str, default ("UC", "CD")
    title : str, optional
    timepoint_order : sequence of str, optional
        The x axis order (the study's time points).
    timepoint_labels : dict, optional
        {time point: tick label}; default the names.

    Returns
    -------
    matplotlib.figure.Figure
        n/N annotated at each point.

    Notes
    -----
    docs/STUDY_RULES.md#statistics: endpoint rates n/N (%) with Wilson 95% CI per time point.
    """
    sub = rates[(rates["endpoint"] == endpoint) & (rates["analysis"] == analysis)]
    tps = sort_timepoints(sub["timepoint"].unique(), timepoint_order)
    x = {tp: i for i, tp in enumerate(tps)}
    fig = plt.figure(figsize=(7, 4.5))
    ax = fig.add_subplot(111)
    width = 0.12
    for j, dx in enumerate(diagnoses):
        d = sub[sub["diagnosis"] == dx].copy()
        if d.empty:
            continue
        d = d.iloc[np.argsort([x[t] for t in d["timepoint"]])]
        xs = np.array([x[t] for t in d["timepoint"]]) + (j - (len(diagnoses) - 1) / 2) * width
        ax.errorbar(xs, d["pct"], yerr=[d["pct"] - d["ci_low"], d["ci_high"] - d["pct"]], marker="o",
                    capsize=3, label=dx, color=DX_COLORS.get(dx))
        # labels of the first diagnosis lean left, the others right, so they never overprint
        ha = "right" if j == 0 and len(diagnoses) > 1 else ("left" if len(diagnoses) > 1 else "center")
        for xi, r in zip(xs, d.itertuples()):
            ax.annotate(f"{r.n}/{r.n_total}", (xi, r.ci_high), textcoords="offset points", xytext=(0, 3),
                        ha=ha, fontsize=7, color=DX_COLORS.get(dx))
    ax.set_xticks(range(len(tps)))
    ax.set_xticklabels([(timepoint_labels or {}).get(t, t) for t in tps])
    ax.set_ylim(0, 108)
    ax.set_ylabel("Patients (%) with 95% Wilson CI")
    ax.set_title(title or f"{endpoint.replace('_', ' ')} ({analysis.replace('_', '-')})")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _detach(fig)


def biomarker_trajectory_plot(summary: pd.DataFrame, test: str, diagnoses=("UC", "CD"),
                              unit: str = "", title: str | None = None, timepoint_order=None,
                              timepoint_labels: dict | None = None):
    """Biomarker median and IQR per time point, one line per diagnosis.

    Parameters
    ----------
    summary : DataFrame
        :func:`ibd_pipeline.stats.biomarker_summary`.
    test : str
        The lab test.
    diagnoses : sequence of str, default ("UC", "CD")
    unit : str
        The y axis unit.
    title : str, optional
    timepoint_order : sequence of str, optional
        The x axis order (the study's time points).
    timepoint_labels : dict, optional
        {time point: tick label}; default the names.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    docs/STUDY_RULES.md#statistics: biomarker trajectories.
    """
    sub = summary[summary["test"] == test]
    tps = sort_timepoints(sub["timepoint"].unique(), timepoint_order)
    x = {tp: i for i, tp in enumerate(tps)}
    fig = plt.figure(figsize=(7, 4.5))
    ax = fig.add_subplot(111)
    for j, dx in enumerate(diagnoses):
        d = sub[sub["diagnosis"] == dx]
        if d.empty:
            continue
        d = d.iloc[np.argsort([x[t] for t in d["timepoint"]])]
        xs = np.array([x[t] for t in d["timepoint"]]) + (j - (len(diagnoses) - 1) / 2) * 0.1
        ax.errorbar(xs, d["median"], yerr=[d["median"] - d["q1"], d["q3"] - d["median"]], marker="o",
                    capsize=3, label=f"{dx} median [IQR]", color=DX_COLORS.get(dx))
    ax.set_xticks(range(len(tps)))
    ax.set_xticklabels([(timepoint_labels or {}).get(t, t) for t in tps])
    ax.set_ylabel(f"{test} {unit}".strip())
    ax.set_title(title or f"{test} over time")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _detach(fig)
