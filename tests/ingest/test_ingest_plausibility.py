"""Issue 18 item 4: implausible is not silent - the CRF's plausibility limits quarantine
the row (or hold the delivery back by the setting), formula cells without a computed
value reject the workbook with a reason, and staff-code fields never carry a patient's
phone or record number."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import zipfile

import pytest

from tests.ingest.test_ingest_support import (
    LAB_COLS,
    PATIENT_COLS,
    centers,
    crf,
    extract,
    one,
    patient_row,
    qrows,
    write_csv,
    write_xlsx,
)
from ibd_pipeline.ingest import UnreadableFileError


def _patients(tmp_path, rows, name="A_patients_20250401.csv", **kw):
    f = write_csv(tmp_path / name, PATIENT_COLS, rows)
    return one(f, "zcmu1", **kw)


def test_an_age_of_299_at_the_start_is_quarantined(tmp_path):
    ex = _patients(tmp_path, [patient_row("M1", birth_date="1725-01-01"), patient_row("M2")])
    assert qrows(ex) == [(2, "birth_date", "implausible_age")]
    m = ex.quarantine["message"].iloc[0]
    assert "0-110 years" in m and "年龄" in m and "1725" not in m
    assert ex.valid["source_row"].tolist() == [3]


def test_a_follow_up_in_2099_is_after_the_delivery_date(tmp_path):
    ex = _patients(tmp_path, [patient_row("M1", last_followup_date="2099-01-01"), patient_row("M2")])
    assert qrows(ex) == [(2, "last_followup_date", "date_after_delivery")]
    assert "2025-04-01" in ex.quarantine["message"].iloc[0]


def test_a_stop_after_the_last_follow_up_is_quarantined(tmp_path):
    ex = _patients(tmp_path, [patient_row("M1", upa_stop_date="2024-12-20", upa_stop_reason="inefficacy",
                                          last_followup_date="2024-12-01"), patient_row("M2")])
    assert qrows(ex) == [(2, "upa_stop_date", "exposure_after_followup")]


def test_an_adverse_event_in_2099_is_quarantined(tmp_path):
    cols = ["mrn", "abstractor_id", "onset_date", "term", "serious", "led_to_discontinuation"]
    f = write_csv(tmp_path / "A_adverse_events_20250401.csv", cols,
                  [["M1", "inv1", "2099-03-01", "rash", "false", "false"], ["M1", "inv1", "2024-03-01", "rash", "false", "false"]])
    ex = one(f, "zcmu1")
    assert qrows(ex) == [(2, "onset_date", "date_after_delivery")]


def test_an_adjudication_dated_2099_is_quarantined(tmp_path):
    p = centers()["zcmu1"]
    fields = list(crf().table("adjudications").fields)
    row = {"mrn": "M1", "table": "patients", "record_key": "M1", "field": "sex", "resolved_value": "M",
           "reviewer_id": "REV01", "decided_on": "2099-01-01"}
    f = write_csv(tmp_path / "ADJ_adjudications_20250401.csv", [p.header_for("adjudications", c) for c in fields],
                  [[row.get(c, "") for c in fields]])
    ex = one(f, "zcmu1")
    assert ("decided_on", "date_after_delivery") in [(fl, r) for _, fl, r in qrows(ex)]


def test_the_block_setting_holds_the_whole_delivery_back(tmp_path):
    c = crf()
    raw = {**c.raw, "plausibility": {**c.raw["plausibility"], "on_fail": "block"}}
    blocking = dataclasses.replace(c, raw=raw)
    f = write_csv(tmp_path / "A_patients_20250401.csv", PATIENT_COLS,
                  [patient_row("M1"), patient_row("M2", birth_date="1725-01-01")])
    with pytest.raises(UnreadableFileError) as ei:
        extract(f, "zcmu1", crf=blocking)
    assert "implausible_age" in ei.value.problem and "row 3" in ei.value.problem and "block" in ei.value.problem


@pytest.mark.parametrize("value", ["13812345678", "ZY03102594", "2010898307"])
def test_a_phone_or_record_number_in_a_staff_code_field_is_quarantined(tmp_path, value):
    ex = _patients(tmp_path, [patient_row("M1", abstractor_id=value), patient_row("M2")])
    assert qrows(ex) == [(2, "abstractor_id", "identifier")]
    assert value not in ex.quarantine["message"].iloc[0]
    assert ex.quarantine["value"].iloc[0] == value  # kept only in the working warehouse's quarantine


def test_a_chinese_staff_code_is_accepted(tmp_path):
    ex = _patients(tmp_path, [patient_row("M1", abstractor_id="录入员1")])
    assert ex.quarantine.empty


def _drop_cached_values(path):
    """Rewrite a workbook as a program that does not calculate saves it: formulas kept,
    their cached values removed."""
    with zipfile.ZipFile(path) as z:
        items = {n: z.read(n) for n in z.namelist()}
    for n, data in items.items():
        if n.startswith("xl/worksheets/"):
            items[n] = re.sub(rb"(</f>)<v>[^<]*</v>", rb"\1", data)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in items.items():
            z.writestr(n, data)


def _lab_workbook(path, cached):
    """Two zju2 lab rows whose value is the formula =40+41 (cached value ``cached``)."""
    import xlsxwriter

    p = centers()["zju2"]
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("检验")
    for j, c in enumerate(LAB_COLS):
        ws.write_string(0, j, p.header_for("labs", c))
    for i in (1, 2):
        ws.write_row(i, 0, ["Z1", "r"])
        ws.write_datetime(i, 2, dt.datetime(2024, 3, i), wb.add_format({"num_format": "yyyy-mm-dd"}))
        ws.write_row(i, 3, ["血沉"])
        ws.write_formula(i, 4, "=40+41", None, cached)
        ws.write_row(i, 5, ["mm/h"])
    wb.close()
    return path


def test_formula_cells_without_a_computed_value_reject_the_workbook(tmp_path):
    path = _lab_workbook(tmp_path / "A_20250401.xlsx", 0)
    assert one(path, "zju2").valid["value"].tolist() == [0.0, 0.0]  # what a naive read makes of it
    _drop_cached_values(path)
    with pytest.raises(UnreadableFileError) as ei:
        extract(path, "zju2")
    assert "E2" in ei.value.problem and "E3" in ei.value.problem and "recalculate" in ei.value.problem


def test_a_workbook_with_computed_formula_values_is_read(tmp_path):
    path = _lab_workbook(tmp_path / "A_20250401.xlsx", 81)
    assert one(path, "zju2").valid["value"].tolist() == [81.0, 81.0]
