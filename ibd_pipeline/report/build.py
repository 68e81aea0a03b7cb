"""The study report: one self-contained HTML file (figures embedded as base64 PNG,
inline CSS, no JavaScript, no external resources) built from the warehouse's
``analytics`` tables. See :func:`build_report`.

This module only orchestrates: the sections are ``report/sections/`` (registry
:data:`~ibd_pipeline.report.sections.SECTIONS`), their shared context
``report/context.py``, labels ``report/labels.py``, figures ``report/figures.py``, the
privacy guard ``report/privacy.py`` and the key numbers ``report/key_numbers.py``."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from . import fmt as F
from .context import ReportContext
from .data import Warehouse
from .figures import DPI, place_figures, render_all, workers_for
from .fmt import DASH, esc
from .key_numbers import key_box, key_numbers
from .labels import group_labels as _group_labels  # noqa: F401 - the name tests and callers import from here
from .privacy import privacy_guard
from .privacy import privacy_guard as _privacy_guard  # noqa: F401 - the name tests and callers import from here
from .published import load_published
from .sections import OPTIONAL_SECTIONS, SECTION_IDS, SECTIONS

__all__ = ["DPI", "SECTION_IDS", "ReportResult", "build_report"]

log = logging.getLogger(__name__)


@dataclass
class ReportResult:
    path: Path
    sections: list[str]
    figures: dict[str, bytes]
    key_numbers: dict
    unavailable: dict[str, list[str]] = field(default_factory=dict)  # section -> reasons
    published_comparison: pd.DataFrame | None = None
    seconds: float = 0.0



CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;background:#fff;line-height:1.4}
header{background:#1f4e79;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px;font-size:1.5em}
header p{margin:2px 0;opacity:.9}
main{padding:8px 32px 48px;max-width:1400px}
nav{background:#f3f6f9;border:1px solid #d8e0e8;padding:8px 16px;margin:16px 0;columns:3;font-size:.92em}
nav a{display:block;color:#1f4e79;text-decoration:none;padding:1px 0}
section{border-top:2px solid #1f4e79;margin-top:28px;padding-top:4px}
h2{color:#1f4e79;margin:.4em 0}
h3{color:#333;margin:1.2em 0 .4em;font-size:1.08em}
.table-wrap{overflow-x:auto;margin:6px 0 4px}
table.data{border-collapse:collapse;font-size:.86em;min-width:40%}
table.data caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0;color:#333}
table.data th,table.data td{border:1px solid #d0d7de;padding:3px 7px;vertical-align:top;text-align:left}
table.data th{background:#eef2f6}
table.data tr.first td{border-top:2px solid #9fb3c8}
table.data tr.pooled td{background:#fbf3e6;font-weight:600}
table.data td.lbl{font-weight:600}
table.data.settings td:first-child{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:nowrap}
td.mono{font-family:ui-monospace,Menlo,Consolas,monospace}
td.em{font-style:italic}
td.warn{background:#fff3cd}
td.small-cell{background:#fdecea}
sup.dagger{color:#b00020;font-weight:700;margin-left:1px}
td.match{color:#1a7f37;font-weight:600}
td.mismatch{color:#b00020;font-weight:700}
tr.mismatch-row td{background:#fdf0ef}
td.muted{color:#777}
p.note{font-size:.84em;color:#555;margin:2px 0 8px}
p.na{background:#fff3cd;border-left:4px solid #e0a800;padding:6px 10px;margin:8px 0}
p.warn{color:#8a5300;font-weight:600}
p.ok{color:#1a7f37}
div.warn-box{border:1px solid #e0a800;background:#fffbea;padding:4px 12px;margin:8px 0}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.settings-grid{display:flex;flex-wrap:wrap;gap:0 28px;align-items:flex-start}
.settings-grid>div{flex:0 1 auto;max-width:100%}
.grid figure{flex:1 1 560px;max-width:700px}
figure{margin:8px 0}
figure img{max-width:100%;height:auto;border:1px solid #e3e3e3}
figcaption{font-size:.84em;color:#555}
.keys{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.keys div{background:#f3f6f9;border:1px solid #d8e0e8;padding:6px 12px;min-width:140px}
.keys b{display:block;font-size:1.25em;color:#1f4e79}
@media print{
@page{size:A4 landscape;margin:10mm}
body{font-size:9pt}
header{padding:6px 0;color:#000;background:none}
main{padding:0;max-width:none}
nav{display:none}
section{break-before:page;border-top:none}
.table-wrap{overflow:visible}
table.data{width:100%;min-width:0;font-size:7pt;table-layout:auto;break-inside:auto}
table.data th,table.data td{padding:1px 3px;overflow-wrap:anywhere;word-break:normal}
table.data.settings td:first-child{white-space:normal}
table.data thead{display:table-header-group}
table.data tr{break-inside:avoid}
.settings-grid{display:block}
.grid{display:block}
h2,h3{break-after:avoid}
.grid figure{display:inline-block;width:32%;max-width:32%;margin:4px 0;vertical-align:top;break-inside:avoid}
figure img{max-height:60vh}
.keys div{break-inside:avoid}
}
"""


