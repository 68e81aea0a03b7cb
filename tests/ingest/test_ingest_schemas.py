"""Pandera schemas generated from the CRF, used on whole canonical frames."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from tests.ingest.test_ingest_support import LAB_COLS, one, write_csv
from ibd_pipeline.ingest import canonical_columns, crf_schema, iter_extract
from ibd_pipeline.ingest.schemas import check_rule
from ibd_pipeline.config import load_crf
from tests.ingest.test_ingest_support import DELIVERY, KEY, centers

CRF = load_crf()


def _labs(**over):
    base = {
        "patient_id": ["P1", "P1", "P2"],
        "abstractor_id": ["a", "a", "a"],
        "sample_date": pd.to_datetime(["2024-03-01", "2024-03-01", "2024-03-02"]),
        "test": ["CRP", "CRP", "FC"],
        "value": [1.0, 2.0, 3.0],
        "unit": ["mg/L", "mg/L", "ug/g"],
        "qualifier": [None, None, "<"],
        "value_reported": ["1", "2", "<3"],
        "unit_reported": ["mg/L", "mg/L", "ug/g"],
    }
    base.update(over)
    return pd.DataFrame(base)


def test_schema_checks_a_whole_canonical_frame():
    df = _labs(test=["CRP", "CRP", "XYZ"], value=[1.0, -1.0, 3.0], unit=["mg/L", "mg/dL", "ug/g"])
    with pytest.raises(pa.errors.SchemaErrors) as ei:
        crf_schema("labs", CRF).validate(df, lazy=True)
    fc = ei.value.failure_cases
    got = {(int(i), *check_rule(c, col)) for i, c, col in zip(fc["index"], fc["check"], fc["column"])}
    assert (1, "unique_key", "mrn") in got  # second row of key (P1, 2024-03-01, CRP)
    assert (1, "range", "value") in got
    assert (1, "unit", "unit") in got
    assert (2, "code", "test") in got


def test_schema_accepts_valid_frame_and_columns_are_canonical(tmp_path):
    crf_schema("labs", CRF).validate(_labs(test=["CRP", "ESR", "FC"], unit=["mg/L", "mm/h", "ug/g"]), lazy=True)
    ex = one(write_csv(tmp_path / "A_labs_20250401.csv", LAB_COLS, [["M1", "a", "2024-03-01", "CRP", "1", "mg/L"]]),
             "zcmu1")
    assert list(ex.valid.columns) == canonical_columns("labs", CRF)
    crf_schema("labs", CRF).validate(ex.valid)


def test_iter_extract_streams_chunks(tmp_path):
    rows = [["M1", "a", f"2024-03-{d:02d}", "CRP", str(d), "mg/L"] for d in range(1, 26)]
    f = write_csv(tmp_path / "A_labs_20250401.csv", LAB_COLS, rows)
    chunks = list(iter_extract(f, centers()["zcmu1"], key=KEY, delivery_id=DELIVERY, crf=CRF, chunk_rows=10))
    assert [c.rows_in for c in chunks] == [9, 10, 6]  # the header is record 1 of the first chunk
    assert [c.last for c in chunks] == [False, False, True]
    assert sum(len(c.valid) for c in chunks) == 25
