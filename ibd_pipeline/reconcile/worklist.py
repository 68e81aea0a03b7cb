"""The discrepancy worklist of a center's senior reviewer, as an Excel workbook in the
center's own terms (issue 12 item 3), and the returned workbook read back.

The workbook (``worklist_<yyyymmdd>.xlsx``, profile ``worklists.files``) has
- the worklist sheet (``裁定`` for a Chinese-vocabulary center, ``worklist`` else): one
  row per open discrepancy with the center's headers (its ADJ headers: 病案号, 数据表,
  记录键, 字段, 裁定值, 审核人, 裁定日期), its table names, field headers, code spellings,
  date format and lab units (``center_terms.CenterTerms``); the two rounds' values and
  the unit they are shown in; a frozen header, column widths that fit, a drop-down on
  裁定值 where the field is coded;
- an instructions sheet, Chinese then English: what each column means, what to write,
  the file name and the folder to return it to;
- a hidden sheet holding the drop-down lists.
Every text cell is neutralised against formula injection (``spreadsheet.neutralise``).

The coordinator returns the workbook under the same name to the center's inbox; the
loading reads it (``read_returned_worklist``) through the same profile into the
canonical adjudications frame of a round ADJ delivery. A row is decided when its
审核人 (reviewer) is filled; rows without one stay open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Mapping

import pandas as pd

from ibd_pipeline.config import CenterProfile, Crf
from ibd_pipeline.ingest.errors import UnreadableFileError
from ibd_pipeline.ingest.names import is_worklist_file, worklist_pattern
from ibd_pipeline.pseudonym import patient_id
from ibd_pipeline.reconcile.center_terms import CenterTerms
from ibd_pipeline.reconcile.decisions import OPEN
from ibd_pipeline.reconcile.values import is_missing
from ibd_pipeline.spreadsheet import HEADER_FORMAT, MAX_WIDTH, neutralise, outbox_workbook, print_layout, text_width, unneutralise

ADJ_TABLE = "adjudications"
#: worklist columns in sheet order: the CRF adjudications fields with the context columns
WORKLIST_FIELDS = ["mrn", "table", "record_key", "field", "value_a", "value_b", "unit", "resolved_value", "reviewer_id",
                   "decided_on"]
CONTEXT_HEADERS = {
    "canonical": {"value_a": "value_a (round A)", "value_b": "value_b (round B)", "unit": "unit"},
    "zh": {"value_a": "第一轮值", "value_b": "第二轮值", "unit": "数值单位"},
}
SHEETS = {"canonical": "worklist", "zh": "裁定"}
INSTRUCTIONS_SHEET = "说明 Instructions"
LISTS_SHEET = "lists"
#: the columns the reviewer fills
FILLED = ("resolved_value", "reviewer_id", "decided_on")

#: column -> (中文, English) meaning, for the instructions sheet
MEANING = {
    "mrn": ("本中心的病案号/住院号。", "The patient's record number at this center."),
    "table": ("差异所在的数据表（患者、用药、检验……）。", "The table the discrepancy is in (patients, medications, labs ...)."),
    "record_key": ("记录键：该记录的关键字段，用“|”连接（如 检验日期|检验项目）；患者表为 patient。请勿修改。",
                   "Record key: the record's key fields joined by '|' (e.g. sample date|test); 'patient' for the "
                   "patients table. Do not change it."),
    "field": ("字段（本中心导出文件的列名）；“*”表示整条记录只在一轮中存在。",
              "The field (your export's column header); '*' means the whole record exists in one round only."),
    "value_a": ("第一轮摘录的值（本中心的写法和单位）。", "The value of the first abstraction (round A), as your export writes it."),
    "value_b": ("第二轮摘录的值（本中心的写法和单位）。", "The value of the second abstraction (round B), as your export writes it."),
    "unit": ("检验结果所用的单位：第一轮值、第二轮值和裁定值都以此单位填写。",
             "The unit of a lab value: round A, round B and your resolved value are all in this unit."),
    "resolved_value": ("裁定值：核对病历后填写正确的值，写法与本中心导出文件相同（可从下拉列表选择）；"
                       "值确实缺失时留空；“*”行填“有”（记录存在）或“无”（记录不存在）。",
                       "Resolved value: the correct value after checking the chart, written as your export writes it "
                       "(pick it from the drop-down where there is one); leave it empty when the value is truly missing; "
                       "on a '*' row write whether the record exists (有/present) or not (无/absent)."),
    "reviewer_id": ("审核人：每一条已裁定的行都必须填写；未填写审核人的行视为尚未裁定，保持待裁定状态。",
                    "Reviewer: required on every row you decide; a row without a reviewer is not decided yet and stays open."),
    "decided_on": ("裁定日期，如 {date}；留空则按文件名中的日期。", "Date of the decision, e.g. {date}; empty means the date in the file name."),
}


def _lang(profile: CenterProfile) -> str:
    return "canonical" if profile.raw.get("headers", "canonical") == "canonical" else "zh"


def worklist_headers(profile: CenterProfile) -> dict[str, str]:
    """Worklist column -> its header: the center's ADJ header for CRF fields, the
    context headers in the center's language for the others."""
    ctx = CONTEXT_HEADERS[_lang(profile)]
    return {f: ctx[f] if f in ctx else profile.header_for(ADJ_TABLE, f) for f in WORKLIST_FIELDS}


