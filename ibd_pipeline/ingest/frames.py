"""The frames every ingest step shares: the zero-row canonical frame of a table
(docs/ARCHITECTURE.md, "Canonical frames") and the columns of a failure frame (one row
per failed field of a delivered row: ``pos`` in the chunk, CRF ``field``, quarantine
``rule``, ``message``). Below extract, normalize and validate, which all use them."""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.config import Crf

from .schemas import DTYPES, canonical_columns

FAILURE_COLUMNS = ["pos", "field", "rule", "message"]


def empty_canonical(table: str, crf: Crf) -> pd.DataFrame:
    """A zero-row canonical frame of ``table`` with the canonical dtypes (incl. lineage)."""
    spec = crf.table(table)
    out = {}
    for c in canonical_columns(table, crf):
        f = "mrn" if c == "patient_id" else ("table" if c == "table_name" else c)
        if f in spec.fields and f != "mrn":
            dt = DTYPES[spec.fields[f].type]
            out[c] = pd.Series(dtype=dt)
        elif c == "source_row":
            out[c] = pd.Series(dtype="int64")
        else:
            out[c] = pd.Series(dtype=object)
    return pd.DataFrame(out)
