"""Names, phone numbers and raw medical record numbers never reach any output."""

from __future__ import annotations

import datetime as dt


from tests.ingest.test_ingest_support import PATIENT_COLS, centers, extract, one, patient_row, write_csv, write_xlsx
from ibd_pipeline.ingest import write_delivery_report

NAME, PHONE, MRN, MRN2 = "欧阳娜娜", "13812345678", "MRN-778899", "MRN-55555"


def _all_cells(ex) -> list[str]:
    cells = []
    for df in (ex.valid, ex.quarantine):
        cells += [str(c) for c in df.columns]
        for col in df.columns:
            cells += [str(v) for v in df[col].tolist()]
    cells += list(ex.warnings)
    return cells


def _assert_clean(cells):
    for secret in (NAME, PHONE, MRN, MRN2):
        assert not any(secret in c for c in cells), secret


def test_csv_phi_never_in_valid_or_quarantine(tmp_path):
    rows = [
        patient_row(MRN, patient_name=NAME, phone=PHONE),
        patient_row(MRN, patient_name=NAME, phone=PHONE, sex="X"),  # duplicate key + code failure
        patient_row(MRN2, patient_name=NAME, phone=PHONE, birth_date="bad"),
    ]
    ex = one(write_csv(tmp_path / "A_patients_20250401.csv", PATIENT_COLS, rows), "zcmu1")
    assert len(ex.valid) == 1 and len(ex.quarantine) == 3
    _assert_clean(_all_cells(ex))
    report = write_delivery_report(tmp_path / "out", "zcmu1", "A_patients_20250401.csv", [ex], profile=centers()["zcmu1"])
    _assert_clean([report.read_text(encoding="utf-8")])


def test_xlsx_phi_never_in_outputs(tmp_path):
    p = centers()["zju2"]
    fields = ["mrn", "patient_name", "phone", "abstractor_id", "sex", "birth_date", "diagnosis", "diagnosis_date",
              "upa_start_date", "last_followup_date"]
    header = [p.header_for("patients", f) for f in fields]
    row = [MRN, NAME, PHONE, "r", "男", dt.date(1990, 1, 1), "克罗恩病", dt.date(2010, 1, 1), dt.date(2024, 1, 1),
           dt.date(2024, 6, 1)]
    bad = [MRN2, NAME, PHONE, "", "男", dt.date(1990, 1, 1), "克罗恩病", dt.date(2010, 1, 1), dt.date(2024, 1, 1),
           dt.date(2023, 6, 1)]
    ex = extract(write_xlsx(tmp_path / "A_20250401.xlsx", {"患者": [header, row, row, bad]}), "zju2")
    (pat,) = ex
    assert len(pat.valid) == 1 and set(pat.quarantine["rule"]) == {"unique_key", "required", "followup_after_start"}
    _assert_clean(_all_cells(pat))
    report = write_delivery_report(tmp_path / "out", "zju2", "A_20250401.xlsx", ex, profile=p)
    _assert_clean([report.read_text(encoding="utf-8")])


# ------------------------------------------------------------------ the report's "Value" column
def test_report_withholds_a_value_that_fails_the_phi_check_and_keeps_row_and_field(tmp_path):
    """A name typed into ``sex`` and a phone typed into ``birth_date`` are rejected values:
    the report withholds them (row and field stay, so the coordinator finds them in their
    own file), while a plain wrong code is still shown to be corrected."""
    from ibd_pipeline.ingest.report import VALUE_WITHHELD

    rows = [
        patient_row("M001", sex=NAME),
        patient_row("M002", birth_date=PHONE),
        patient_row("M003", smoking="sometimes"),
        patient_row("M004", height_cm=f"{NAME} {PHONE}"),
    ]
    ex = one(write_csv(tmp_path / "A_patients_20250401.csv", PATIENT_COLS, rows), "zcmu1")
    values = dict(zip(ex.quarantine["row_number"], ex.quarantine["value"]))
    assert values[2] == NAME and values[3] == PHONE  # the working warehouse keeps the value
    report = write_delivery_report(tmp_path / "out", "zcmu1", "A_patients_20250401.csv", [ex], profile=centers()["zcmu1"])
    text = report.read_text(encoding="utf-8")
    _assert_clean([text])
    assert text.count(VALUE_WITHHELD) == 3
    assert "<td>sometimes</td>" in text  # an ordinary bad code is shown
    for row in (2, 3, 4, 5):
        assert f"<td class=n>{row}</td>" in text


