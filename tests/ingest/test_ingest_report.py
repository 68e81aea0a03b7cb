"""The coordinator's delivery report (one self-contained HTML page per delivery)."""

from __future__ import annotations

import html

from tests.ingest.test_ingest_support import LAB_COLS, PATIENT_COLS, centers, one, patient_row, write_csv
from ibd_pipeline.config import load_crf
from ibd_pipeline.ingest import cross_table_checks, write_delivery_report


def test_report_lists_rejected_rows_and_escapes(tmp_path):
    rows = [
        ["M1", "a", "2024-03-01", "CRP", "3", "mg/L"],
        ["M1", "a", "2024-03-02", "<script>alert(1)</script>", "3", "mg/L"],
        ["M1", "a", "2024-03-03", "CRP", "-1", "mg/L"],
        ["M1", "a", "2024-03-04", "CRP", "2", "mg/dL & <b>"],
    ]
    ex = one(write_csv(tmp_path / "A_labs_20250401.csv", LAB_COLS, rows), "zcmu1")
    out = tmp_path / "outbox"
    p = write_delivery_report(out, "zcmu1", "A_labs_20250401.csv", [ex], profile=centers()["zcmu1"])
    assert p == out / "A_labs_20250401.csv.report.html"
    text = p.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>" not in text and html.escape("mg/dL & <b>") in text
    for rule, row in (("code", 3), ("range", 4), ("unit", 5)):
        assert f"<code>{rule}</code>" in text
        assert f"<td class=n>{row}</td>" in text
    assert "隔离" in text or "拒绝" in text
    assert "Rejected rows" in text and "被拒绝的行" in text
    # summary: 4 read, 1 accepted, 3 rejected
    assert "<td>labs</td><td></td><td class=n>4</td><td class=n>1</td><td class=n>3</td>" in text


def test_report_for_unreadable_file_and_safe_name(tmp_path):
    p = write_delivery_report(
        tmp_path, "hzfph", "../evil<name>.csv", None, "the file is not valid gb18030 text: <bytes>",
        profile=centers()["hzfph"],
    )
    assert p.parent == tmp_path and p.name.endswith(".report.html") and "/" not in p.name and "<" not in p.name
    text = p.read_text(encoding="utf-8")
    assert "&lt;bytes&gt;" in text and "<bytes>" not in text
    assert "The whole file was rejected" in text and "整个文件未被接受" in text


def test_report_includes_cross_table_rejections(tmp_path):
    pats = one(write_csv(tmp_path / "A_patients_20250401.csv", PATIENT_COLS, [patient_row("M1")]), "zcmu1")
    labs = one(write_csv(tmp_path / "A_labs_20250401.csv", LAB_COLS, [["M1", "a", "2024-03-01", "CRP", "3", "mg/L"],
                                                                     ["M9", "a", "2024-03-01", "CRP", "3", "mg/L"]]),
               "zcmu1")
    _, q = cross_table_checks({"patients": pats.valid, "labs": labs.valid}, crf=load_crf())
    p = write_delivery_report(tmp_path / "o", "zcmu1", "A_labs_20250401.csv", [labs], profile=centers()["zcmu1"],
                              extra_quarantine=q)
    text = p.read_text(encoding="utf-8")
    assert "<code>patient_known</code>" in text
    assert "<td>labs</td><td></td><td class=n>2</td><td class=n>1</td><td class=n>1</td>" in text