def worklist_sheet(profile: CenterProfile) -> str:
    return SHEETS[_lang(profile)]


def worklist_file_name(profile: CenterProfile, date: str) -> str:
    ymd = re.sub(r"[-/]", "", str(date))
    if not re.fullmatch(r"\d{8}", ymd):
        raise ValueError(f"worklist date must be YYYYMMDD or YYYY-MM-DD, got {date!r}")
    return worklist_pattern(profile).format(yyyymmdd=ymd)


def worklist_cells(
    discrepancies: pd.DataFrame, center: str, profile: CenterProfile, mrn_of: Mapping[str, str], crf: Crf
) -> pd.DataFrame:
    """The center's open discrepancies as worklist cells in the center's terms (columns
    ``WORKLIST_FIELDS``, text, not yet neutralised; the filled columns empty)."""
    terms = CenterTerms(profile, crf)
    d = discrepancies[(discrepancies["center"] == center) & (discrepancies["status"] == OPEN)]
    unknown = sorted({pid for pid in d["patient_id"] if pid not in mrn_of})
    if unknown:
        raise KeyError(f"{center}: no mrn for {len(unknown)} patient(s) of the worklist, e.g. {unknown[0]}")
    rows = []
    for r in d.itertuples(index=False):
        t, f, k = r.table_name, r.field, r.record_key
        rows.append({
            "mrn": str(mrn_of[r.patient_id]),
            "table": terms.table_label(t),
            "record_key": terms.record_key_label(t, k),
            "field": terms.field_label(t, f),
            "value_a": terms.to_center(t, f, k, r.value_a),
            "value_b": terms.to_center(t, f, k, r.value_b),
            "unit": terms.value_unit(t, f, k),
            "resolved_value": "", "reviewer_id": "", "decided_on": "",
        })
    return pd.DataFrame(rows, columns=WORKLIST_FIELDS, dtype=object)


def worklist_frame(
    discrepancies: pd.DataFrame, center: str, profile: CenterProfile, mrn_of: Mapping[str, str], crf: Crf
) -> pd.DataFrame:
    """``worklist_cells`` neutralised, with the center's headers (what the sheet shows)."""
    cells = worklist_cells(discrepancies, center, profile, mrn_of, crf)
    headers = worklist_headers(profile)
    return pd.DataFrame({headers[f]: [neutralise(str(v)) for v in cells[f]] for f in WORKLIST_FIELDS}, dtype=object)


def write_worklist(
    discrepancies: pd.DataFrame,
    center: str,
    profile: CenterProfile,
    mrn_of: Mapping[str, str],
    out_dir: str | Path,
    date: str,
    *,
    return_to: str | None = None,
    crf: Crf,
) -> Path:
    """Write the center's open discrepancies to ``out_dir`` (the center's outbox) as the
    worklist workbook (module docstring); ``return_to``: the folder the instructions
    name for the return (default ``inbox/<center>/``, the center's inbox in the data
    directory - the same text in every data directory, as the coordinator sees it). Written atomically with the
    outbox file mode; returns the path (also for no open rows: the header only).
    Older worklists of the outbox are removed (this one lists every open discrepancy)."""
    cells = worklist_cells(discrepancies, center, profile, mrn_of, crf)
    out_dir = Path(out_dir)
    path = out_dir / worklist_file_name(profile, date)
    write_worklist_book(cells, profile, path, return_to=return_to, crf=crf)
    for old in out_dir.iterdir():
        if old != path and old.is_file() and is_worklist_file(profile, old.name):
            old.unlink()
    return path


