"""Delivery file names follow each center's profile pattern."""

from __future__ import annotations

import pytest

from tests.ingest.test_ingest_support import centers
from ibd_pipeline.config import load_crf
from ibd_pipeline.ingest import DeliveryName, parse_delivery_name

CRF = load_crf()


@pytest.mark.parametrize(
    "center,name,expected",
    [
        ("zcmu1", "A_patients_20250401.csv", DeliveryName("A", "patients", "2025-04-01")),
        ("zcmu1", "B_adverse_events_20241231.csv", DeliveryName("B", "adverse_events", "2024-12-31")),
        ("hzfph", "ADJ_adjudications_20250615.csv", DeliveryName("ADJ", "adjudications", "2025-06-15")),
        ("zju2", "A_20250401.xlsx", DeliveryName("A", None, "2025-04-01")),
        ("zju2", "ADJ_20250401.xlsx", DeliveryName("ADJ", None, "2025-04-01")),
    ],
)
def test_good_names(center, name, expected):
    assert parse_delivery_name(centers()[center], name, crf=CRF) == expected


@pytest.mark.parametrize(
    "center,name,words",
    [
        ("zcmu1", "../x.csv", "folder"),
        ("zcmu1", "../A_patients_20250401.csv", "folder"),
        ("zcmu1", "sub/A_patients_20250401.csv", "folder"),
        ("zcmu1", "sub\\A_patients_20250401.csv", "folder"),
        ("zcmu1", "A_patients_20250401.csv\n", "control"),
        ("zcmu1", "A_pat\x00ients_20250401.csv", "control"),
        ("zcmu1", "C_patients_20250401.csv", "round"),
        ("zcmu1", "A_patient_20250401.csv", "table"),
        ("zcmu1", "A_adjudications_20250401.csv", "ADJ"),
        ("zcmu1", "ADJ_labs_20250401.csv", "ADJ"),
        ("zcmu1", "A_patients_20251301.csv", "calendar"),
        ("zcmu1", "A_patients_2025041.csv", "8 digits"),
        ("zcmu1", "A_patients_20250401.xlsx", "pattern"),
        ("zcmu1", "A_patients_20250401.csv.bak", "pattern"),
        ("zju2", "A_20250401.csv", "pattern"),
        ("zju2", "A_labs_20250401.xlsx", "pattern"),
        ("zcmu1", "", "no name"),
    ],
)
def test_bad_names(center, name, words):
    with pytest.raises(ValueError) as ei:
        parse_delivery_name(centers()[center], name, crf=CRF)
    assert words in str(ei.value)
