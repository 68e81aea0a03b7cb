"""The context every section builder shares (:class:`ReportContext`: warehouse, settings,
figure registry, 'not available' notes, small-cell flags) and helpers used by more than
one section (the ratio forest plots and tables of the Cox and logistic models)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from . import fmt as F
from .data import Unavailable, Warehouse
from .figures import Job
from .fmt import DASH, Cell, fmt_int, fmt_p, not_available
from .labels import OVERALL, diagnosis_columns, study_diagnoses, var_label

log = logging.getLogger(__name__)


def study_centers(wh: Warehouse) -> list[str]:
    """The centers of the patient flow (its 'all' rows left out), [] when it is missing."""
    flow = wh.try_get("patient_flow", ["center"])
    if flow is None:
        return []
    return sorted(c for c in flow["center"].dropna().astype(str).unique() if c != "all")


class ReportContext:
    """What one report build shares between its sections: the warehouse, the settings, the
    published figures, the registered figure jobs, the "not available" reasons per section
    (``section`` is the one being built), the small-cell flag count."""

    def __init__(self, wh: Warehouse, settings: dict, published: dict | None):
        self.wh = wh
        self.settings = settings
        self.published = published
        # the settings are study.yaml's (or the warehouse's ref.settings): no defaults of their own here
        st = settings["statistics"]
        self.small = int(st["small_cell_below"])
        self.alpha = float(st["alpha"])
        self.figures: dict[str, bytes] = {}
        self.jobs: list[Job] = []
        self.unavailable: dict[str, list[str]] = {}
        self.section = ""
        self.flags = 0
        self.nri_same: list[str] = []
        self.comparison: pd.DataFrame | None = None
        self.comparisons: list | None = None  # a study's declared comparisons (report/comparisons.py)
        self.published_error = ""

    # diagnoses ----------------------------------------------------
    @property
    def diagnoses(self) -> list[str]:
        """The report's diagnosis columns (:func:`labels.diagnosis_columns`)."""
        return diagnosis_columns(self.settings)

    def dx_rows(self, df: pd.DataFrame, dx: str, col: str = "diagnosis") -> pd.DataFrame:
        """The rows of ``df`` shown in the diagnosis column ``dx``: the diagnosis' own rows;
        in a study of one diagnosis, whose "overall" rows are the same patients, the
        "overall" rows when the table has none of the diagnosis itself."""
        x = df[df[col] == dx]
        if x.empty and dx != OVERALL and len(study_diagnoses(self.settings)) == 1:
            x = df[df[col] == OVERALL]
        return x

    def by_study_diagnosis(self, df: pd.DataFrame, col: str = "diagnosis") -> pd.DataFrame:
        """``df`` for the figures, which draw one line per diagnosis of the study: as it is,
        or in a study of one diagnosis whose rows the table holds only as "overall", with
        those rows also under the diagnosis' name."""
        dxs = study_diagnoses(self.settings)
        if len(dxs) == 1 and not (df[col] == dxs[0]).any():
            return pd.concat([df, df[df[col] == OVERALL].assign(**{col: dxs[0]})], ignore_index=True)
        return df

    # figures ------------------------------------------------------
    def figure(self, name: str, func, args=(), kwargs=None, *, alt: str, caption: str = "", tight: bool = True,
               raw: bool = False) -> str:
        """Register a figure: ``func(*args, **kwargs)`` returns a matplotlib figure (or,
        with ``raw``, PNG bytes / a (PNG, ...) tuple). Rendering happens after every
        section is built (in parallel where possible); the returned placeholder becomes
        the <figure> or a "not available" note."""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        base, k = name, 2
        while any(j.name == name for j in self.jobs):
            name, k = f"{base}_{k}", k + 1
        self.jobs.append(Job(name, func, tuple(args), dict(kwargs or {}), tight, raw, self.section, alt, caption))
        return f"@@FIGURE:{name}@@"

    # robustness ---------------------------------------------------
    def na(self, reason: str) -> str:
        self.unavailable.setdefault(self.section, []).append(reason)
        return not_available(reason)

    def part(self, fn, *a, **k) -> str:
        try:
            return fn(*a, **k)
        except Unavailable as e:
            return self.na(str(e))
        except Exception as e:  # noqa: BLE001 - a broken part must not sink the report
            log.exception("report part %s failed", getattr(fn, "__name__", fn))
            return self.na(f"{type(e).__name__}: {e}")

    def flag(self, n, below: int | None = None) -> bool:
        f = F.small_cell(n, self.small if below is None else below)
        self.flags += int(f)
        return f

    def small_note(self) -> str:
        return (f"{F.DAGGER} small cell: a per-center count of 1 to {self.small - 1} patients "
                f"(settings statistics.small_cell_below = {self.small}); interpret with care and do not "
                "publish without aggregation.")


def yesno(v) -> str:
    return DASH if F.missing(v) else ("yes" if bool(v) else "no")


def estimable(df: pd.DataFrame, est: str, lo: str = "ci_low", hi: str = "ci_high") -> pd.Series:
    e, l, h = (pd.to_numeric(df[x], errors="coerce") for x in (est, lo, hi))
    return (np.isfinite(e) & np.isfinite(l) & np.isfinite(h) & (l > 0) & (e > 1e-3) & (e < 1e3)).astype(bool)


def ratio_forest(c: ReportContext, df: pd.DataFrame, est: str, name: str, title: str, xlabel: str, what: str) -> str:
    from ibd_pipeline.stats.figures import forest_plot

    ok = estimable(df, est)
    d = df[ok]
    if d.empty:
        raise Unavailable(f"no estimable {what} to plot")
    dropped = [var_label(v, c.settings) for v in df.loc[~ok, "variable"]]
    cap = f"{title}; 95% CI, log scale"
    if dropped:
        cap += f". Not estimable (separation / infinite CI), not plotted: {', '.join(dropped)}"
    return c.figure(name, forest_plot,
                    ([var_label(v, c.settings) for v in d["variable"]], d[est].to_numpy(float), d["ci_low"].to_numpy(float),
                     d["ci_high"].to_numpy(float)),
                    {"log_scale": True, "ref_line": 1.0, "title": title, "xlabel": xlabel}, alt=title, caption=cap)


def ratio_rows(df: pd.DataFrame, est: str, extra, settings: dict | None = None) -> list:
    """Table rows of a ratio model (variable label from the settings, estimate and CI or
    "not estimable", p, then ``extra(row)``)."""
    rows = []
    ok = estimable(df, est) if len(df) else pd.Series(dtype=bool)
    for (i, r), good in zip(df.iterrows(), ok):
        shown = F.fmt_est_ci(r[est], r["ci_low"], r["ci_high"])
        if r.get("estimable") is False or (not F.missing(r.get("estimable")) and not bool(r.get("estimable"))):
            shown = f"not estimable ({fmt_int(r.get('events'))} events / {fmt_int(r.get('n'))})"
        rows.append([Cell(var_label(r["variable"], settings), cls="lbl"),
                     Cell(shown, cls=None if good else "warn"),
                     fmt_p(r["p_value"]), *extra(r)])
    return rows
