"""Every validation rule quarantines the right row, field and rule; other rows go on."""

from __future__ import annotations

import pandas as pd

from tests.ingest.test_ingest_support import (
    ASSESS_COLS, LAB_COLS, MED_COLS, PATIENT_COLS, centers, one, patient_row, pid, qrows, write_csv,
)
from ibd_pipeline.config import load_crf
from ibd_pipeline.ingest import cross_table_checks


def _patients(tmp_path, rows):
    return one(write_csv(tmp_path / "A_patients_20250401.csv", PATIENT_COLS, rows), "zcmu1")


def test_required(tmp_path):
    ex = _patients(tmp_path, [patient_row("M1"), patient_row("M2", sex=""), patient_row("", abstractor_id="NA")])
    assert qrows(ex) == [(3, "sex", "required"), (4, "abstractor_id", "required"), (4, "mrn", "required")]
    assert ex.valid["patient_id"].tolist() == [pid("zcmu1", "M1")]
    q = ex.quarantine.set_index(["row_number", "field"])
    assert q.loc[(4, "mrn"), "value"] == "" and pd.isna(q.loc[(4, "mrn"), "patient_id"])


def test_type(tmp_path):
    ex = _patients(tmp_path, [
        patient_row("M1", birth_date="1990-02-30"),
        patient_row("M2", height_cm="1,72"),
        patient_row("M3", eim_eye="maybe"),
        patient_row("M4"),
    ])
    assert qrows(ex) == [(2, "birth_date", "type"), (3, "height_cm", "type"), (4, "eim_eye", "type")]
    assert ex.quarantine["value"].tolist() == ["1990-02-30", "1,72", "maybe"]
    assert ex.valid["source_row"].tolist() == [5]


def test_int_type_and_int_code(tmp_path):
    def a(mrn, **over):
        base = dict(mrn=mrn, abstractor_id="a", visit_date="2024-03-01", hbi_wellbeing="1", hbi_pain="2",
                    hbi_liquid_stools="3", hbi_mass="0", hbi_complications="1", upa_dose_mg="45")
        base.update(over)
        return [base.get(c, "") for c in ASSESS_COLS]
    rows = [a("M1"), a("M2", hbi_pain="2.5"), a("M3", upa_dose_mg="20"), a("M4", hbi_liquid_stools="3.0")]
    ex = one(write_csv(tmp_path / "A_assessments_20250401.csv", ASSESS_COLS, rows), "zcmu1")
    assert qrows(ex) == [(3, "hbi_pain", "type"), (4, "upa_dose_mg", "code")]
    assert ex.valid["hbi_liquid_stools"].tolist() == [3, 3]
    assert str(ex.valid["hbi_pain"].dtype) == "Int64"


def test_code(tmp_path):
    ex = _patients(tmp_path, [patient_row("M1", diagnosis="Crohn"), patient_row("M2", smoking="sometimes"),
                              patient_row("M3")])
    assert qrows(ex) == [(2, "diagnosis", "code"), (3, "smoking", "code")]
    m = ex.quarantine["message"].iloc[0]
    assert "UC" in m and "CD" in m and "IBDU" in m
    # row, field and what is accepted, in Chinese and English; the delivered text only in `value`
    assert "第2行" in m and "row 2, field diagnosis" in m and "编码表" in m and "not a code of the CRF" in m
    assert "Crohn" not in m and ex.quarantine["value"].iloc[0] == "Crohn"


def test_range(tmp_path):
    ex = _patients(tmp_path, [patient_row("M1", weight_kg="251"), patient_row("M2", height_cm="230"),
                              patient_row("M3", height_cm="49.9")])
    assert qrows(ex) == [(2, "weight_kg", "range"), (4, "height_cm", "range")]
    assert ex.quarantine["value"].tolist() == ["251", "49.9"]


def test_unique_key_keeps_first(tmp_path):
    ex = _patients(tmp_path, [patient_row("M1", sex="M"), patient_row("M2"), patient_row(" M1 ", sex="F"),
                              patient_row("M1", sex="F")])
    assert qrows(ex) == [(4, "mrn", "unique_key"), (5, "mrn", "unique_key")]
    assert ex.valid["source_row"].tolist() == [2, 3]
    assert ex.valid["sex"].tolist() == ["M", "M"]
    assert all("row 2" in m for m in ex.quarantine["message"])
    assert ex.quarantine["value"].tolist() == [pid("zcmu1", "M1")] * 2  # never the raw mrn


def test_unique_key_uses_canonical_values(tmp_path):
    p = centers()["hzfph"]
    header = [p.header_for("labs", f) for f in LAB_COLS]
    rows = [["H1", "a", "2024/3/5", "C反应蛋白", "1", "mg/L"], ["H1", "a", "2024年03月05日", "CRP", "2", "mg/L"]]
    ex = one(write_csv(tmp_path / "A_labs_20250401.csv", header, rows, encoding="gb18030"), "hzfph")
    assert qrows(ex) == [(3, "mrn+sample_date+test", "unique_key")]


def test_stop_reason_required_stop_after_start_followup_after_start(tmp_path):
    ex = _patients(tmp_path, [
        patient_row("M1", upa_stop_date="2024-06-01", upa_stop_reason=""),
        patient_row("M2", upa_stop_date="2024-01-01", upa_stop_reason="inefficacy"),
        patient_row("M3", last_followup_date="2023-12-31"),
        patient_row("M4", upa_stop_date="2024-01-10", upa_stop_reason="other", last_followup_date="2024-01-10"),
    ])
    assert qrows(ex) == [
        (2, "upa_stop_reason", "stop_reason_required"),
        (3, "upa_stop_date", "stop_after_start"),
        (4, "last_followup_date", "followup_after_start"),
    ]
    assert ex.valid["source_row"].tolist() == [5]


