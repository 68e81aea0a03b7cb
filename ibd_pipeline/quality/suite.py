"""Running the quality suite with Great Expectations (1.x) and building its Data Docs.

Every check is one expectation in its own expectation suite (suite name = check_id) and
validation definition, so the Data Docs index lists each check with its status, and
Great Expectations holds the metrics of one expectation at a time (see
``_GxSession.validate`` for the BASIC / COMPLETE passes). Frames are built one
after the other (``quality.frames``) with only the columns their checks read, validated,
and released.

great_expectations takes seconds to import: it is imported here only inside functions.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ibd_pipeline.config import Crf

from .checks import QualityCheck, load_check_config, quality_checks
from .frames import MissingInput, build_frame

log = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "check_id", "category", "subcategory", "table_name", "column_name", "description",
    "n_rows", "n_failed", "failed_share", "threshold", "severity", "passed", "examples", "gx_expectation",
]
#: Column descriptions of analytics.quality_results (for its YAML documentation).
RESULT_COLUMN_DOCS = {
    "check_id": "Check id, <category>_<rule>_<table>_<column> (also the GX expectation suite name and a valid Dagster asset-check name)",
    "category": "Kahn category: conformance, completeness or plausibility",
    "subcategory": "Kahn subcategory: value, relational, computational (conformance); value, relational (completeness); atemporal, temporal (plausibility)",
    "table_name": "Core table the check is about",
    "column_name": "Column(s) the check is about",
    "description": "The rule in words ('[not run: <table> not available]' when an input was missing)",
    "n_rows": "Rows the rule applies to (rows with the compared values present)",
    "n_failed": "Rows failing the rule",
    "failed_share": "n_failed / n_rows (0 when n_rows is 0)",
    "threshold": "Largest failing share tolerated (checks.yaml / study.yaml quality.thresholds)",
    "severity": "ok (failed_share <= threshold), warn (<= error threshold = threshold x error_multiple unless set), error (beyond)",
    "passed": "severity is ok",
    "examples": "JSON list of up to 10 failing rows: patient_id, the row's date/key columns and the values compared",
    "gx_expectation": "Great Expectations expectation type validated",
}
SUMMARY_FILE = "quality_summary.html"
_MIDNIGHT = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T]00:00:00(?:\.0+)?)?$")
_NULL_TEXT = {"NaT", "nan", "NaN", "None", "<NA>", "null"}


# ------------------------------------------------------------------ values
def _plain(v, numeric: bool = False):
    """A JSON-friendly value: dates as YYYY-MM-DD, missing as None, numpy as Python."""
    if v is None:
        return None
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        ts = pd.Timestamp(v)
        if pd.isna(ts):
            return None
        return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return None if math.isnan(v) else v
    if isinstance(v, str):
        if v in _NULL_TEXT:
            return None
        m = _MIDNIGHT.match(v)
        if m:
            return m.group(1)
        if numeric:
            try:
                f = float(v)
                return int(f) if f.is_integer() else f
            except ValueError:
                return v
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _example_row(d: dict, order: list[str], numeric: set[str]) -> dict:
    keys = [k for k in order if k in d] + [k for k in d if k not in order]
    return {k: _plain(d[k], k in numeric) for k in keys}


# ------------------------------------------------------------------ GX session
def asset_name(frame: str) -> str:
    """The GX data asset of a frame: ``core.patients@dx!=CD`` -> ``core_patients__dx_not_CD``."""
    s = frame.replace("!=", "_not_").replace("=", "_").replace("+", "_with_").replace("@", "__").replace(".", "_")
    return re.sub(r"[^A-Za-z0-9_]", "_", s)


class _GxSession:
    """An ephemeral Great Expectations context with a pandas data source and, when
    ``docs_dir`` is given, a filesystem Data Docs site there."""

    def __init__(self, docs_dir: Path | None, cfg: dict):
        import great_expectations as gx

        self.gx = gx
        self.cfg = cfg
        gcfg = cfg.get("gx") or {}
        self.site = gcfg.get("data_docs_site", "ibd_quality")
        self.ctx = gx.get_context(mode="ephemeral")
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        except Exception:  # pragma: no cover - cosmetic only
            pass
        self.docs_dir = Path(docs_dir) if docs_dir is not None else None
        if self.docs_dir is not None:
            self.docs_dir.mkdir(parents=True, exist_ok=True)
            self.ctx.add_data_docs_site(
                site_name=self.site,
                site_config={
                    "class_name": "SiteBuilder",
                    "show_how_to_buttons": False,
                    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(self.docs_dir.resolve())},
                    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                },
            )
        self.source = self.ctx.data_sources.add_pandas("ibd_quality")
        self.batch_defs: dict[str, object] = {}
        self.complete_max_failures = int(gcfg.get("complete_max_failures", 5000))
        self.n_examples = int(gcfg.get("examples", 10))
        sl = gcfg.get("example_slice_rows") or {}
        self.slice_min, self.slice_max = int(sl.get("min", 2000)), int(sl.get("max", 2_000_000))
        self.fingerprint = bool(gcfg.get("batch_fingerprint", False))

    @contextmanager
    def no_fingerprint(self):
        """Skip GX's md5 fingerprint of every in-memory batch (``pandas_data_fingerprint``,
        a hash of the whole frame per validation: half the run time on large frames) unless
        checks.yaml gx.batch_fingerprint is true. The module constant is restored after."""
        if self.fingerprint:
            yield
            return
        try:
            from great_expectations.execution_engine import pandas_execution_engine as pee
        except ImportError:  # pragma: no cover
            yield
            return
        old = getattr(pee, "HASH_THRESHOLD", None)
        if old is None:  # pragma: no cover - another GX version
            yield
            return
        pee.HASH_THRESHOLD = 0
        try:
            yield
        finally:
            pee.HASH_THRESHOLD = old

    def batch_definition(self, frame: str):
        if frame not in self.batch_defs:
            asset = self.source.add_dataframe_asset(asset_name(frame))
            self.batch_defs[frame] = asset.add_batch_definition_whole_dataframe("all_rows")
        return self.batch_defs[frame]

    def _rf_complete(self, check: QualityCheck, df: pd.DataFrame) -> dict:
        idx = [c for c in check.example_columns if c in df.columns]
        rf = {"result_format": "COMPLETE", "partial_unexpected_count": self.n_examples, "return_unexpected_index_query": False}
        if idx:
            rf["unexpected_index_column_names"] = idx
        return rf

    def validate(self, check: QualityCheck, df: pd.DataFrame) -> dict:
        """Validate one check on its frame; the quality_results row.

        First pass: result_format BASIC (counts; no per-row Python work, whatever the
        number of failures). If rows fail and there are at most gx.complete_max_failures of
        them, the expectation is validated again with COMPLETE and
        unexpected_index_column_names (patient_id and the row's date/key columns): that
        result replaces the first in the Data Docs and gives the examples. Beyond the cap
        the examples come from COMPLETE validations of row slices."""
        gx = self.gx
        missing = [c for c in check.columns if c not in df.columns]
        if missing:
            n = max(len(df), 1)  # a missing column is a failure even on an empty frame
            return _row(check, n, n, [{"error": f"column(s) missing from {check.frame}: {', '.join(missing)}"}])
        # GX gets only the columns of this expectation and of its examples (no data copied):
        # its domain copies then scale with those columns only
        keep = list(dict.fromkeys([*check.columns, *(c for c in check.example_columns if c in df.columns)]))
        df = pd.DataFrame({c: df[c] for c in keep}, copy=False)
        bd = self.batch_definition(check.frame)
        suite = self.ctx.suites.add(gx.ExpectationSuite(name=check.check_id, meta={"kahn_category": check.category}))
        suite.add_expectation(check.to_gx())
        vd = self.ctx.validation_definitions.add(gx.ValidationDefinition(name=check.check_id, data=bd, suite=suite))
        basic = {"result_format": "BASIC", "partial_unexpected_count": self.n_examples}
        r = vd.run(batch_parameters={"dataframe": df}, result_format=basic).results[0]
        error = _exception_message(r.exception_info)
        if error is not None:  # the expectation could not be evaluated (e.g. text in a number column)
            n = max(len(df), 1)
            return _row(check, n, n, [{"error": error}], r.expectation_config.type)
        result = r.result or {}
        if "element_count" in result:
            n = int(result["element_count"] or 0) - int(result.get("missing_count") or 0)
            failed = int(result.get("unexpected_count") or 0)
        else:  # aggregate expectation (e.g. the dtype of a whole column)
            col = check.columns[0] if check.columns else None
            n = int(df[col].notna().sum()) if col else len(df)
            failed = 0 if r.success else n
        examples: list[dict] = []
        if failed:
            rows: list = []
            if "element_count" in result and failed <= self.complete_max_failures:
                self._forget(check.check_id)
                r2 = vd.run(batch_parameters={"dataframe": df}, result_format=self._rf_complete(check, df)).results[0]
                if _exception_message(r2.exception_info) is None:
                    rows = (r2.result or {}).get("unexpected_index_list") or []
            elif "element_count" in result:
                rows = self._examples_by_slices(check, df, failed)
            examples = self._examples(check, df, result, rows)
        return _row(check, n, failed, examples, r.expectation_config.type)

    def _forget(self, check_id: str) -> None:
        """Drop the stored first-pass result of a check (its COMPLETE result follows)."""
        try:
            store = self.ctx.validation_results_store
            for key in store.list_keys():
                if getattr(getattr(key, "expectation_suite_identifier", None), "name", None) == check_id:
                    store.remove_key(key)
        except Exception:  # pragma: no cover - the Data Docs then show both passes
            log.debug("could not drop the first-pass result of %s", check_id, exc_info=True)

    def _examples(self, check: QualityCheck, df: pd.DataFrame, result: dict, rows: list) -> list[dict]:
        order = list(dict.fromkeys([*check.example_columns, *check.columns]))
        numeric = {c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])}
        rows = [r for r in rows if isinstance(r, dict)][: self.n_examples]
        if rows:
            return [_example_row(r, order, numeric) for r in rows]
        if "observed_value" in result:
            return [{"column": check.columns[0] if check.columns else None, "observed_type": result["observed_value"],
                     "expected": check.kwargs.get("type_list") or check.kwargs.get("type_")}]
        values = result.get("partial_unexpected_list") or []
        cols = check.columns
        out = []
        for v in values[: self.n_examples]:
            if isinstance(v, dict):
                out.append(_example_row(v, order, numeric))
            elif isinstance(v, (list, tuple)) and len(v) == len(cols):
                out.append(_example_row(dict(zip(cols, v)), order, numeric))
            else:
                out.append(_example_row({cols[0] if cols else "value": v}, order, numeric))
        return out

    def _examples_by_slices(self, check: QualityCheck, df: pd.DataFrame, failed: int) -> list[dict]:
        """Failing rows of a large frame: the expectation re-validated with COMPLETE on
        successive row slices sized for about 5 x examples failures each (bounded)."""
        n = len(df)
        size = int(min(max(math.ceil(5 * self.n_examples * n / max(failed, 1)), self.slice_min), self.slice_max))
        rf = self._rf_complete(check, df)
        bd = self.batch_definition(check.frame)
        found: list[dict] = []
        for start in range(0, n, size):
            part = df.iloc[start : start + size]
            r = bd.get_batch(batch_parameters={"dataframe": part}).validate(check.to_gx(), result_format=rf)
            found += (r.result or {}).get("unexpected_index_list") or []
            if len(found) >= self.n_examples:
                break
        return found

    def build_docs(self, pages: list | None = None) -> Path | None:
        """The Data Docs site: ``pages`` (GX resource identifiers) or every page, and the
        index of everything in the context's stores."""
        if self.docs_dir is None:
            return None
        self.ctx.build_data_docs(site_names=[self.site], resource_identifiers=pages or None)
        return self.docs_dir / "index.html"


def _exception_message(info) -> str | None:
    """The message of an exception GX caught while validating (its exception_info is either
    one record or one record per failed metric), None if there was none."""
    if not isinstance(info, dict):
        return None
    records = [info] if "raised_exception" in info or "exception_message" in info else [v for v in info.values() if isinstance(v, dict)]
    for rec in records:
        if rec.get("raised_exception") or rec.get("exception_message"):
            msg = str(rec.get("exception_message") or "exception")
            return msg[:500]
    return None


def _row(check: QualityCheck, n: int, failed: int, examples: list, gx_type: str | None = None) -> dict:
    share = failed / n if n else (1.0 if failed else 0.0)
    sev = check.severity(share)
    return {
        "check_id": check.check_id,
        "category": check.category,
        "subcategory": check.subcategory,
        "table_name": check.table,
        "column_name": check.column,
        "description": check.description,
        "n_rows": int(n),
        "n_failed": int(failed),
        "failed_share": float(share),
        "threshold": float(check.threshold),
        "severity": sev,
        "passed": sev == "ok",
        "examples": json.dumps(examples, default=str),
        "gx_expectation": gx_type or check.gx_expectation,
    }


def result_metadata(row: pd.Series | dict) -> dict:
    """Plain metadata of one quality_results row (for a Dagster AssetCheckResult:
    wrap ``examples`` in ``MetadataValue.json``)."""
    r = dict(row)
    return {
        "category": r["category"],
        "subcategory": r["subcategory"],
        "table_name": r["table_name"],
        "column_name": r["column_name"],
        "description": r["description"],
        "n_rows": int(r["n_rows"]),
        "n_failed": int(r["n_failed"]),
        "failed_share": float(r["failed_share"]),
        "threshold": float(r["threshold"]),
        "severity": r["severity"],
        "gx_expectation": r["gx_expectation"],
        "examples": json.loads(r["examples"]) if r["examples"] else [],
    }


SEVERITY_ORDER = ("ok", "warn", "error")


def check_group_name(category: str) -> str:
    """The Dagster check that reports one Kahn category of one table."""
    return f"{category}_within_thresholds"


def grouped_results(results: pd.DataFrame) -> list[dict]:
    """The quality results summarised per (table, Kahn category), as one Dagster asset
    check each reports them: ``passed`` when every expectation of the group is within its
    threshold, ``severity`` the worst of the group, ``expectations`` the group's rows
    (failing first, then by check id) as plain metadata rows."""
    out = []
    if results is None or not len(results):
        return out
    for (table, category), g in results.groupby(["table_name", "category"], sort=True):
        rank = g["severity"].map(SEVERITY_ORDER.index)
        g = g.assign(_rank=rank).sort_values(["_rank", "check_id"], ascending=[False, True])
        rows = [result_metadata(r) | {"check_id": r["check_id"]} for r in g.to_dict("records")]
        worst = SEVERITY_ORDER[int(rank.max())]
        out.append({
            "table_name": table,
            "category": category,
            "check_name": check_group_name(category),
            "passed": bool(g["passed"].all()),
            "severity": worst,
            "n_expectations": len(g),
            "n_failed_expectations": int((~g["passed"].astype(bool)).sum()),
            "expectations": rows,
        })
    return out


def _not_run(check: QualityCheck, missing: str) -> dict:
    row = _row(check, 0, 0, [])
    row["description"] = f"{check.description} [not run: {missing} not available]"
    return row


# ------------------------------------------------------------------ entry point
@dataclass
class SuiteRun:
    results: pd.DataFrame
    seconds: float
    docs_index: Path | None
    frame_seconds: dict
    check_seconds: dict


def run_quality_suite(
    tables: dict[str, pd.DataFrame],
    settings: dict,
    crf: Crf,
    docs_dir: Path | str | None = None,
    *,
    checks: list[QualityCheck] | None = None,
    config: dict | None = None,
) -> pd.DataFrame:
    """Validate the core tables with the quality suite; ``analytics.quality_results``.

    ``tables``: ``core.patients``, ``core.medications``, ``core.surgeries``,
    ``core.assessments``, ``core.labs``, ``core.adverse_events`` and, when available,
    ``analytics.eligibility`` (for the baseline-score completeness check). A check whose
    input is absent is reported with n_rows 0 and "[not run: ...]" in its description.
    ``docs_dir``: where to build the Great Expectations Data Docs site (index.html) plus a
    static, script-free ``quality_summary.html``.

    Columns: check_id, category, subcategory, table_name, column_name, description,
    n_rows (rows the rule applies to), n_failed, failed_share, threshold, severity (ok |
    warn | error), passed (severity ok), examples (JSON: up to 10 failing rows with
    patient_id and the date/value columns involved), gx_expectation."""
    return run_quality_suite_detailed(tables, settings, crf, docs_dir, checks=checks, config=config).results


def run_quality_suite_detailed(
    tables: dict[str, pd.DataFrame],
    settings: dict,
    crf: Crf,
    docs_dir: Path | str | None = None,
    *,
    checks: list[QualityCheck] | None = None,
    config: dict | None = None,
) -> SuiteRun:
    """:func:`run_quality_suite` with timings and the Data Docs index path."""
    t0 = time.perf_counter()
    cfg = config if config is not None else load_check_config(settings)
    checks = checks if checks is not None else quality_checks(settings, crf, cfg)
    session = _GxSession(Path(docs_dir) if docs_dir is not None else None, cfg)
    by_frame: dict[str, list[QualityCheck]] = {}
    for c in checks:
        by_frame.setdefault(c.frame, []).append(c)
    rows: dict[str, dict] = {}
    frame_seconds: dict[str, float] = {}
    check_seconds: dict[str, float] = {}
    with session.no_fingerprint():
        _run_frames(session, by_frame, tables, settings, crf, cfg, rows, frame_seconds, check_seconds)
    results = pd.DataFrame([rows[c.check_id] for c in checks], columns=RESULT_COLUMNS)
    index = None
    if docs_dir is not None:
        index = session.build_docs()
        write_summary(Path(docs_dir), results)
    return SuiteRun(results, time.perf_counter() - t0, index, frame_seconds, check_seconds)


def _run_frames(session, by_frame, tables, settings, crf, cfg, rows, frame_seconds, check_seconds) -> None:
    def prepare(frame, needed):
        return build_frame(frame, tables, settings, crf, cfg, needed)

    run_frame_groups(by_frame, prepare, session.validate, rows, frame_seconds, check_seconds)


def run_frame_groups(by_frame: dict, prepare, validate, rows: dict, frame_seconds: dict, check_seconds: dict) -> None:
    """Every check, frame by frame: ``prepare(frame, needed columns)`` gives what the
    checks of that frame validate (a pandas frame, or the name of a database view),
    ``validate(check, prepared)`` its result row. An input missing gives "not run" rows,
    a frame that cannot be built or a check that cannot run an error row: one failure
    never stops the suite. Each prepared frame is released before the next."""
    for frame, group in by_frame.items():
        tf = time.perf_counter()
        needed = set()
        for c in group:
            needed |= set(c.columns) | set(c.example_columns)
        try:
            prepared = prepare(frame, needed)
        except MissingInput as e:
            for c in group:
                rows[c.check_id] = _not_run(c, str(e))
            continue
        except Exception as e:  # e.g. a column the frame is built from is missing
            log.warning("quality frame %s could not be built", frame, exc_info=True)
            for c in group:
                rows[c.check_id] = _row(c, 1, 1, [{"error": f"frame {frame} could not be built: {type(e).__name__}: {e}"[:500]}])
            continue
        for c in group:
            tc = time.perf_counter()
            try:
                rows[c.check_id] = validate(c, prepared)
            except Exception as e:  # one check failing to run must not stop the suite
                log.warning("quality check %s could not run", c.check_id, exc_info=True)
                rows[c.check_id] = _row(c, 1, 1, [{"error": f"{type(e).__name__}: {e}"[:500]}])
            check_seconds[c.check_id] = time.perf_counter() - tc
        del prepared
        frame_seconds[frame] = time.perf_counter() - tf
        log.debug("quality frame %s: %d checks in %.2fs", frame, len(group), frame_seconds[frame])


# ------------------------------------------------------------------ static summary
def _validation_pages(docs_dir: Path) -> dict[str, str]:
    """check_id -> relative path of its newest validation page in the Data Docs."""
    out: dict[str, tuple[str, str]] = {}
    vdir = docs_dir / "validations"
    if not vdir.is_dir():
        return {}
    for page in vdir.glob("*/*/*/*.html"):
        check_id = page.relative_to(vdir).parts[0]
        run_time = page.relative_to(vdir).parts[2]
        if check_id not in out or run_time > out[check_id][0]:
            out[check_id] = (run_time, page.relative_to(docs_dir).as_posix())
    return {k: v[1] for k, v in out.items()}


def write_summary(docs_dir: Path, results: pd.DataFrame) -> Path:
    """``quality_summary.html`` (no scripts, no network: readable offline) and a short
    static block at the top of the Data Docs index.html listing the failed checks (the
    Great Expectations index renders its table with scripts from CDNs)."""
    docs_dir = Path(docs_dir)
    pages = _validation_pages(docs_dir)
    esc = html.escape
    counts = results["severity"].value_counts().to_dict()
    colour = {"ok": "#1b7f3b", "warn": "#b26b00", "error": "#b00020"}

    def link(cid: str) -> str:
        p = pages.get(cid)
        return f'<a href="{esc(p)}">{esc(cid)}</a>' if p else esc(cid)

    body = []
    for _, r in results.iterrows():
        ex = json.loads(r["examples"]) if r["examples"] else []
        ex_txt = "<br>".join(esc(json.dumps(e, ensure_ascii=False)) for e in ex[:10])
        body.append(
            f"<tr><td>{link(r['check_id'])}</td><td>{esc(r['category'])}</td><td>{esc(r['subcategory'])}</td>"
            f"<td>{esc(str(r['table_name']))}</td><td>{esc(str(r['column_name'] or ''))}</td><td>{esc(r['description'])}</td>"
            f"<td>{r['n_failed']} / {r['n_rows']}</td><td>{r['failed_share']:.2%}</td><td>{r['threshold']:.2%}</td>"
            f"<td style=\"color:{colour.get(r['severity'], '#000')};font-weight:bold\">{esc(r['severity'])}</td>"
            f"<td><code>{esc(r['gx_expectation'])}</code></td><td style=\"font-size:85%\">{ex_txt}</td></tr>"
        )
    page = (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Data quality - summary</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}"
        "th{background:#f0f0f0}</style></head><body>"
        "<h1>Data quality of the core tables (Kahn framework)</h1>"
        f"<p>{len(results)} checks: {counts.get('ok', 0)} ok, {counts.get('warn', 0)} warn, {counts.get('error', 0)} error. "
        "Severity: ok when the failing share is within the threshold, warn up to the error threshold, error beyond. "
        "Check ids link to the Great Expectations validation page (<a href=\"index.html\">Data Docs index</a>).</p>"
        "<table><tr><th>check</th><th>category</th><th>subcategory</th><th>table</th><th>column</th><th>rule</th>"
        "<th>failed / rows</th><th>failed share</th><th>threshold</th><th>severity</th><th>expectation</th>"
        "<th>examples (first failing rows)</th></tr>" + "".join(body) + "</table></body></html>"
    )
    target = docs_dir / SUMMARY_FILE
    target.write_text(page, encoding="utf-8")

    index = docs_dir / "index.html"
    if index.exists():
        bad = results[results["severity"] != "ok"]
        items = "".join(
            f"<li>{link(r['check_id'])} - {esc(r['severity'])}: {r['n_failed']} of {r['n_rows']} rows "
            f"({esc(r['description'])}; <code>{esc(r['gx_expectation'])}</code>)</li>"
            for _, r in bad.iterrows()
        )
        block = (
            "<!-- ibd-quality-summary:start --><div style=\"font-family:sans-serif;margin:1em;padding:0.5em 1em;"
            "border:1px solid #ccc\"><b>Quality suite:</b> "
            f"{len(results)} checks, {counts.get('ok', 0)} ok, {counts.get('warn', 0)} warn, {counts.get('error', 0)} error - "
            f"<a href=\"{SUMMARY_FILE}\">summary table (works offline)</a>"
            + (f"<ul>{items}</ul>" if items else "") + "</div><!-- ibd-quality-summary:end -->"
        )
        text = index.read_text(encoding="utf-8")
        text = re.sub(r"<!-- ibd-quality-summary:start -->.*?<!-- ibd-quality-summary:end -->", "", text, flags=re.S)
        m = re.search(r"<body[^>]*>", text)
        if m:
            text = text[: m.end()] + block + text[m.end():]
            index.write_text(text, encoding="utf-8")
    return target