def remove_worklists(profile: CenterProfile, out_dir: str | Path) -> list[str]:
    """Remove the outbox's worklists (no discrepancy is open any more); their names."""
    out_dir = Path(out_dir)
    gone = []
    if out_dir.is_dir():
        for p in out_dir.iterdir():
            if p.is_file() and is_worklist_file(profile, p.name):
                p.unlink()
                gone.append(p.name)
    return gone


def write_worklist_book(
    cells: pd.DataFrame, profile: CenterProfile, path: Path, *, return_to: str | None = None, crf: Crf
) -> Path:
    """Write worklist ``cells`` (columns ``WORKLIST_FIELDS``, the center's terms; the
    filled columns may hold the reviewer's decisions) as the workbook at ``path``."""
    import xlsxwriter

    terms = CenterTerms(profile, crf)
    headers = worklist_headers(profile)
    path = Path(path)
    return_to = return_to or f"inbox/{profile.id}/"
    rows = [[neutralise("" if is_missing(v) else str(v)) for v in r] for r in cells[WORKLIST_FIELDS].itertuples(index=False)]
    with outbox_workbook(path) as wb:
        head = wb.add_format(HEADER_FORMAT)
        fill_head = wb.add_format({**HEADER_FORMAT, "bg_color": "#FFF2CC"})
        text = wb.add_format({"num_format": "@"})
        ws = wb.add_worksheet(worklist_sheet(profile))
        lists = wb.add_worksheet(LISTS_SHEET)
        info = wb.add_worksheet(INSTRUCTIONS_SHEET)
        ws.activate()
        for c, f in enumerate(WORKLIST_FIELDS):
            h = headers[f]
            ws.write_string(0, c, h, fill_head if f in FILLED else head)
            width = max([text_width(h)] + [text_width(r[c]) for r in rows[:5000]])
            ws.set_column(c, c, min(MAX_WIDTH, max(10, width + 2)), text)
        list_col: dict[tuple, int] = {}
        rv = WORKLIST_FIELDS.index("resolved_value")
        for r, row in enumerate(rows, start=1):
            for c, v in enumerate(row):
                if v != "":
                    ws.write_string(r, c, v)
            rec = dict(zip(WORKLIST_FIELDS, cells.iloc[r - 1]))
            t = terms.table_from(str(rec["table"]))
            choices = terms.choices(t, terms.field_from(t, str(rec["field"])))
            if choices:
                key = tuple(choices)
                if key not in list_col:
                    j = list_col[key] = len(list_col)
                    for i, ch in enumerate(choices):
                        lists.write_string(i, j, neutralise(ch))
                j = list_col[key]
                col = xlsxwriter.utility.xl_col_to_name(j)
                ws.data_validation(r, rv, r, rv, {
                    "validate": "list", "source": f"='{LISTS_SHEET}'!${col}$1:${col}${len(choices)}",
                    "ignore_blank": True, "error_type": "stop",
                    "error_title": "裁定值 / resolved value", "error_message": "请从下拉列表中选择 / pick a value from the list",
                })
        ws.freeze_panes(1, 0)
        print_layout(ws)
        if rows:
            ws.autofilter(0, 0, len(rows), len(WORKLIST_FIELDS) - 1)
        lists.hide()
        _write_instructions(wb, info, terms, headers, path.name, return_to)
    return path


