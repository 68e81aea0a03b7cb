"""The per-center status page ``outbox/<center>/index.html`` (Chinese first, English
second): each current file and its state, accepted / kept / rejected counts, open
discrepancies, and what to do next. Rewritten from the warehouse after every load and
every reconciliation of the center, so it never contradicts the warehouse (issue 12).
"""

from __future__ import annotations

import html
from pathlib import Path

import duckdb
import pandas as pd

from .ingest.names import is_worklist_file
from .config import CenterProfile, Crf, DataPaths
from .ingest.report import _CSS, STATE_TEXT as _STATE_TEXT, report_name
from .store import reads
from .store import warehouse as wh
from .privacy import redact

STATUS_PAGE = "index.html"


def _e(x) -> str:
    """Page text: every text passes the privacy redaction (STUDY.md "Privacy"; e.g. a
    withdrawal's free-text reason) before HTML escaping."""
    if x is None or (isinstance(x, float) and x != x) or x is pd.NA:
        return ""
    return html.escape(redact(x), quote=True)


def next_steps(deliveries: pd.DataFrame, notes: pd.DataFrame, open_discrepancies: int, worklists: list[str]) -> list[tuple[str, str]]:
    """(中文, English) things the coordinator should do now, most urgent first."""
    out: list[tuple[str, str]] = []
    d = deliveries
    for r in d[d["status"] == "unreadable"].itertuples(index=False):
        out.append((f"文件 {r.file_name} 无法读取：请按其报告修正后重新提交。",
                    f"{r.file_name} could not be read: correct it as its report says and deliver it again."))
    for r in d[d["status"] == "held"].drop_duplicates("file_name").itertuples(index=False):
        out.append((f"文件 {r.file_name} 行数明显少于当前交付，暂不载入：如确属完整，请通知数据管理员执行 "
                    f"ibd-pipeline confirm {r.center} {r.file_name}；否则请重新提交完整文件。",
                    f"{r.file_name} has far fewer rows than the current delivery and is held: if it is complete, ask the "
                    f"data manager to run `ibd-pipeline confirm {r.center} {r.file_name}`; otherwise deliver the complete file."))
    for r in d[d["status"] == "older_than_current"].drop_duplicates("file_name").itertuples(index=False):
        out.append((f"文件 {r.file_name} 的日期早于当前交付，未载入：请以今天的日期重新命名后提交。",
                    f"{r.file_name} is dated older than the current delivery and was not applied: name it with today's date and deliver it again."))
    rej = d[d["status"].isin(["current", "all_rows_rejected"]) & (d["rows_quarantined"].fillna(0) > 0)]
    for r in rej.drop_duplicates("file_name").itertuples(index=False):
        out.append((f"{r.file_name} 有被拒绝的行：请按报告 {report_name(r.file_name)} 修正，并提交同名规则、日期更新的修正文件。",
                    f"{r.file_name} has rejected rows: correct them as {report_name(r.file_name)} lists and deliver a "
                    "corrected file (same naming, today's date)."))
    if len(notes) and (notes["kind"] == "kept").any():
        out.append(("部分记录的新版本未通过校验，仍使用之前接受的版本（见下表）：请修正这些行后重新提交。",
                    "Some records' new rows failed and they kept their accepted version (listed below): correct those rows and deliver again."))
    if open_discrepancies:
        wl = ", ".join(worklists) or "outbox"
        out.append((f"有 {open_discrepancies} 条待裁定的差异：请在 {wl} 的“裁定值”列填写后，将文件放回本中心的 inbox 文件夹。",
                    f"{open_discrepancies} discrepancies are open: fill in the 裁定值 (resolved value) column of {wl} "
                    "and put the file back into this center's inbox folder."))
    if not out:
        out.append(("目前无需处理。", "Nothing to do now."))
    return out


