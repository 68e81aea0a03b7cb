"""Coordinator feedback: one self-contained HTML page per delivery (Chinese + English)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from ..spreadsheet import neutralise_frame

from ibd_pipeline.config import CenterProfile
from ibd_pipeline.privacy import WITHHELD, phi_suspect, redact, safe_file_name

from .rules import QUARANTINE_COLUMNS, RULES

_CSS = """
body{font-family:"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",Arial,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eef2f7}td.n{text-align:right}.ok{color:#1a7f37}.bad{color:#b42318}.box{border:2px solid #b42318;padding:.8em;background:#fff4f2}
.note{color:#555;font-size:.9em}code{background:#f3f3f3;padding:0 .2em}
"""


STATE_TEXT = {  # delivery state (analytics.deliveries.status) -> (中文, English)
    "current": ("当前交付", "the current delivery of this table"),
    "partly_current": ("部分记录仍有效", "partly current: some of its records are still the accepted version"),
    "superseded": ("已被更新的交付取代", "superseded: every record has a newer accepted version"),
    "all_rows_rejected": ("全部行被拒绝，已接受的记录保留", "every row failed: the accepted records were kept"),
    "held": ("暂不载入，待确认", "held for the coordinator's confirmation"),
    "older_than_current": ("日期早于当前交付，未载入", "dated older than the current delivery: not applied"),
    "withdrawal": ("撤回名单已执行", "withdrawal list applied"),
}


def _e(x) -> str:
    """Page text: every text of the page passes the privacy redaction (STUDY.md "Privacy")
    before HTML escaping."""
    if x is None or (isinstance(x, float) and x != x):
        return ""
    return html.escape(redact(x), quote=True)


# what the "Value" column shows for a value that fails the PHI check
VALUE_WITHHELD = f"{WITHHELD} 已隐去，请在您的文件中按行号和字段查看 / withheld: see this row and field in your own file"


def shown_value(value) -> str:
    """A rejected row's delivered value as the coordinator's report shows it: the value
    itself only when it passes the PHI check of :mod:`ibd_pipeline.privacy` (no
    name-like, phone-like or record-number-like part), else withheld - the row and the
    field stay next to it, so the coordinator finds the value in their own file
    (STUDY.md "Privacy": delivered values never leave the working warehouse unchecked)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return VALUE_WITHHELD if phi_suspect(str(value)) else str(value)


def shown_quarantine(q: pd.DataFrame) -> pd.DataFrame:
    """The quarantine rows as the outbox shows them (page and ``.rejected.csv``): values
    after :func:`shown_value`, messages redacted."""
    return q.assign(
        value=[shown_value(v) for v in q["value"]],
        message=[redact(m) if isinstance(m, str) else m for m in q["message"]],
    )


def report_name(file_name: str) -> str:
    """``<file_name>.report.html``, made safe as a single file name."""
    base = str(file_name).replace("\\", "/").split("/")[-1]
    base = re.sub(r"[^\w.\-]", "_", base).lstrip(".") or "delivery"
    return f"{base}.report.html"


def _field_label(profile: CenterProfile, table: str, field: str) -> str:
    parts = []
    for f in str(field).split("+"):
        try:
            h = profile.header_for(table, f)
        except Exception:  # noqa: BLE001 - unknown table/field: show the canonical name
            h = f
        parts.append(f if h == f else f"{h} ({f})")
    return " + ".join(parts)


def write_delivery_report(
    outbox: Path,
    center: str,
    file_name: str,
    extracts: list | None,
    error: str | None = None,
    *,
    profile: CenterProfile,
    extra_quarantine: pd.DataFrame | None = None,
    max_rows: int = 20_000,
    state: list[str] | None = None,
    sections: list[tuple[str, list[str], list[list]]] | None = None,
) -> Path:
    """Write ``<outbox>/<file_name>.report.html`` (pass the center's outbox folder).

    ``extracts``: the TableExtracts of the file (None when the whole file failed, with
    ``error`` saying why). ``extra_quarantine``: cross-table rejections
    (``cross_table_checks``); the rows of this file are added to the listing.
    At most ``max_rows`` rejected rows are listed in the page; all of them are then
    also written to ``<file_name>.rejected.csv`` next to it. ``state``: one line per
    table saying what the file is now in the warehouse (current, superseded, held...);
    ``sections``: further listings (title, header, rows) - records that kept their
    accepted version, records not in the latest delivery, affected rows of other tables.
    """
    outbox = Path(outbox)
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / report_name(file_name)
    extracts = extracts or []
    qs = [x.quarantine for x in extracts if len(x.quarantine)]
    if extra_quarantine is not None and len(extra_quarantine):
        qs.append(extra_quarantine[extra_quarantine["file_name"] == file_name])
    q = pd.concat(qs, ignore_index=True)[QUARANTINE_COLUMNS] if qs else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    if len(q):
        q = q.drop_duplicates(["table_name", "sheet", "row_number", "field", "rule"])
        order = {(x.table, x.sheet or ""): i for i, x in enumerate(extracts)}
        part = [order.get((t, s or ""), len(order)) for t, s in zip(q["table_name"], q["sheet"])]
        q = q.assign(_p=part).sort_values(["_p", "table_name", "row_number"], kind="stable").drop(columns="_p")

    shown_name = safe_file_name(profile, file_name)
    title = f"数据交付反馈 Delivery report - {shown_name}"
    h: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        "<table>",
        f"<tr><th>中心 Center</th><td>{_e(center)} - {_e(profile.raw.get('name', ''))}</td></tr>",
        f"<tr><th>文件 File</th><td>{_e(shown_name)}</td></tr>",
    ]
    if state:
        h.append("<tr><th>当前状态 State now</th><td>" + "<br>".join(_e(s) for s in state) + "</td></tr>")
    if error is not None:
        h += [
            '<tr><th>结果 Result</th><td class="bad">整个文件未被接受 The whole file was rejected</td></tr></table>',
            '<div class="box"><b>无法读取文件 The file cannot be read:</b><br>',
            f"{_e(error)}</div>",
            "<p>请修正后重新提交该文件。此文件中的任何数据均未被载入。<br>"
            "Please correct the file and deliver it again. Nothing of this file was loaded.</p>",
        ]
    else:
        total_in = sum(x.rows_in for x in extracts)
        rejected_rows = q.drop_duplicates(["table_name", "sheet", "row_number"]).shape[0] if len(q) else 0
        status = (
            '<span class="ok">全部接受 All rows accepted</span>'
            if rejected_rows == 0
            else f'<span class="bad">部分行被拒绝 {rejected_rows} row(s) rejected</span>'
        )
        h += [f"<tr><th>结果 Result</th><td>{status}</td></tr></table>"]
        h += [
            "<h2>各数据表汇总 Summary per table</h2><table>",
            "<tr><th>数据表 Table</th><th>工作表 Sheet</th><th>读取行数 Rows read</th>"
            "<th>接受 Accepted</th><th>拒绝 Rejected</th></tr>",
        ]
        for x in extracts:
            if len(q):
                sel = (q["table_name"] == x.table) & (q["sheet"].fillna("") == (x.sheet or ""))
                rej = int(q.loc[sel, "row_number"].nunique())
            else:
                rej = 0
            h.append(
                f"<tr><td>{_e(x.table)}</td><td>{_e(x.sheet or '')}</td><td class=n>{x.rows_in}</td>"
                f"<td class=n>{x.rows_in - rej}</td><td class=n>{rej}</td></tr>"
            )
        h.append(f"<tr><th>合计 Total</th><td></td><td class=n>{total_in}</td><td class=n>{total_in - rejected_rows}</td>"
                 f"<td class=n>{rejected_rows}</td></tr></table>")
        notes = [w for x in extracts for w in x.warnings]
        if notes:
            h.append("<h2>提示 Notes</h2><ul>")
            h += [f"<li>{_e(w)}</li>" for w in notes]
            h.append("</ul>")
        if len(q):
            used = [r for r in RULES if r in set(q["rule"])]
            h.append("<h2>规则说明 Rules</h2><table><tr><th>规则 Rule</th><th>中文</th><th>English</th></tr>")
            h += [f"<tr><td><code>{_e(r)}</code></td><td>{_e(RULES[r][1])}</td><td>{_e(RULES[r][0])}</td></tr>" for r in used]
            h.append("</table>")
            h.append(
                "<h2>被拒绝的行 Rejected rows</h2>"
                '<p class="note">每行列出一个原因；同一行可能有多个原因。行号与文件中看到的一致（表头为第1行）。<br>'
                "One reason per line; a row may have several. Row numbers are as seen in the file (header = row 1). "
                "Names, phone numbers and medical record numbers are never shown; patients appear by pseudonymous id. "
                f"A value that may identify someone is shown as {WITHHELD}: find it by row and field in your own file.</p>"
            )
            q = shown_quarantine(q)
            shown = q.head(max_rows)
            if len(q) > max_rows:
                csv_path = outbox / (report_name(file_name)[: -len(".report.html")] + ".rejected.csv")
                neutralise_frame(q).to_csv(csv_path, index=False, encoding="utf-8-sig")
                h.append(
                    f'<p class="bad">只显示前 {max_rows} 条，共 {len(q)} 条；完整列表见 Only the first {max_rows} of {len(q)} '
                    f'are shown; the full list is in <a href="{_e(csv_path.name)}">{_e(csv_path.name)}</a>.</p>'
                )
            h.append(
                "<table><tr><th>文件 File</th><th>工作表 Sheet</th><th>行号 Row</th><th>字段 Field</th>"
                "<th>值 Value</th><th>规则 Rule</th><th>原因 Reason</th><th>患者 Patient id</th></tr>"
            )
            for r in shown.itertuples(index=False):
                zh = RULES.get(r.rule, ("", ""))[1]
                h.append(
                    f"<tr><td>{_e(safe_file_name(profile, r.file_name))}</td><td>{_e(r.sheet)}</td><td class=n>{_e(r.row_number)}</td>"
                    f"<td>{_e(_field_label(profile, r.table_name, r.field))}</td><td>{_e(r.value)}</td>"
                    f"<td><code>{_e(r.rule)}</code><br>{_e(zh)}</td><td>{_e(r.message)}</td><td>{_e(r.patient_id)}</td></tr>"
                )
            h.append("</table>")
    for title, header, rows in sections or []:
        h.append(f"<h2>{_e(title)}</h2><p class=note>{len(rows)} 行 rows</p><table><tr>" + "".join(f"<th>{_e(c)}</th>" for c in header) + "</tr>")
        h += ["<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows[:max_rows]]
        h.append("</table>")
    h.append("</body></html>")
    path.write_text("\n".join(h), encoding="utf-8")
    return path