def _write_instructions(wb, ws, terms: CenterTerms, headers: dict, file_name: str, return_to: str) -> None:
    profile = terms.profile
    bold = wb.add_format({"bold": True})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    title = wb.add_format({"bold": True, "font_size": 14})
    example = (date(2025, 4, 15)).strftime(terms.date_format)
    sheet = worklist_sheet(profile)
    lines: list[tuple[str, str, str]] = [
        ("差异工作表：填写说明", "Discrepancy worklist: what to do", "title"),
        (f"本工作簿列出本中心两轮独立摘录之间尚未裁定的差异（工作表“{sheet}”，每行一条）。"
         "请核对原始病历，在“" + headers["resolved_value"] + "”列填写正确的值，在“" + headers["reviewer_id"]
         + "”列填写您的审核人编号，并填写“" + headers["decided_on"] + "”。",
         f"This workbook lists the open discrepancies between the two independent abstractions of your center "
         f"(sheet '{sheet}', one per row). Check the chart, write the correct value in '{headers['resolved_value']}', "
         f"your reviewer id in '{headers['reviewer_id']}' and the date in '{headers['decided_on']}'.", ""),
        ("填写的值使用本中心导出文件的写法：相同的代码（如 是/否）、日期格式和检验单位。其他列请勿修改。",
         "Write values the way your export does: the same codes (e.g. 是/否 or true/false), date format and lab "
         "units. Do not change the other columns.", ""),
        (f"返回：保存为 Excel 工作簿（.xlsx），文件名保持 {file_name} 不变，放入文件夹 {return_to}（本中心的 inbox）。"
         "下一次运行会读取并应用您的裁定，结果见本中心的状态页 index.html。",
         f"Return: save it as an Excel workbook (.xlsx), keep the file name {file_name}, and put it into the folder "
         f"{return_to} (your center's inbox). The next run reads and applies your decisions; the status page "
         "index.html of your center shows the result.", ""),
        ("可以分批返回：未填写审核人的行保持待裁定，下一份工作表会再次列出。",
         "You may return it in parts: rows without a reviewer stay open and are listed again in the next worklist.", ""),
        ("列", "Column", "title"),
    ]
    r = 0
    ws.set_column(0, 0, 22)
    ws.set_column(1, 2, 70, wrap)
    for zh, en, kind in lines:
        if kind == "title":
            ws.write_string(r, 0, neutralise(zh), title)
            ws.write_string(r, 2, neutralise(en), title)
        else:
            ws.write_string(r, 1, neutralise(zh), wrap)
            ws.write_string(r, 2, neutralise(en), wrap)
        r += 1
    for f in WORKLIST_FIELDS:
        zh, en = MEANING[f]
        ws.write_string(r, 0, neutralise(headers[f]), bold)
        ws.write_string(r, 1, neutralise(zh.format(date=example)), wrap)
        ws.write_string(r, 2, neutralise(en.format(date=example)), wrap)
        r += 1


