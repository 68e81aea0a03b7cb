"""Agreement statistics of the double abstraction and the blocking gate."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ibd_pipeline.config import Crf
from ibd_pipeline.reconcile.compare import Comparison
from ibd_pipeline.reconcile.values import compared_fields

ALL = "*"
AGREEMENT_COLUMNS = ["center", "table_name", "field", "n_compared", "n_agree", "pct_agree", "kappa", "icc"]
KAPPA_TYPES = ("code", "bool")
ICC_TYPES = ("int", "float")
#: kappa categories of a cell without a value: field empty vs record absent in that round
MISSING_CATEGORY, ABSENT_CATEGORY = "<missing>", "<absent>"


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa of two raters' labels (same length): (po - pe) / (1 - pe) over the
    contingency table of the union of categories; NaN when undefined (no pairs, or
    chance agreement pe = 1, i.e. both raters used one and the same category only)."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    n = len(a)
    if n == 0:
        return float("nan")
    table = pd.crosstab(pd.Series(a, name="a"), pd.Series(b, name="b"))
    cats = table.index.union(table.columns)
    table = table.reindex(index=cats, columns=cats, fill_value=0).to_numpy(dtype=float)
    po = np.trace(table) / n
    pe = float((table.sum(axis=1) * table.sum(axis=0)).sum()) / (n * n)
    if np.isclose(pe, 1.0):
        return float("nan")
    return float((po - pe) / (1.0 - pe))


def icc_2_1(ratings) -> float:
    """ICC(2,1) of Shrout & Fleiss (1979): two-way random effects, absolute agreement,
    single rater. ``ratings``: n targets x k raters, no missing values.
    (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n); NaN when n < 2 or undefined."""
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2 or np.isnan(x).any():
        return float("nan")
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((x - grand) ** 2).sum() - ss_rows - ss_cols
    bms = ss_rows / (n - 1)
    jms = ss_cols / (k - 1)
    ems = ss_err / ((n - 1) * (k - 1))
    denom = bms + (k - 1) * ems + k * (jms - ems) / n
    if np.isclose(denom, 0.0):
        return float("nan")
    return float((bms - ems) / denom)


def _kappa_labels(values: pd.Series, present: pd.Series) -> np.ndarray:
    lab = values.where(values.notna(), MISSING_CATEGORY).astype(object)
    return lab.where(present, ABSENT_CATEGORY).to_numpy()


def _row(center, table, field, cells: pd.DataFrame, ftype: str | None) -> dict:
    n = int(len(cells))
    k = int(cells["agree"].sum())
    kappa = icc = float("nan")
    if ftype in KAPPA_TYPES:
        kappa = cohen_kappa(_kappa_labels(cells["value_a"], cells["in_a"]), _kappa_labels(cells["value_b"], cells["in_b"]))
    elif ftype in ICC_TYPES:
        pairs = cells[cells["in_a"] & cells["in_b"] & cells["value_a"].notna() & cells["value_b"].notna()]
        icc = icc_2_1(np.column_stack([pairs["value_a"].astype(float), pairs["value_b"].astype(float)]))
    return {
        "center": center, "table_name": table, "field": field, "n_compared": n, "n_agree": k,
        "pct_agree": 100.0 * k / n if n else float("nan"), "kappa": kappa, "icc": icc,
    }


def agreement_table(comparison: Comparison | pd.DataFrame, crf: Crf) -> pd.DataFrame:
    """Percent agreement per center per table per field, per table (field ``*``) and per
    center overall (table ``*``, field ``*``); Cohen's kappa for code and bool fields
    (a cell without a value is its own category, ``<missing>``, or ``<absent>`` when the
    record is absent in that round, so kappa's observed agreement is pct_agree); ICC(2,1)
    for int and float fields over the records present in both rounds with both values
    present. Kappa and ICC are NaN for other types and for the ``*`` rows."""
    cells = comparison.cells if isinstance(comparison, Comparison) else comparison
    rows = []
    table_order = {t: i for i, t in enumerate(crf.data_tables)}
    for center, cc in cells.groupby("center", sort=True):
        tables = sorted(cc["table_name"].unique(), key=lambda t: (table_order.get(t, len(table_order)), t))
        for table in tables:
            tc = cc[cc["table_name"] == table]
            order = list(compared_fields(crf, table)) if table in crf.tables else []
            fields = sorted(tc["field"].unique(), key=lambda f: (order.index(f) if f in order else len(order), f))
            for field in fields:
                fc = tc[tc["field"] == field]
                rows.append(_row(center, table, field, fc, fc["field_type"].iloc[0]))
            rows.append(_row(center, table, ALL, tc, None))
        rows.append(_row(center, ALL, ALL, cc, None))
    out = pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
    return out.astype({"n_compared": "int64", "n_agree": "int64", "pct_agree": float, "kappa": float, "icc": float})


def lowest_fields(agreement: pd.DataFrame, center: str, n: int = 5) -> pd.DataFrame:
    """The center's n fields with the lowest percent agreement (ties: more compared
    first, then table and field name)."""
    f = agreement[(agreement["center"] == center) & (agreement["table_name"] != ALL) & (agreement["field"] != ALL)]
    f = f[f["n_compared"] > 0]
    f = f.sort_values(["pct_agree", "n_compared", "table_name", "field"], ascending=[True, False, True, True])
    return f.head(n).reset_index(drop=True)


def agreement_gate(agreement: pd.DataFrame, center: str, threshold_pct: float) -> tuple[bool, str]:
    """Does the center's overall agreement reach ``threshold_pct``? (below it blocks the
    downstream analysis). A center with nothing compared yet does not pass. The message
    names the center, its overall agreement and the five lowest fields."""
    overall = agreement[(agreement["center"] == center) & (agreement["table_name"] == ALL) & (agreement["field"] == ALL)]
    if overall.empty or int(overall["n_compared"].iloc[0]) == 0:
        return False, (
            f"Center {center}: no sampled patient has been compared yet (no round-B abstraction "
            f"of the sample) - agreement cannot be assessed against the {threshold_pct:g}% threshold."
        )
    row = overall.iloc[0]
    pct = float(row["pct_agree"])
    passed = pct >= threshold_pct
    low = lowest_fields(agreement, center, 5)
    lows = "; ".join(
        f"{r.table_name}.{r.field} {r.pct_agree:.1f}% ({r.n_agree}/{r.n_compared})" for r in low.itertuples()
    )
    verdict = "meets" if passed else "is below"
    return passed, (
        f"Center {center}: overall agreement {pct:.2f}% ({int(row['n_agree'])}/{int(row['n_compared'])} "
        f"fields) {verdict} the {threshold_pct:g}% threshold. Lowest fields: {lows or 'none'}."
    )
