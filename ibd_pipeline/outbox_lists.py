"""The coordinator's lists besides the worklist, as Excel workbooks in the center's own
terms (issue 12 item 3), Chinese first, English second:

- ``reabstraction_sample_<center>.xlsx``: the senior reviewer's sampled charts to
  re-abstract (round B) - the center's record numbers (only the outbox carries them)
  and diagnoses in the center's code spellings;
- ``rejected_rows_<center>.xlsx``: every row of the center's current deliveries that
  was rejected - file, sheet, row, the field under the center's own header, the rule
  and the reason (bilingual; delivered values are not repeated: the row number finds
  them in the center's own file).

Both are written atomically with ``spreadsheet.OUTBOX_FILE_MODE``; every text cell is
neutralised against formula injection.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .config import CenterProfile, Crf
from .spreadsheet import write_table_workbook
from .store import reads

REVIEWER_LIST = "reabstraction_sample_{center}.xlsx"
REJECTED_LIST = "rejected_rows_{center}.xlsx"


def reabstraction_list_name(center: str) -> str:
    return REVIEWER_LIST.format(center=center)


def rejected_list_name(center: str) -> str:
    return REJECTED_LIST.format(center=center)


def _example_name(profile: CenterProfile, rnd: str, table: str) -> str:
    return profile.file_pattern.format(round=rnd, table=table, yyyymmdd="20250601")


def write_reabstraction_list(listing: pd.DataFrame, profile: CenterProfile, out_dir: str | Path,
                             crf: Crf) -> Path:
    """``listing``: ``reconcile.reviewer_list`` (center, mrn, patient_id, diagnosis)."""
    local_dx = {}
    for local, canon in profile.code_map("diagnosis").items():
        local_dx.setdefault(canon, local)
    mrn_h = profile.header_for("patients", "mrn")
    dx_h = profile.header_for("patients", "diagnosis")
    headers = ["中心 Center", f"{mrn_h}" + ("" if mrn_h == "mrn" else " mrn"), f"{dx_h}" + ("" if dx_h == "diagnosis" else " diagnosis"),
               "研究编号 Study id (pseudonymous)"]
    rows = [[r.center, r.mrn, local_dx.get(r.diagnosis, r.diagnosis) if isinstance(r.diagnosis, str) else "", r.patient_id]
            for r in listing.itertuples(index=False)]
    example = _example_name(profile, "B", "patients")
    notes = [
        ("复核摘录名单", "Re-abstraction list"),
        (f"本名单列出本中心随机抽取的 {len(rows)} 份病历（按诊断分层，约 20%）。请由第二名摘录员在不参考第一轮结果的情况下，"
         "独立重新摘录这些患者的全部记录（第二轮 B）。",
         f"These are the {len(rows)} charts of your center drawn at random (about 20%, stratified by diagnosis). A second "
         "abstractor re-abstracts every record of these patients independently, without looking at round A (round B)."),
        (f"按本中心的文件格式交付第二轮文件（例如 {example}），放入本中心的 inbox 文件夹。两轮之间的差异会列在差异工作表"
         "（worklist_*.xlsx）中，由高级审核人裁定。",
         f"Deliver round B in your usual file format (e.g. {example}) into your center's inbox folder. Differences "
         "between the two rounds are listed in the discrepancy worklist (worklist_*.xlsx) for the senior reviewer."),
        ("研究编号是系统生成的假名编号，与状态页和交付反馈中的编号一致。",
         "The study id is the pseudonymous id the status page and the delivery reports use."),
    ]
    return write_table_workbook(Path(out_dir) / reabstraction_list_name(profile.id), "复核名单 sample", headers, rows, notes)


def _field_label(profile: CenterProfile, crf: Crf, table, field) -> str:
    if not isinstance(field, str) or not field:
        return ""
    if isinstance(table, str) and table in crf.tables and field in crf.table(table).fields:
        h = profile.header_for(table, field)
        return h if h == field else f"{h} ({field})"
    return field


def write_rejected_rows(quarantine: pd.DataFrame, profile: CenterProfile, out_dir: str | Path,
                        crf: Crf) -> Path | None:
    """The center's rejected rows (``analytics.quarantine`` rows of the center), one per
    (file, sheet, row, field, rule); None (and an earlier list removed) when there is none."""
    path = Path(out_dir) / rejected_list_name(profile.id)
    if quarantine is None or len(quarantine) == 0:
        path.unlink(missing_ok=True)
        return None
    q = quarantine.drop_duplicates(["file_name", "sheet", "row_number", "field", "rule"])
    q = q.sort_values(["file_name", "sheet", "row_number"], na_position="first", kind="stable")
    local_t = {}
    for local, canon in profile.code_map("table").items():
        local_t.setdefault(canon, local)
    headers = ["文件 File", "工作表 Sheet", "数据表 Table", "行号 Row", "字段 Field", "规则 Rule", "原因 Reason",
               "研究编号 Study id (pseudonymous)"]
    rows = [[r.file_name, r.sheet, local_t.get(r.table_name, r.table_name), r.row_number,
             _field_label(profile, crf, r.table_name, r.field), r.rule, r.message, r.patient_id]
            for r in q.itertuples(index=False)]
    notes = [
        ("被拒绝的行", "Rejected rows"),
        ("本表列出本中心当前交付中未被接受的每一行：文件、工作表、行号（表头为第 1 行）、字段（本中心的列名）、规则和原因。",
         "Every row of your center's current deliveries that was not accepted: file, sheet, row (the header is row 1), "
         "field (your column header), rule and reason."),
        ("请在原文件中更正这些行，并以新的日期重新交付整个文件（同一命名规则），放入本中心的 inbox 文件夹。已接受的记录会保留。",
         "Correct these rows in your file and deliver the whole file again with a new date in its name, into your "
         "center's inbox folder. Records already accepted are kept."),
        ("每份交付的详细反馈见 outbox 中的 <文件名>.report.html，本中心概况见 index.html。",
         "Each delivery's report is <file name>.report.html in the outbox; index.html is your center's status page."),
    ]
    return write_table_workbook(path, "被拒绝的行 rejected", headers, rows, notes)


def write_center_rejected_rows(con, outbox: str | Path, profile: CenterProfile, crf: Crf) -> Path | None:
    """``write_rejected_rows`` from the warehouse's quarantine of the center."""
    return write_rejected_rows(reads.center_quarantine(con, profile.id), profile, outbox, crf)