# ------------------------------------------------------------------ reading a returned worklist
def _cell_text(v) -> str:
    """A cell as text, as the coordinator sees it (date cells ISO, 39.0 -> 39)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v != v:
            return ""
        return str(int(v)) if v.is_integer() else format(v, ".15g")
    if isinstance(v, (datetime, date)):
        return v.isoformat()[:10]
    return unneutralise(str(v)).strip()


def read_worklist_cells(path: Path, profile: CenterProfile, file_name: str | None = None) -> pd.DataFrame:
    """The worklist sheet of a (returned) worklist as text cells, columns renamed to
    ``WORKLIST_FIELDS`` (missing ones empty), with ``source_row`` (the sheet row
    number, header = 1). Raises UnreadableFileError for a workbook without the sheet
    or without the key columns."""
    from ibd_pipeline.ingest.readers import open_workbook

    file_name = file_name or Path(path).name
    wb = open_workbook(Path(path), file_name)
    sheet = worklist_sheet(profile)
    if sheet not in wb.sheet_names:
        raise UnreadableFileError(
            file_name, f"the worklist has no sheet {sheet!r}; return the workbook the pipeline wrote, with its sheets "
            f"/ 工作簿中没有工作表“{sheet}”：请返回系统生成的工作表。")
    rows = wb.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
    if not rows:
        raise UnreadableFileError(file_name, f"sheet {sheet!r} is empty / 工作表“{sheet}”为空。")
    header = [_cell_text(h) for h in rows[0]]
    by_header = {h: f for f, h in worklist_headers(profile).items()}
    by_header.update({f: f for f in WORKLIST_FIELDS})
    pos = {by_header[h]: j for j, h in enumerate(header) if h in by_header}
    missing = [worklist_headers(profile)[f] for f in ("mrn", "table", "record_key", "field", "resolved_value", "reviewer_id")
               if f not in pos]
    if missing:
        raise UnreadableFileError(
            file_name, "columns missing in the worklist: " + ", ".join(missing) + " / 工作表缺少列：" + "、".join(missing))
    out = []
    for i, r in enumerate(rows[1:], start=2):
        cells = {f: _cell_text(r[j]) if j < len(r) else "" for f, j in pos.items()}
        if any(cells.values()):
            out.append({**{f: cells.get(f, "") for f in WORKLIST_FIELDS}, "source_row": i})
    return pd.DataFrame(out, columns=WORKLIST_FIELDS + ["source_row"], dtype=object)


@dataclass
class ReturnedWorklist:
    """A returned worklist as a round ADJ delivery: ``valid`` (canonical adjudications
    staging frame), ``quarantine`` (rows that cannot be decisions), and the undecided rows."""

    file_name: str
    sheet: str
    rows_in: int
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    undecided: int
    warnings: list[str] = field(default_factory=list)


def read_returned_worklist(
    path: Path, profile: CenterProfile, *, key: bytes, file_name: str, delivery_id: str, crf: Crf,
    file_date: str | None = None,
) -> ReturnedWorklist:
    """Read a returned worklist through the center's profile: every decided row (审核人
    filled) becomes one canonical adjudication (mrn pseudonymized at once; table, field,
    record key and resolved value turned from the center's terms into canonical text;
    decided_on empty -> ``file_date``). Rows without a reviewer are undecided (counted,
    a warning). A decided row whose table or decision date cannot be read is quarantined
    (rule ``code`` / ``type``); whether its value fits the field is checked when the
    decisions are applied (``apply_adjudications``)."""
    from ibd_pipeline.ingest.rules import QUARANTINE_COLUMNS, empty_quarantine

    terms = CenterTerms(profile, crf)
    cells = read_worklist_cells(path, profile, file_name)
    headers = worklist_headers(profile)
    sheet = worklist_sheet(profile)
    valid, bad = [], []
    undecided = 0

    def reject(r, f, rule, zh, en):
        bad.append({"center": profile.id, "round": "ADJ", "table_name": ADJ_TABLE, "file_name": file_name, "sheet": sheet,
                    "row_number": int(r["source_row"]), "patient_id": pid, "field": f, "value": r[f] or None,
                    "rule": rule, "message": f"第 {r['source_row']} 行 {headers[f]}：{zh} / row {r['source_row']}, "
                                            f"{headers[f]} ({f}): {en}", "delivery_id": delivery_id})

    for r in cells.to_dict("records"):
        if r["reviewer_id"] == "":
            undecided += 1
            continue
        pid = patient_id(key, profile.id, r["mrn"]) if r["mrn"] else None
        table = terms.table_from(r["table"])
        if pid is None:
            reject(r, "mrn", "required", "病案号为空", "the record number is empty")
            continue
        if table not in crf.data_tables:
            reject(r, "table", "code", "不是本中心的数据表名称", "is not one of this center's table names")
            continue
        decided = r["decided_on"] or (file_date or "")
        try:
            decided_on = pd.Timestamp(datetime.strptime(terms.from_center("adjudications", "decided_on", "", decided), "%Y-%m-%d"))
        except ValueError:
            reject(r, "decided_on", "type", f"不是日期（请写成 {terms.to_center('patients', 'birth_date', '', '2025-04-15')}）",
                   f"is not a date (write it like {terms.to_center('patients', 'birth_date', '', '2025-04-15')})")
            continue
        fld = terms.field_from(table, r["field"])
        rk = terms.record_key_from(table, r["record_key"])
        valid.append({
            "round": "ADJ", "delivery_id": delivery_id, "source_file": file_name, "source_row": int(r["source_row"]),
            "patient_id": pid, "table_name": table, "record_key": rk, "field": fld,
            "resolved_value": terms.from_center(table, fld, rk, r["resolved_value"]) or None,
            "reviewer_id": r["reviewer_id"], "decided_on": decided_on,
        })
    cols = ["round", "delivery_id", "source_file", "source_row", "patient_id", "table_name", "record_key", "field",
            "resolved_value", "reviewer_id", "decided_on"]
    frame = pd.DataFrame(valid, columns=cols)
    frame["decided_on"] = pd.to_datetime(frame["decided_on"])
    frame["source_row"] = frame["source_row"].astype("int64")
    quarantine = pd.DataFrame(bad, columns=QUARANTINE_COLUMNS) if bad else empty_quarantine()
    warnings = []
    if undecided:
        warnings.append(f"{undecided} row(s) without a reviewer ({headers['reviewer_id']}) are not decided yet and stay open "
                        f"/ {undecided} 行未填写{headers['reviewer_id']}，尚未裁定，保持待裁定")
    return ReturnedWorklist(file_name, sheet, len(cells), frame, quarantine, undecided, warnings)