def write_status_page(con: duckdb.DuckDBPyConnection, paths: DataPaths, profile: CenterProfile, crf: Crf) -> Path:
    """Rewrite ``outbox/<center>/index.html`` from the warehouse."""
    center = profile.id
    wh.ensure_warehouse(con, crf)
    deliveries = reads.center_deliveries(con, center)
    notes = reads.center_notes(con, center)
    withdrawals = reads.center_withdrawals(con, center)
    open_disc = reads.open_discrepancies(con, center)
    outbox = paths.outbox(center)
    outbox.mkdir(parents=True, exist_ok=True)
    worklists = sorted(p.name for p in outbox.iterdir() if p.is_file() and is_worklist_file(profile, p.name))
    staged = {t: reads.count_rows(con, f"staging.{t}", center)
              for t in ("patients", "medications", "surgeries", "assessments", "labs", "adverse_events")}

    title = f"中心状态 Center status - {center}"
    h = ["<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
         f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
         f"<p>{_e(profile.raw.get('name', ''))}</p>",
         "<h2>下一步 What to do next</h2><ol>"]
    h += [f"<li>{_e(zh)}<br>{_e(en)}</li>" for zh, en in next_steps(deliveries, notes, open_disc, worklists)]
    h.append("</ol>")
    n_kept = int((notes["kind"] == "kept").sum()) if len(notes) else 0
    n_absent = int((notes["kind"] == "absent").sum()) if len(notes) else 0
    cur = deliveries[deliveries["status"].isin(["current", "all_rows_rejected"])]
    h += ["<h2>汇总 Summary</h2><table>",
          "<tr><th>仓库中的记录 Records in the warehouse</th><td>" + ", ".join(f"{t} {n}" for t, n in staged.items()) + "</td></tr>",
          f"<tr><th>当前交付接受的行 Rows accepted (current deliveries)</th><td class=n>{int(cur['rows_accepted'].fillna(0).sum())}</td></tr>",
          f"<tr><th>当前交付拒绝的行 Rows rejected (current deliveries)</th><td class=n>{int(cur['rows_quarantined'].fillna(0).sum())}</td></tr>",
          f"<tr><th>保留已接受版本的记录 Records kept at their accepted version</th><td class=n>{n_kept}</td></tr>",
          f"<tr><th>不在最新交付中的记录（已保留）Records not in the latest delivery (kept)</th><td class=n>{n_absent}</td></tr>",
          f"<tr><th>撤回的患者 Withdrawn patients</th><td class=n>{len(withdrawals)}</td></tr>",
          f"<tr><th>待裁定的差异 Open discrepancies</th><td class=n>{open_disc}</td></tr></table>"]
    h += ["<h2>文件 Files</h2><table><tr><th>#</th><th>文件 File</th><th>数据表 Table</th><th>状态 State</th>"
          "<th>读取 Rows read</th><th>接受 Accepted</th><th>拒绝 Rejected</th><th>说明 Note</th></tr>"]
    for r in deliveries.itertuples(index=False):
        zh, en = _STATE_TEXT.get(r.status, (r.status, r.status))
        link = report_name(r.file_name) if (outbox / report_name(r.file_name)).exists() else None
        name = f'<a href="{_e(link)}">{_e(r.file_name)}</a>' if link else _e(r.file_name)
        h.append(f"<tr><td>{_e(r.seq)}</td><td>{name}</td><td>{_e(r.table_name)}</td><td>{_e(zh)}<br>{_e(en)}</td>"
                 f"<td class=n>{_e(r.rows_in)}</td><td class=n>{_e(r.rows_accepted)}</td><td class=n>{_e(r.rows_quarantined)}</td>"
                 f"<td>{_e(r.message)}</td></tr>")
    h.append("</table>")
    if len(notes):
        h += ["<h2>记录说明 Record notes</h2><table><tr><th>交付 Delivery</th><th>数据表 Table</th><th>文件 File</th>"
              "<th>行号 Row</th><th>患者 Patient id</th><th>说明 What happened</th></tr>"]
        h += [f"<tr><td>{_e(r.file_name)}</td><td>{_e(r.table_name)}</td><td>{_e(r.source_file)}</td><td class=n>{_e(r.row_number)}</td>"
              f"<td>{_e(r.patient_id)}</td><td>{_e(r.note)}</td></tr>" for r in notes.head(5000).itertuples(index=False)]
        h.append("</table>")
    if len(withdrawals):
        h += ["<h2>撤回记录 Withdrawals (audit)</h2><table><tr><th>文件 File</th><th>行号 Row</th><th>患者 Patient id</th>"
              "<th>撤回日期 Withdrawn on</th><th>原因 Reason</th><th>登记人 Recorded by</th><th>接收时间 Received</th><th>移除行数 Rows removed</th></tr>"]
        h += [f"<tr><td>{_e(r.file_name)}</td><td class=n>{_e(r.row_number)}</td><td>{_e(r.patient_id)}</td><td>{_e(r.withdrawn_on)}</td>"
              f"<td>{_e(r.reason)}</td><td>{_e(r.recorded_by)}</td><td>{_e(r.received_at)}</td><td class=n>{_e(r.rows_removed)}</td></tr>"
              for r in withdrawals.itertuples(index=False)]
        h.append("</table>")
    h.append("</body></html>")
    path = outbox / STATUS_PAGE
    path.write_text("\n".join(h), encoding="utf-8")
    return path
