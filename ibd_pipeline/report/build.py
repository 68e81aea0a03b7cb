"""The study report: one self-contained HTML file (figures embedded as base64 PNG,
inline CSS, no JavaScript, no external resources) built from the warehouse's
``analytics`` tables. See :func:`build_report`.

This module only orchestrates: the sections are ``report/sections/`` (registry
:data:`~ibd_pipeline.report.sections.SECTIONS`), their shared context
``report/context.py``, labels ``report/labels.py``, figures ``report/figures.py``, the
privacy guard ``report/privacy.py``, the key numbers ``report/key_numbers.py`` and the
page skeleton ``report/templates/report.html.j2`` (jinja2, with ``report.css`` inlined)."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import re
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import duckdb
import jinja2
import pandas as pd
import yaml
from markupsafe import Markup

from .context import ReportContext, study_centers
from .data import Warehouse
from .figures import DPI, FigureCache, place_figures, render_all, workers_for
from .fmt import DASH
from .key_numbers import key_items, key_numbers
from .labels import diagnosis_labels
from .labels import group_labels as _group_labels  # noqa: F401 - the name tests and callers import from here
from .privacy import privacy_guard
from .privacy import privacy_guard as _privacy_guard  # noqa: F401 - the name tests and callers import from here
from .published import load_published
from .sections import OPTIONAL_SECTIONS, SECTION_IDS, SECTIONS

__all__ = ["DPI", "SECTION_IDS", "ReportResult", "build_report"]

log = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"  # in report/templates/, with the report.css it inlines


@cache
def _page() -> jinja2.Template:
    """The page template (head with the inlined CSS, key-numbers box, nav, sections,
    footer); autoescape on: every value is escaped unless it is Markup (the section
    bodies, already escaped by report/fmt.py)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("ibd_pipeline.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template(TEMPLATE)


def _scope(settings: dict, centers: list[str]) -> str:
    """What the results are given for: "Pooled across centers, by UC, CD and overall", or
    "One center (ahmu), CD patients" in a single-center study of one diagnosis."""
    dxs = diagnosis_labels(settings)
    where = f"One center ({centers[0]})" if len(centers) == 1 else "Pooled across centers"
    return where + ", " + (f"by {', '.join(dxs)} and overall" if len(dxs) > 1 else f"{dxs[0]} patients")


def _text(v) -> str:
    """A page value as text (None is empty, as in report/fmt.py's esc)."""
    return "" if v is None else str(v)


@dataclass
class ReportResult:
    path: Path
    sections: list[str]
    figures: dict[str, bytes]
    key_numbers: dict
    unavailable: dict[str, list[str]] = field(default_factory=dict)  # section -> reasons
    published_comparison: pd.DataFrame | None = None
    seconds: float = 0.0


def build_report(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    settings: dict,
    *,
    published: dict | None = None,
    generated_at: str | None = None,
    workers: int | None = None,
    figure_cache: FigureCache | None = None,
) -> ReportResult:
    """Write the study report (one self-contained HTML file) from the warehouse's
    ``analytics`` tables to ``out``.

    ``settings``: the study settings (``study.yaml``) the report states and uses for
    labels, orderings and thresholds; when empty, the warehouse's ``ref.settings`` (the
    settings its tables were built with); neither raises ValueError.
    ``published``: the published study's figures (default :func:`load_published`; pass
    ``{}`` to leave the comparison out). ``generated_at``: the timestamp printed (default
    now, UTC). ``workers``: processes drawing the figures (default
    ``$IBD_REPORT_WORKERS`` or min(4, CPUs); 1 = in-process). ``figure_cache``: figures
    drawn before from the same inputs are taken from it (:class:`figures.FigureCache`).
    A missing or empty table
    gives its section or part a "Not available: <reason>" note; the report is always
    written."""
    t0 = time.perf_counter()
    out = Path(out)
    wh = Warehouse(con)
    settings = settings or wh.settings_from_ref()
    if not settings:  # no hidden default study: the caller's settings or the warehouse's own
        raise ValueError("build_report needs the study settings: pass them, or a warehouse with ref.settings")
    published_error = ""
    if published is None:
        try:
            published = load_published()
        except (OSError, yaml.YAMLError) as e:  # missing / unreadable packaged file: that section says so
            published, published_error = {}, f"published figures could not be loaded ({type(e).__name__}: {e})"
    ctx = ReportContext(wh, settings, published)
    ctx.published_error = published_error
    rep = settings.get("report") or {}
    if rep.get("comparisons"):  # the study's published-vs-derived declarations (report/comparisons.py)
        from ..config import settings_path
        from .comparisons import ComparisonConfigError, load_comparisons

        try:
            ctx.comparisons = load_comparisons(settings_path().with_name(rep["comparisons"]))
        except (OSError, yaml.YAMLError, ComparisonConfigError) as e:
            ctx.published_error = f"the study's comparisons could not be loaded ({type(e).__name__}: {e})"
            ctx.published = {}
    wanted = rep.get("sections")
    unknown = [x for x in (wanted or []) if x not in SECTION_IDS]
    if unknown:
        raise ValueError(f"report.sections names unknown sections {unknown} (known: {', '.join(SECTION_IDS)})")
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    bodies: list[tuple[str, str, str]] = []
    for sec in SECTIONS:
        sid, title = sec.id, sec.title
        if wanted is not None and sid not in wanted:
            continue
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
    text = _page().render(
        title=_text(st.get("title", "Study report")), period_start=_text(period.get("start", DASH)),
        period_end=_text(period.get("end", DASH)),
        generated_at=generated_at, key_items=key_items(key, settings), scope=_scope(settings, study_centers(wh)),
        sections=[{"id": sid, "title": title, "body": Markup(body)} for sid, title, body in bodies])

    t_fig = time.perf_counter()
    rendered = render_all(ctx.jobs, workers_for(workers), figure_cache)
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
