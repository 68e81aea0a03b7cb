"""The discrepancy list: every disagreement of the comparison, open or resolved."""

from __future__ import annotations

import numpy as np
import pandas as pd

from typing import Mapping

from ibd_pipeline.config import CenterProfile, Crf
from ibd_pipeline.reconcile.compare import Comparison
from ibd_pipeline.reconcile.decisions import OPEN, RESOLVED, TARGET, read_adjudications, target_key
from ibd_pipeline.reconcile.values import ABSENT, PRESENT, WHOLE_RECORD

DISCREPANCY_COLUMNS = TARGET + ["value_a", "value_b", "resolved_value", "status"]


def _text(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), None)


def discrepancies(
    comparison: Comparison,
    previous: pd.DataFrame | None = None,
    adjudications: pd.DataFrame | None = None,
    *,
    crf: Crf,
    profiles: Mapping[str, CenterProfile],
) -> pd.DataFrame:
    """One row per disagreeing field; a record present in one round only is ONE row with
    field ``*`` and value_a/value_b ``present``/``absent``.

    Status is ``open`` unless
    - ``previous`` (the discrepancy list of an earlier run) had the same discrepancy
      (same target and the same value_a and value_b) ``resolved``: it stays resolved with
      its resolved_value; or
    - a valid adjudication names it: resolved with the adjudicated value in canonical
      text (overrides ``previous``). ``adjudications`` is the ADJ staging frame
      (``center, patient_id, table_name, record_key, field, resolved_value``, ...) or
      the ``resolved`` frame of ``apply_adjudications``. An adjudication whose value
      does not parse for the field (``crf``; vocabularies of
      ``profiles``) or that names no current discrepancy is ignored here -
      ``apply_adjudications`` quarantines it.
    """
    cells = comparison.cells
    dis = cells[~cells["agree"]].reset_index(drop=True)
    dis["_order"] = np.arange(len(dis))  # keeps the comparison's order
    one_sided = ~(dis["in_a"] & dis["in_b"])
    fields = dis.loc[~one_sided, TARGET + ["value_a", "value_b", "_order"]]
    recs = dis[one_sided].drop_duplicates(TARGET[:-1])
    whole = recs[TARGET[:-1] + ["_order"]].assign(
        field=WHOLE_RECORD,
        value_a=np.where(recs["in_a"], PRESENT, ABSENT),
        value_b=np.where(recs["in_b"], PRESENT, ABSENT),
    )
    out = pd.concat([fields, whole], ignore_index=True).sort_values("_order", kind="stable")
    out = out.drop(columns="_order").reset_index(drop=True)
    out["resolved_value"] = None
    out["status"] = OPEN
    out = out.astype({c: object for c in DISCREPANCY_COLUMNS})

    if previous is not None and len(previous):
        prev = previous[previous["status"] == RESOLVED]
        _mark_resolved(out, prev, TARGET + ["value_a", "value_b"])
    if adjudications is not None and len(adjudications) and len(out):
        listed = [target_key(r) for r in out[TARGET].to_dict("records")]
        accepted, _ = read_adjudications(adjudications, listed, crf, profiles)
        decided = pd.DataFrame([dict(zip(TARGET, k), resolved_value=d.text) for k, d in accepted.items()],
                               columns=TARGET + ["resolved_value"])
        _mark_resolved(out, decided, TARGET)
    return out[DISCREPANCY_COLUMNS]


def _mark_resolved(out: pd.DataFrame, decisions: pd.DataFrame, on: list[str]) -> None:
    """Rows of ``out`` matching a decision on the ``on`` columns become resolved with the
    decision's resolved_value (the last decision of a target wins)."""
    if out.empty:
        return
    dec = decisions.drop_duplicates(TARGET, keep="last")
    right = dec[on].apply(_text).fillna("")
    right["_value"] = _text(dec["resolved_value"]).to_numpy()
    m = out[on].apply(_text).fillna("").merge(right, on=on, how="left", indicator=True)
    hit = (m["_merge"] == "both").to_numpy()
    out.loc[hit, "status"] = RESOLVED
    out.loc[hit, "resolved_value"] = m.loc[hit, "_value"].to_numpy()


def unresolved_summary(discrepancies: pd.DataFrame) -> pd.DataFrame:
    """Per center and table: ``n_open``, ``n_resolved``, ``n_total`` discrepancies."""
    d = discrepancies
    if d.empty:
        return pd.DataFrame({"center": [], "table_name": [], "n_open": [], "n_resolved": [], "n_total": []}).astype(
            {"center": object, "table_name": object, "n_open": "int64", "n_resolved": "int64", "n_total": "int64"}
        )
    g = d.assign(_open=d["status"] == OPEN, _res=d["status"] == RESOLVED).groupby(
        ["center", "table_name"], sort=True
    )
    out = g.agg(n_open=("_open", "sum"), n_resolved=("_res", "sum"), n_total=("status", "size")).reset_index()
    return out.astype({"n_open": "int64", "n_resolved": "int64", "n_total": "int64"})
