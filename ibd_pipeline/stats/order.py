"""A stable, non-secret row order for the stochastic procedures (issue 13).

Cross-validation folds, bootstrap resamples, Boruta's forest and the solvers' paths depend
on the order of the rows they are given. Rows read from the warehouse come in an order
that follows the pseudonymous ids, and the ids follow each site's secret key - so the
same data gave another study on another install. :func:`stable_order` sorts the rows by
center, the patient's UPA start (when the frame carries it) and then by every other
column's value (the pseudonymous id excluded): two rows it cannot tell apart are equal
in every value the analysis uses, so their order cannot change a result.
"""

from __future__ import annotations

import math

import pandas as pd

ORDER_COLUMNS = ("center", "upa_start_date")
SECRET_COLUMNS = ("patient_id",)


def _key(v) -> str:
    if v is None or v is pd.NA or v is pd.NaT:
        return "\uffff"  # missing sorts last
    if isinstance(v, float) and math.isnan(v):
        return "\uffff"
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, (bool, int, float)) and not isinstance(v, str):
        return repr(float(v)) if not isinstance(v, bool) else str(int(v))
    return str(v)


def stable_order(df: pd.DataFrame, order_columns=ORDER_COLUMNS, secret_columns=SECRET_COLUMNS) -> pd.DataFrame:
    """A frame in a stable, non-secret row order.

    Parameters
    ----------
    df : DataFrame
    order_columns : sequence of str, default ("center", "upa_start_date")
        Sorted by first (those present).
    secret_columns : sequence of str, default ("patient_id",)
        Never sorted by (they follow the site's pseudonymization key).

    Returns
    -------
    DataFrame
        ``df`` sorted by ``order_columns``, then by every other column's value but
        ``secret_columns`` (missing last); the index is kept, so aligned frames can follow.

    Notes
    -----
    docs/STUDY_RULES.md#privacy and #statistics (issue 13): the seeded procedures give
    the same results whatever the site's key.
    """
    first = [c for c in order_columns if c in df.columns]
    rest = sorted(c for c in df.columns if c not in first and c not in secret_columns)
    if df.empty or not (first or rest):
        return df
    keys = pd.DataFrame({f"k{i}": df[c].map(_key) for i, c in enumerate([*first, *rest])}, index=df.index)
    order = keys.sort_values(list(keys.columns), kind="mergesort").index
    return df.loc[order]