def test_rejected_rows_csv_withholds_identifiers_too(tmp_path):
    """Beyond ``max_rows`` the full listing goes to ``.rejected.csv``: the same check applies."""
    rows = [patient_row(f"M{i:03d}", sex=NAME if i % 2 else "Q") for i in range(6)]
    ex = one(write_csv(tmp_path / "A_patients_20250401.csv", PATIENT_COLS, rows), "zcmu1")
    out = tmp_path / "out"
    write_delivery_report(out, "zcmu1", "A_patients_20250401.csv", [ex], profile=centers()["zcmu1"], max_rows=2)
    csv_text = (out / "A_patients_20250401.csv.rejected.csv").read_text(encoding="utf-8-sig")
    _assert_clean([csv_text])
    assert csv_text.count("‹withheld›") == 3 and csv_text.count(",Q,") == 3


def test_report_redacts_identifiers_in_notes_sections_and_the_error(tmp_path):
    """Every text of the page passes the redaction, whatever its source (last line of defence)."""
    p = write_delivery_report(
        tmp_path, "hzfph", "A_patients_20250401.csv", None, f"row 2 starts with {MRN} {NAME}",
        profile=centers()["hzfph"], state=[f"patients: held ({PHONE})"],
        sections=[("kept", ["file", "note"], [["A_patients_20250401.csv", f"{NAME} 2025-04-01 12:30:45"]])],
    )
    text = p.read_text(encoding="utf-8")
    _assert_clean([text])
    assert "2025-04-01 12:30:45" in text  # a time stamp is not a phone number


def test_status_page_redacts_a_withdrawal_reason(tmp_path):
    import duckdb

    from ibd_pipeline.store import warehouse as wh
    from ibd_pipeline.config import data_paths, load_crf
    from ibd_pipeline.status_page import write_status_page

    paths = data_paths(tmp_path / "data").ensure()
    con = duckdb.connect(str(paths.warehouse))
    try:
        wh.ensure_warehouse(con, load_crf())
        cols = [r[0] for r in con.execute("DESCRIBE analytics.withdrawals").fetchall()]
        row = {c: None for c in cols} | {"center": "zcmu1", "file_name": "W_20250401.csv", "row_number": 2,
                                          "patient_id": "Pabc", "reason": f"{NAME}本人电话{PHONE}", "recorded_by": MRN}
        con.execute(f"INSERT INTO analytics.withdrawals ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [row[c] for c in cols])
        text = write_status_page(con, paths, centers()["zcmu1"], load_crf()).read_text(encoding="utf-8")
    finally:
        con.close()
    assert "Withdrawals" in text and "W_20250401.csv" in text
    _assert_clean([text])


def test_redaction_keeps_file_names_and_time_stamps_and_withholds_identifiers():
    from ibd_pipeline.privacy import WITHHELD, redact, safe_file_name

    for kept in ("A_labs_20250401.csv", "B_ae_20250401.csv", "A_20250401.xlsx", "withdrawals_20250601.csv",
                 "received 2025-04-01 12:30:45.123456+00:00", "2025-04-01T08:00", "row 12, field sex",
                 "839 [111-1313]", "(12-1450000)"):
        assert redact(kept) == kept
    assert safe_file_name(centers()["zcmu1"], "A_labs_20250401.csv") == "A_labs_20250401.csv"
    for secret in (PHONE, MRN, "ZY03102594", "ZY20250401", "2019123456", NAME, "0571-88888888"):
        assert redact(f"x {secret} 2025-04-01 12:30") == f"x {WITHHELD} 2025-04-01 12:30"
    assert redact("[1313-111] (0571-8888888)") == f"[{WITHHELD}] ({WITHHELD})"  # not an ascending range


def test_a_sheet_named_by_an_identifier_is_not_quoted(tmp_path):
    import pytest

    from ibd_pipeline.ingest import UnreadableFileError

    p = centers()["zju2"]
    header = [p.header_for("patients", f) for f in ("mrn", "sex")]
    path = write_xlsx(tmp_path / "A_20250401.xlsx", {"患者": [header, [MRN, "男"]], f"{NAME}{PHONE}": [["x"], [MRN]]})
    with pytest.raises(UnreadableFileError) as ei:
        extract(path, "zju2")
    _assert_clean([str(ei.value), ei.value.problem])
    assert "‹withheld›" in ei.value.problem
