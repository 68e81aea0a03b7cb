"""Rule names of extraction and validation (STUDY.md Workflow 1-2) and their labels.

Every quarantine row carries one of these names in its ``rule`` column; the delivery
report shows the Chinese and English label next to it.
"""

from __future__ import annotations

# rule name -> (English label, Chinese label)
RULES: dict[str, tuple[str, str]] = {
    "required": ("required value missing", "必填项缺失"),
    "type": ("value of the wrong type (not a number / date / yes-no)", "数据类型错误（非数字/日期/是否）"),
    "code": ("value not in the code list", "取值不在编码表内"),
    "range": ("value outside the allowed range", "取值超出允许范围"),
    "unique_key": ("duplicate record (same key as an earlier row)", "重复记录（与前面某行主键相同）"),
    "unit": ("unit not accepted for this test", "该检验项目的单位不被接受"),
    "stop_reason_required": ("a stop date needs a stop reason", "有停药日期时必须填写停药原因"),
    "stop_after_start": ("stop date before start date", "停止日期早于开始日期"),
    "followup_after_start": ("last follow-up before the upadacitinib start", "末次随访日期早于乌帕替尼开始日期"),
    "score_matches_diagnosis": (
        "score of the other diagnosis (HBI only for CD, Mayo only for UC)",
        "评分与诊断不符（HBI仅用于CD，Mayo仅用于UC）",
    ),
    "event_after_birth": ("date before the patient's birth date", "日期早于患者出生日期"),
    "patient_known": ("patient not in this round's patients table", "患者不在本轮患者表中"),
}

ROW_RULES = ("required", "type", "code", "range", "unit")
CROSS_FIELD_RULES = ("stop_reason_required", "stop_after_start", "followup_after_start", "event_after_birth")
CROSS_TABLE_RULES = ("score_matches_diagnosis", "event_after_birth", "patient_known")

QUARANTINE_COLUMNS = [
    "center",
    "round",
    "table_name",
    "file_name",
    "sheet",
    "row_number",
    "patient_id",
    "field",
    "value",
    "rule",
    "message",
    "delivery_id",
]


def empty_quarantine():
    import pandas as pd

    q = pd.DataFrame({c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS})
    q["row_number"] = q["row_number"].astype("int64")
    return q


# ------------------------------------------------------------------ reasons (issue 18 item 1, issue 12 item 3)
# A reason names row, field and rule and says what is accepted, in Chinese and in
# English; it never quotes the delivered value (that stays in the working warehouse's
# quarantine ``value`` column only: STUDY.md "Privacy").
_EXAMPLE = {"%Y": "2023", "%y": "23", "%H": "14", "%M": "30", "%S": "00"}


def human_date_format(fmt: str) -> tuple[str, str]:
    """A date format as a person writes it: ``%Y/%m/%d`` -> 2023/02/28, ``%Y年%m月%d日`` ->
    2023年2月28日 (the reader accepts unpadded months and days), Excel date cells."""
    if fmt == "excel_date_cell":
        return "Excel日期单元格", "an Excel date cell"
    unpadded = "年" in fmt or "月" in fmt
    text = fmt.replace("%m", "2" if unpadded else "02").replace("%d", "28")
    for k, v in _EXAMPLE.items():
        text = text.replace(k, v)
    return text, text


def human_date_formats(formats) -> tuple[str, str]:
    shown = [human_date_format(f) for f in formats]
    return "、".join(z for z, _ in shown), ", ".join(e for _, e in shown)


def reason(row, hdr: str, zh: str, en: str) -> str:
    """The text of one quarantine row: "第12行，性别 (sex)：… / the value in row 12, field sex, …"."""
    return f"第{row}行，{hdr}：{zh} / the value in row {row}, field {hdr}, {en}"