def test_medication_cross_field_rules(tmp_path):
    rows = [
        ["M1", "a", "infliximab", "2020-01-01", "2021-01-01", "secondary_loss_of_response"],
        ["M1", "a", "adalimumab", "2021-02-01", "2021-08-01", ""],
        ["M1", "a", "vedolizumab", "2022-02-01", "2022-01-01", "intolerance"],
        ["M1", "a", "aspirin", "2022-02-01", "", ""],
    ]
    ex = one(write_csv(tmp_path / "A_medications_20250401.csv", MED_COLS, rows), "zcmu1")
    assert qrows(ex) == [(3, "stop_reason", "stop_reason_required"), (4, "stop_date", "stop_after_start"),
                         (5, "drug", "code")]


def test_row_failing_two_rules_gets_two_rows(tmp_path):
    ex = _patients(tmp_path, [patient_row("M1", sex="X", height_cm="999"), patient_row("M2")])
    assert qrows(ex) == [(2, "height_cm", "range"), (2, "sex", "code")]
    assert ex.valid["source_row"].tolist() == [3]
    assert ex.rows_quarantined == 1


def test_patient_dates_not_before_birth(tmp_path):
    ex = _patients(tmp_path, [patient_row("M1", diagnosis_date="1980-01-01"), patient_row("M2")])
    assert qrows(ex) == [(2, "diagnosis_date", "event_after_birth")]


def test_adjudications_table_name(tmp_path):
    cols = ["mrn", "table", "record_key", "field", "resolved_value", "reviewer_id", "decided_on"]
    rows = [["M1", "labs", "P1|2024-03-05|CRP", "value", "5.3", "rev", "2025-05-01"],
            ["M1", "warehouse", "x", "y", "", "rev", "2025-05-01"]]
    ex = one(write_csv(tmp_path / "ADJ_adjudications_20250501.csv", cols, rows), "zcmu1")
    assert ex.round == "ADJ"
    assert ex.valid["table_name"].tolist() == ["labs"] and "table" not in ex.valid
    assert qrows(ex) == [(3, "table", "code")]


# ------------------------------------------------------------------ cross-table
def _round(tmp_path):
    pats = _patients(tmp_path, [
        patient_row("CD1", diagnosis="CD", birth_date="1990-01-01"),
        patient_row("UC1", diagnosis="UC", birth_date="1990-01-01"),
        patient_row("IB1", diagnosis="IBDU", birth_date="1990-01-01"),
    ])
    def a(mrn, **over):
        base = dict(mrn=mrn, abstractor_id="a", visit_date="2024-03-01")
        base.update(over)
        return [base.get(c, "") for c in ASSESS_COLS]
    assess = one(write_csv(tmp_path / "A_assessments_20250401.csv", ASSESS_COLS, [
        a("CD1", hbi_pain="2", ses_cd="7"),
        a("CD1", visit_date="2024-04-01", mayo_stool="2"),
        a("UC1", mayo_stool="1", mayo_endo="2"),
        a("UC1", visit_date="2024-04-01", hbi_pain="1", hbi_mass="0"),
        a("IB1", mayo_bleeding="1"),
        a("XX9", hbi_pain="1"),
    ]), "zcmu1")
    labs = one(write_csv(tmp_path / "A_labs_20250401.csv", LAB_COLS, [
        ["CD1", "a", "2024-03-01", "CRP", "3", "mg/L"],
        ["CD1", "a", "1989-12-31", "CRP", "3", "mg/L"],
        ["NOPE", "a", "2024-03-01", "CRP", "3", "mg/L"],
    ]), "zcmu1")
    return {"patients": pats.valid, "assessments": assess.valid, "labs": labs.valid}


def test_cross_table_rules(tmp_path):
    tables = _round(tmp_path)
    out, q = cross_table_checks(tables, crf=load_crf())
    got = sorted(zip(q["table_name"], q["row_number"], q["field"], q["rule"]))
    assert got == [
        ("assessments", 3, "mayo_stool", "score_matches_diagnosis"),
        ("assessments", 5, "hbi_mass", "score_matches_diagnosis"),
        ("assessments", 5, "hbi_pain", "score_matches_diagnosis"),
        ("assessments", 6, "mayo_bleeding", "score_matches_diagnosis"),
        ("assessments", 7, "mrn", "patient_known"),
        ("labs", 3, "sample_date", "event_after_birth"),
        ("labs", 4, "mrn", "patient_known"),
    ]
    assert out["assessments"]["source_row"].tolist() == [2, 4]
    assert out["labs"]["source_row"].tolist() == [2]
    assert len(out["patients"]) == 3
    lab_q = q[q["table_name"] == "labs"].set_index("rule")
    assert lab_q.loc["event_after_birth", "value"] == "1989-12-31"
    assert lab_q.loc["event_after_birth", "file_name"] == "A_labs_20250401.csv"
    assert lab_q.loc["patient_known", "value"] == pid("zcmu1", "NOPE")
    assert set(q["center"]) == {"zcmu1"} and set(q["round"]) == {"A"}


def test_cross_table_without_patients_table_knows_no_patient(tmp_path):
    tables = _round(tmp_path)
    del tables["patients"]
    out, q = cross_table_checks(tables, crf=load_crf())
    assert out["labs"].empty and out["assessments"].empty
    assert set(q["rule"]) == {"patient_known"}