def build_report(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    settings: dict,
    *,
    published: dict | None = None,
    generated_at: str | None = None,
    workers: int | None = None,
) -> ReportResult:
    """Write the study report (one self-contained HTML file) from the warehouse's
    ``analytics`` tables to ``out``.

    ``settings``: the study settings (``study.yaml``) the report states and uses for
    labels and thresholds; when empty, the warehouse's ``ref.settings`` are used.
    ``published``: the published study's figures (default :func:`load_published`; pass
    ``{}`` to leave the comparison out). ``generated_at``: the timestamp printed (default
    now, UTC). ``workers``: processes drawing the figures (default
    ``$IBD_REPORT_WORKERS`` or min(4, CPUs); 1 = in-process). A missing or empty table
    gives its section or part a "Not available: <reason>" note; the report is always
    written."""
    t0 = time.perf_counter()
    out = Path(out)
    wh = Warehouse(con)
    settings = settings or wh.settings_from_ref()
    published_error = ""
    if published is None:
        try:
            published = load_published()
        except (OSError, yaml.YAMLError) as e:  # missing / unreadable packaged file: that section says so
            published, published_error = {}, f"published figures could not be loaded ({type(e).__name__}: {e})"
    ctx = ReportContext(wh, settings, published)
    ctx.published_error = published_error
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    bodies: list[tuple[str, str, str]] = []
    for sec in SECTIONS:
        sid, title = sec.id, sec.title
        if sid in OPTIONAL_SECTIONS and not wh.has(OPTIONAL_SECTIONS[sid]):
            continue
        ctx.section = sid
        body = ctx.part(sec.build, ctx)
        bodies.append((sid, title, body))

    key = key_numbers(ctx)
    if ctx.comparison is not None:
        compared = ctx.comparison[ctx.comparison["match"].notna()]
        key["published_compared"] = int(len(compared))
        key["published_mismatches"] = int((compared["match"] == False).sum())  # noqa: E712
    key["small_cells_flagged"] = ctx.flags

    st = settings.get("study") or {}
    period = st.get("period") or {}
    head = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(st.get('title', 'Study report'))}</title>", f"<style>{CSS}</style></head><body>",
        "<header>", f"<h1>{esc(st.get('title', 'Study report'))}</h1>",
        f"<p>Study report \u2014 study period {esc(period.get('start', DASH))} to {esc(period.get('end', DASH))}; "
        f"generated {esc(generated_at)}</p>",
        "<p>Pooled across centers, by UC, CD and overall. Only aggregate results: no patient identifiers.</p>",
        '<p><a href="catalog.html">Warehouse catalog</a> (every table and column, with its SQL, lineage and tests)</p>',
        "</header><main>",
    ]
    nav = "<nav>" + "".join(f'<a href="#{esc(sid)}">{esc(title)}</a>' for sid, title, _ in bodies) + "</nav>"
    parts = head + [key_box(key), nav]
    for sid, title, body in bodies:
        parts.append(f'<section id="{esc(sid)}">')
        parts.append(F.heading(2, title))
        parts.append(body)
        parts.append("</section>")
    parts.append(f'<footer><p class="note">Generated by ibd_pipeline.report at {esc(generated_at)}.</p>'
                 "</footer></main></body></html>")
    text = "\n".join(parts)

    t_fig = time.perf_counter()
    rendered = render_all(ctx.jobs, workers_for(workers))
    text = place_figures(text, ctx.jobs, rendered, ctx.figures, ctx.unavailable)
    key["figures"] = len(ctx.figures)
    key["figure_seconds"] = round(time.perf_counter() - t_fig, 2)
    key["sections_not_available"] = sorted(ctx.unavailable)

    text, redacted = privacy_guard(text, wh.patient_ids())
    if redacted:
        log.warning("report privacy guard removed %d patient id occurrence(s)", redacted)
    key["privacy_redactions"] = redacted

    def img(m):
        return "data:image/png;base64," + base64.b64encode(ctx.figures[m.group(1)]).decode("ascii")

    text = re.sub(r"@@IMG:([A-Za-z0-9_.-]+)@@", img, text)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    secs = time.perf_counter() - t0
    key["build_seconds"] = round(secs, 2)
    return ReportResult(path=out, sections=[sid for sid, _, _ in bodies], figures=dict(ctx.figures),
                        key_numbers=key, unavailable=ctx.unavailable, published_comparison=ctx.comparison,
                        seconds=secs)
