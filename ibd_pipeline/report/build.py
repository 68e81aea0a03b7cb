"""The study report: one self-contained HTML file (figures embedded as base64 PNG,
inline CSS, no JavaScript, no external resources) built from the warehouse's
``analytics`` tables. See :func:`build_report`."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import math
import multiprocessing
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

from . import fmt as F
from .data import Unavailable, Warehouse, flatten_settings
from .fmt import DASH, EN, Cell, esc, fmt_int, fmt_num, fmt_p, fmt_pct, not_available, para, table
from .published import compare_published, load_published

log = logging.getLogger(__name__)

DPI = 110
TIMEPOINTS = ["baseline", "induction", "month6", "month12", "month18"]
TP_LABELS = {"baseline": "Baseline", "induction": "Induction", "month6": "Month 6",
             "month12": "Month 12", "month18": "Month 18"}
DIAGNOSES = ("UC", "CD", "overall")
DX_LABELS = {"UC": "UC", "CD": "CD", "overall": "Overall", "all": "All"}
ENDPOINT_ORDER = ["sf_clinical_remission", "clinical_response", "endoscopic_remission", "endoscopic_response",
                  "biochemical_remission", "crp_normal", "fc_normal"]
ANALYSES = {"complete_case": "Complete case", "nri": "Non-responder imputation (NRI)"}
BIOMARKER_ORDER = ["CRP", "FC", "ESR", "ALB", "VITD25", "WBC", "HB", "PLT", "ALT", "AST", "HDL_TC_RATIO", "LDL"]
BIOMARKER_LABELS = {"CRP": "C-reactive protein", "FC": "Faecal calprotectin", "ESR": "ESR", "ALB": "Albumin",
                    "VITD25": "25(OH) vitamin D", "WBC": "White blood cells", "HB": "Haemoglobin",
                    "PLT": "Platelets", "ALT": "ALT", "AST": "AST", "HDL_TC_RATIO": "HDL / total cholesterol",
                    "LDL": "LDL cholesterol"}
AE_LABELS = {"ck_elevation": "CK elevation", "vte": "Venous thromboembolism (VTE)",
             "mace": "Major adverse cardiovascular event (MACE)", "nmsc": "Non-melanoma skin cancer (NMSC)",
             "liver_enzyme_elevation": "Liver enzyme elevation", "herpes_zoster": "Herpes zoster"}
KM_GROUPS = ("overall", "diagnosis", "albumin_le_35", "bmi_le_18_5")
VAR_LABELS = {
    "N": "Patients, n", "age": "Age at UPA start, years", "male": "Male sex", "bmi": "BMI, kg/m\u00b2",
    "disease_duration_years": "Disease duration, years", "smoking": "Smoking", "montreal_age": "Montreal age (CD)",
    "cd_location": "CD location (Montreal)", "cd_behavior": "CD behaviour (Montreal)", "perianal": "Perianal disease (CD)",
    "uc_extent": "UC extent (Montreal)", "eim_any": "Any extra-intestinal manifestation", "eim_eye": "EIM: eye",
    "eim_skin": "EIM: skin", "eim_joint": "EIM: joint", "eim_other": "EIM: other",
    "surgery_history": "IBD-related surgery before UPA", "n_prior_mechanisms": "Prior advanced mechanisms, n",
    "prior_anti_tnf": "Prior anti-TNF", "prior_anti_integrin": "Prior anti-integrin",
    "prior_anti_il12_23_or_il23": "Prior anti-IL-12/23 or anti-IL-23",
    "prior_jak": "Prior JAK inhibitor", "prior_anti_il17a": "Prior anti-IL-17A",
    "prior_immunosuppressant": "Prior immunosuppressant", "prior_methotrexate": "Prior methotrexate",
    "prior_tacrolimus": "Prior tacrolimus", "prior_tripterygium": "Prior Tripterygium wilfordii",
    "prior_aminosalicylate": "Prior aminosalicylate", "prior_glucocorticoid": "Prior glucocorticoid",
    "prior_een": "Prior exclusive enteral nutrition", "steroid_at_baseline": "Systemic steroid at baseline",
    "concomitant_thalidomide": "Concomitant thalidomide", "concomitant_mesalazine": "Concomitant mesalazine",
    "albumin": "Albumin, g/L", "crp": "CRP, mg/L", "fc": "Faecal calprotectin, \u00b5g/g",
    "bmi_le_18_5": "BMI \u2264 18.5", "albumin_le_35": "Albumin \u2264 35 g/L", "crp_gt_8": "CRP > 8 mg/L",
    "fc_gt_150": "FC > 150 \u00b5g/g",
}
SETTINGS_GROUPS = {
    "study": "Study", "ingestion": "Ingestion and quarantine",
    "reconciliation": "Double-abstraction reconciliation",
    "dtt": "Difficult-to-treat IBD (IOIBD consensus), judged on data before UPA start",
    "eligibility": "Inclusion and exclusion (each excluded patient gets the first reason, in this order)",
    "timepoints": "Time points and windows (days from UPA start = day 0)", "steroids": "Steroid-free definition",
    "endpoints": "Endpoint definitions", "safety": "Safety", "persistence": "Persistence",
    "statistics": "Statistics", "baseline": "Baseline characteristics (Table 1 and covariates)",
}
SECTIONS = [
    ("provenance", "Data provenance"),
    ("flow", "Patient flow"),
    ("table1", "Table 1: baseline characteristics"),
    ("endpoints", "Endpoints"),
    ("biomarkers", "Biomarker trajectories"),
    ("persistence", "Persistence on upadacitinib (Kaplan-Meier)"),
    ("cox", "Cox models of discontinuation"),
    ("predictors", "Predictors of the primary outcome (logistic model)"),
    ("roc", "ROC curve of the logistic model"),
    ("centers", "Center heterogeneity"),
    ("safety", "Safety"),
    ("quality", "Data quality checks"),
    ("published", "Published vs derived"),
    ("settings", "Appendix: settings this report ran with"),
]
SECTION_IDS = [s for s, _ in SECTIONS]
OPTIONAL_SECTIONS = {"quality": "quality_results"}  # only when the table exists


@dataclass
class ReportResult:
    path: Path
    sections: list[str]
    figures: dict[str, bytes]
    key_numbers: dict
    unavailable: dict[str, list[str]] = field(default_factory=dict)  # section -> reasons
    published_comparison: pd.DataFrame | None = None
    seconds: float = 0.0


# ------------------------------------------------------------------ figures
@dataclass
class _Job:
    name: str
    func: object
    args: tuple
    kwargs: dict
    tight: bool
    raw: bool
    section: str
    alt: str
    caption: str


def _render(func, args, kwargs, tight: bool, raw: bool) -> bytes:
    """One figure as PNG bytes (runs in a worker process or in-process)."""
    out = func(*args, **kwargs)
    if raw:
        return out[0] if isinstance(out, tuple) else out
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        out.savefig(buf, format="png", dpi=DPI, bbox_inches="tight" if tight else None,
                    metadata={"Software": None})
    finally:
        plt.close(out)
    return buf.getvalue()


def _workers(requested: int | None) -> int:
    if requested is None:
        env = os.environ.get("IBD_REPORT_WORKERS", "").strip()
        requested = int(env) if env.isdigit() else min(4, os.cpu_count() or 1)
    return max(1, int(requested))


def _render_all(jobs: list[_Job], workers: int) -> dict[str, bytes | Exception]:
    """Render every figure; with ``workers`` > 1 in forked worker processes (the
    figure functions are pure), falling back to in-process rendering for anything the
    pool could not do."""
    results: dict[str, bytes | Exception] = {}
    # fork (Linux only: macOS system frameworks are not fork-safe) keeps the imported
    # matplotlib / lifelines, so workers start in milliseconds
    if workers > 1 and len(jobs) > 2 and sys.platform.startswith("linux"):
        try:
            from concurrent.futures import ProcessPoolExecutor

            from ibd_pipeline.forking import release_free_memory

            release_free_memory()  # the workers share fewer pages with the parent

            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)),
                                     mp_context=multiprocessing.get_context("fork")) as ex:
                futs = [(j, ex.submit(_render, j.func, j.args, j.kwargs, j.tight, j.raw)) for j in jobs]
                for j, f in futs:
                    try:
                        results[j.name] = f.result()
                    except Exception:  # noqa: BLE001 - retried in-process below
                        pass
        except Exception as e:  # noqa: BLE001 - no pool: render in-process
            log.warning("report figures: process pool unavailable (%s: %s); rendering in-process", type(e).__name__, e)
    for j in jobs:
        if j.name in results:
            continue
        try:
            results[j.name] = _render(j.func, j.args, j.kwargs, j.tight, j.raw)
        except Exception as e:  # noqa: BLE001 - the figure becomes a "not available" note
            log.exception("report figure %s failed", j.name)
            results[j.name] = e
    return results


# ------------------------------------------------------------------ context
class _Ctx:
    def __init__(self, wh: Warehouse, settings: dict, published: dict | None):
        self.wh = wh
        self.settings = settings
        self.published = published
        st = settings.get("statistics") or {}
        self.small = int(st.get("small_cell_below", 5))
        self.alpha = float(st.get("alpha", 0.05))
        self.figures: dict[str, bytes] = {}
        self.jobs: list[_Job] = []
        self.unavailable: dict[str, list[str]] = {}
        self.section = ""
        self.flags = 0
        self.nri_same: list[str] = []
        self.comparison: pd.DataFrame | None = None

    # figures ------------------------------------------------------
    def figure(self, name: str, func, args=(), kwargs=None, *, alt: str, caption: str = "", tight: bool = True,
               raw: bool = False) -> str:
        """Register a figure: ``func(*args, **kwargs)`` returns a matplotlib figure (or,
        with ``raw``, PNG bytes / a (PNG, ...) tuple). Rendering happens after every
        section is built (in parallel where possible); the returned placeholder becomes
        the <figure> or a "not available" note."""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        base, k = name, 2
        while any(j.name == name for j in self.jobs):
            name, k = f"{base}_{k}", k + 1
        self.jobs.append(_Job(name, func, tuple(args), dict(kwargs or {}), tight, raw, self.section, alt, caption))
        return f"@@FIGURE:{name}@@"

    # robustness ---------------------------------------------------
    def na(self, reason: str) -> str:
        self.unavailable.setdefault(self.section, []).append(reason)
        return not_available(reason)

    def part(self, fn, *a, **k) -> str:
        try:
            return fn(*a, **k)
        except Unavailable as e:
            return self.na(str(e))
        except Exception as e:  # noqa: BLE001 - a broken part must not sink the report
            log.exception("report part %s failed", getattr(fn, "__name__", fn))
            return self.na(f"{type(e).__name__}: {e}")

    def flag(self, n, below: int | None = None) -> bool:
        f = F.small_cell(n, self.small if below is None else below)
        self.flags += int(f)
        return f

    def small_note(self) -> str:
        return (f"{F.DAGGER} small cell: a per-center count of 1 to {self.small - 1} patients "
                f"(settings statistics.small_cell_below = {self.small}); interpret with care and do not "
                "publish without aggregation.")


def _tp_key(tp) -> int:
    return TIMEPOINTS.index(tp) if tp in TIMEPOINTS else len(TIMEPOINTS)


def _order(values, preferred) -> list:
    vals = list(dict.fromkeys(values))
    return [v for v in preferred if v in vals] + sorted(v for v in vals if v not in preferred)


def _yesno(v) -> str:
    return DASH if F.missing(v) else ("yes" if bool(v) else "no")


def _var_label(v) -> str:
    return VAR_LABELS.get(str(v), F.label(v))


def _endpoint_label(ep: str, settings: dict) -> str:
    bio = (settings.get("endpoints") or {}).get("biochemical") or {}
    crp, fc = bio.get("crp_below", 8), bio.get("fc_below", 150)
    return {
        "sf_clinical_remission": "Steroid-free clinical remission",
        "clinical_response": "Clinical response",
        "endoscopic_remission": "Endoscopic remission",
        "endoscopic_response": "Endoscopic response",
        "biochemical_remission": f"Biochemical remission (FC < {fc} \u00b5g/g or CRP < {crp} mg/L)",
        "crp_normal": f"CRP normal (< {crp} mg/L)",
        "fc_normal": f"FC normal (< {fc} \u00b5g/g)",
    }.get(ep, F.label(ep))


# ------------------------------------------------------------------ settings
def _setting_value(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return DASH
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, dict) for x in v):
            parts = []
            for x in v:
                name = x.get("name", json.dumps(x, default=str))
                extra = [f"{k} {'/'.join(map(str, w)) if isinstance(w, list) else w}" for k, w in x.items() if k != "name"]
                parts.append(f"{name} ({'; '.join(extra)})" if extra else str(name))
            return ", ".join(parts)
        return "[" + ", ".join(_setting_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_setting_value(x)}" for k, x in v.items())
    return str(v)


def _leaves(d: dict, prefix: str = ""):
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            yield from _leaves(v, key)
        else:
            yield key, v


def _decided_rules(s: dict) -> str:
    """Where STUDY.md left room, the rule this report applied (issue 13), from the settings."""
    d, t, e = s.get("dtt") or {}, s.get("timepoints") or {}, s.get("eligibility") or {}
    late = d.get("failure_stopped_by_upa_start", True)
    cd = t.get("cd_endoscopy", "closest_per_score")
    score = e.get("post_baseline_needs_score", True)
    items = [
        ("DTT failure after the UPA start (dtt.failure_stopped_by_upa_start = " + str(late).lower() + ")",
         "an advanced therapy counts as failed only if it stopped on or before the UPA start date (DTT is judged on "
         "data before the UPA start)" if late else "a failure stop reason counts even when the episode stopped "
         "after the UPA start"),
        (f"CD endoscopy (timepoints.cd_endoscopy = {cd})",
         "SES-CD is taken from the closest endoscopy in the window that has it, even when a closer one has only a "
         "Rutgeerts score (Rutgeerts counts where only Rutgeerts is recorded)" if cd == "closest_per_score" else
         "SES-CD and Rutgeerts both come from the one closest endoscopy having either"),
        ("Post-baseline assessment (eligibility.post_baseline_needs_score = " + str(score).lower() + ")",
         "a visit after day 0 counts only if it has at least one score item (HBI, Mayo, SES-CD, Rutgeerts)"
         if score else "any visit row after day 0 counts"),
    ]
    return F.heading(3, "Rules decided where the protocol left room") + table(
        ["Rule", "Applied"], [[Cell(a, cls="lbl"), b] for a, b in items])


def _sec_settings(c: _Ctx) -> str:
    s = c.settings
    if not s:
        raise Unavailable("no settings were given and the warehouse has no ref.settings")
    out = [para("Every threshold, window, ordering and grouping below is a default of the study protocol "
                "that the study team can change in study.yaml; these are the values this report was built with."),
           _decided_rules(s)]
    ref = c.wh.ref_settings_flat()
    if ref is not None:
        mine = flatten_settings(s)
        diff = sorted(k for k in set(mine) | set(ref) if mine.get(k) != ref.get(k))
        if diff:
            rows = [[k, ref.get(k, "(absent)"), mine.get(k, "(absent)")] for k in diff]
            out.append('<div class="warn-box">')
            out.append(para(f"Warning: {len(diff)} setting(s) differ between the settings given to the report "
                            "and those the warehouse tables were built with (ref.settings). Rebuild the study "
                            "before relying on the numbers below.", "warn"))
            out.append(table(["Setting", "Warehouse (ref.settings)", "This report"], rows))
            out.append("</div>")
        else:
            out.append(para("The warehouse tables were built with the same settings (ref.settings matches).", "ok"))
    out.append('<div class="settings-grid">')
    for group, body in s.items():
        title = SETTINGS_GROUPS.get(group, F.label(group))
        if isinstance(body, dict):
            rows = [[k, _setting_value(v)] for k, v in _leaves(body)]
        else:
            rows = [[group, _setting_value(body)]]
        out.append("<div>" + F.heading(3, f"{title} ({group})") + table(["Setting", "Value"], rows, cls="data settings")
                   + "</div>")
    out.append("</div>")
    return "\n".join(out)


# ------------------------------------------------------------------ provenance
def _deliveries(c: _Ctx) -> str:
    d = c.wh.get("deliveries", ["center", "table_name", "file_name", "sha256", "rows_in", "rows_accepted",
                                "rows_quarantined"])
    warn = float((c.settings.get("ingestion") or {}).get("quarantine_share_warn", 0.05))
    sort = [x for x in ("center", "round", "seq", "table_name") if x in d.columns]
    d = d.sort_values(sort, kind="stable")
    rows = []
    for r in d.itertuples(index=False):
        rin = F.num(r.rows_in)
        share = F.num(r.rows_quarantined) / rin if rin else float("nan")
        fname = r.file_name if F.missing(getattr(r, "sheet", None)) else f"{r.file_name} [{r.sheet}]"
        rows.append([r.center, getattr(r, "round", DASH), r.table_name, fname,
                     Cell(str(r.sha256)[:12], cls="mono"), fmt_int(r.rows_in), fmt_int(r.rows_accepted),
                     Cell(f"{fmt_int(r.rows_quarantined)} ({F.fmt_prop(share)})",
                          cls="warn" if share > warn else None),
                     getattr(r, "status", DASH)])
    tot = d[["rows_in", "rows_accepted", "rows_quarantined"]].sum()
    return table(["Center", "Round", "Table", "File [sheet]", "SHA-256 (first 12)", "Rows in", "Accepted",
                  "Quarantined", "Status"], rows,
                 caption=f"{len(d)} deliveries; {fmt_int(tot['rows_in'])} rows in, {fmt_int(tot['rows_accepted'])} "
                         f"accepted, {fmt_int(tot['rows_quarantined'])} quarantined",
                 notes=[f"Quarantined shares above {100 * warn:.0f}% (ingestion.quarantine_share_warn) are highlighted. "
                        "Row counts are records of the delivered files."])


def _agreement(c: _Ctx) -> str:
    a = c.wh.get("agreement", ["center", "table_name", "field", "n_compared", "n_agree", "pct_agree"])
    thr = float((c.settings.get("reconciliation") or {}).get("agreement_threshold_pct", 95.0))
    sampled = {}
    smp = c.wh.try_get("reabstraction_sample", ["center", "patient_id"])
    if smp is not None:
        sampled = smp.groupby("center")["patient_id"].nunique().to_dict()
    fields = a[(a["table_name"] != "*") & (a["field"] != "*")]
    rows = []
    for center in sorted(a["center"].astype(str).unique()):
        g = a[a["center"].astype(str) == center]
        f = fields[fields["center"].astype(str) == center]
        tot = g[(g["table_name"] == "*") & (g["field"] == "*")]
        if len(tot):
            n_cmp, n_agree = F.num(tot["n_compared"].iloc[0]), F.num(tot["n_agree"].iloc[0])
        else:
            n_cmp, n_agree = F.num(f["n_compared"].sum()), F.num(f["n_agree"].sum())
        pct = 100 * n_agree / n_cmp if n_cmp else float("nan")
        per_table = g[(g["table_name"] != "*") & (g["field"] == "*")]
        tables = ", ".join(f"{t.table_name} {fmt_pct(t.pct_agree)}" for t in per_table.itertuples())
        k = pd.to_numeric(f.get("kappa"), errors="coerce") if "kappa" in f else pd.Series(dtype=float)
        i = pd.to_numeric(f.get("icc"), errors="coerce") if "icc" in f else pd.Series(dtype=float)
        below = int((pd.to_numeric(f["pct_agree"], errors="coerce") < thr).sum())
        ns = sampled.get(center)
        ok = not math.isnan(pct) and pct >= thr
        rows.append([center, Cell(fmt_int(ns) if ns is not None else DASH, flag=c.flag(ns)),
                     fmt_int(len(f)), fmt_int(n_cmp), fmt_pct(pct),
                     Cell("meets" if ok else "BELOW", cls="match" if ok else "mismatch"),
                     fmt_int(below),
                     f"{fmt_num(k.median(), 2)} ({fmt_num(k.min(), 2)}{EN}{fmt_num(k.max(), 2)})" if k.notna().any() else DASH,
                     f"{fmt_num(i.median(), 3)} ({fmt_num(i.min(), 3)}{EN}{fmt_num(i.max(), 3)})" if i.notna().any() else DASH,
                     tables or DASH])
    out = [table(["Center", "Patients re-abstracted", "Fields", "Values compared", "Agreement",
                  f"vs {fmt_num(thr)}% threshold", f"Fields < {fmt_num(thr)}%",
                  "Cohen's kappa, median (range)", "ICC(2,1), median (range)", "Agreement per table"], rows,
                 caption="Double-abstraction agreement per center (round A vs round B on the re-abstraction sample)",
                 notes=["Kappa: coded and boolean fields; ICC(2,1): numeric fields; percent agreement over every "
                        "compared value.", c.small_note()])]
    low = fields[pd.to_numeric(fields["pct_agree"], errors="coerce") < thr].sort_values(["center", "table_name", "field"])
    if len(low):
        lrows = [[r.center, r.table_name, r.field, Cell(fmt_int(r.n_compared), flag=c.flag(r.n_compared)),
                  fmt_pct(r.pct_agree), fmt_num(getattr(r, "kappa", None), 2), fmt_num(getattr(r, "icc", None), 3)]
                 for r in low.itertuples()]
        out.append(table(["Center", "Table", "Field", "Records compared", "Agreement", "Kappa", "ICC"], lrows,
                         caption=f"Fields with agreement below {fmt_num(thr)}%"))
    else:
        out.append(para(f"No field has agreement below {fmt_num(thr)}%."))
    return "\n".join(out)


def _discrepancies(c: _Ctx) -> str:
    d = c.wh.get("discrepancies", ["center", "table_name", "field", "status"], allow_empty=True)
    mode = (c.settings.get("reconciliation") or {}).get("unresolved_discrepancies", "warn")
    open_ = d[d["status"].astype(str).str.lower() != "resolved"]
    if d.empty:
        return para("No discrepancies recorded (table analytics.discrepancies is empty).")
    if open_.empty:
        return para(f"No unresolved discrepancies ({len(d)} discrepancies in total, all resolved).")
    rows = []
    for (center, tname), g in open_.groupby(["center", "table_name"], sort=True):
        npat = g["patient_id"].nunique() if "patient_id" in g else None
        top = g["field"].astype(str).value_counts()
        fields = ", ".join(f"{k} ({v})" for k, v in top.head(6).items()) + (", ..." if len(top) > 6 else "")
        rows.append([center, tname, fmt_int(len(g)), Cell(fmt_int(npat), flag=c.flag(npat)), fields])
    return table(["Center", "Table", "Unresolved", "Patients affected", "Fields (count)"], rows,
                 caption=f"Unresolved discrepancies: {len(open_)} of {len(d)} (settings: "
                         f"reconciliation.unresolved_discrepancies = {mode})",
                 notes=["Discrepancies are aggregated; record keys and patient ids stay in the warehouse "
                        "worklist (field '*' = a record present in one round only).", c.small_note()])


def _sec_provenance(c: _Ctx) -> str:
    return "\n".join([
        F.heading(3, "Deliveries"), c.part(_deliveries, c),
        F.heading(3, "Double-abstraction agreement"), c.part(_agreement, c),
        F.heading(3, "Unresolved discrepancies"), c.part(_discrepancies, c),
    ])


# ------------------------------------------------------------------ flow
def _flow_label(step, reason) -> str:
    from ibd_pipeline.cohort.flow import REASON_LABELS

    r = None if F.missing(reason) else str(reason)
    lab = REASON_LABELS.get(r, F.label(r.split(":", 1)[-1]) if r else "")
    if step == "screened":
        return "Screened"
    if step == "excluded":
        return "Excluded (patients)"
    if step == "excluded_by_reason":
        return f"\u2003\u2003{lab}" if r and r.startswith("other:") else f"\u2003{lab}"
    if step == "other_reason":
        return ("\u2003Named 'other' reasons, total (a patient can have several)" if r == "other"
                else f"\u2003\u2003reason named: {lab}")
    if step == "included":
        return "Included"
    if step == "included_by_diagnosis":
        return f"\u2003{r}"
    return f"{step}: {lab}"


def _flow_table(c: _Ctx, flow: pd.DataFrame) -> str:
    centers = ["all"] + sorted(x for x in flow["center"].astype(str).unique() if x != "all")
    keys = list(dict.fromkeys((r.step, None if F.missing(r.reason) else r.reason) for r in flow.itertuples()))
    # other_reason rows follow the 'other' exclusion rows
    main = [k for k in keys if k[0] != "other_reason"]
    other = [k for k in keys if k[0] == "other_reason"]
    if other:
        at = max((i for i, k in enumerate(main) if k[0] == "excluded_by_reason"), default=len(main) - 1) + 1
        main = main[:at] + other + main[at:]
    idx = {(r.step, None if F.missing(r.reason) else r.reason, str(r.center)): r.n for r in flow.itertuples()}
    rows = []
    for step, reason in main:
        cells = [Cell(_flow_label(step, reason), cls="lbl")]
        for ce in centers:
            n = idx.get((step, reason, ce))
            cells.append(Cell(fmt_int(n), flag=(ce != "all" and c.flag(n))))
        cls = "sub" if step in ("excluded_by_reason", "other_reason", "included_by_diagnosis") else "main"
        rows.append({"cls": cls, "cells": cells})
    notes = [c.small_note()]
    if other:
        notes.append("'Other' exclusions: each excluded patient is counted once under the first reason; the "
                     "named 'other' reasons below it count every reason a patient excluded as 'other' has "
                     "(a patient can have more than one).")
    notes.append("The published flow (122 screened: 8 not DTT, 1 under 18, 23 incomplete data, 2 concomitant "
                 "biologics, 10 other; 80 included) adds up to 44 exclusions for 42 excluded patients: its "
                 "10 'other' count named reasons, not patients (see Published vs derived).")
    return table(["Step"] + [DX_LABELS.get(x, x) if x == "all" else x for x in centers], rows,
                 caption="Patient flow overall and per center", notes=notes)


def _sec_flow(c: _Ctx) -> str:
    flow = c.wh.get("patient_flow", ["step", "reason", "center", "n"])

    def diagram():
        from ibd_pipeline.cohort.flow import flow_diagram

        return c.figure("flow_diagram", flow_diagram, (flow, "all"), raw=True, alt="Patient flow diagram",
                        caption="STROBE/RECORD-style flow: screened, excluded by first reason, included, by diagnosis")

    return c.part(diagram) + c.part(_flow_table, c, flow)


# ------------------------------------------------------------------ table 1
def _sec_table1(c: _Ctx) -> str:
    t = c.wh.get("table1", ["variable", "level", "overall", "UC", "CD", "p_value", "test"])
    ns = t[t["variable"] == "N"]
    hdr = {dx: (f"{DX_LABELS[dx]} (N = {ns.iloc[0][dx]})" if len(ns) else DX_LABELS[dx]) for dx in DIAGNOSES}
    rows, prev = [], None
    for r in t[t["variable"] != "N"].itertuples(index=False):
        first = r.variable != prev
        prev = r.variable
        level = "" if F.missing(r.level) else str(r.level)
        lvl = "" if level.lower() in ("yes", "none", "") else level
        rows.append({"cls": "first" if first else "sub", "cells": [
            Cell(_var_label(r.variable) if first else "", cls="lbl"), lvl,
            *[("" if F.missing(getattr(r, dx)) else str(getattr(r, dx))) for dx in ("overall", "UC", "CD")],
            fmt_p(r.p_value) if first else "", (str(r.test) if not F.missing(r.test) else DASH) if first else "",
        ]})
    st = c.settings.get("statistics") or {}
    normal = st.get("normal_variables") or []
    notes = [f"Continuous: median [IQR], Wilcoxon rank-sum"
             + (f" (mean \u00b1 SD with Welch's t for {', '.join(normal)})" if normal else "")
             + "; categorical: n (%) of non-missing values, Pearson chi-square without continuity correction, "
               f"or Fisher's exact when an expected count is below {st.get('fisher_expected_below', 5)}. "
               "'(missing)' rows give the number of patients without a value. Variables limited to one "
               "diagnosis are not tested."]
    return table(["Characteristic", "Level", hdr["overall"], hdr["UC"], hdr["CD"], "p", "Test"], rows,
                 cls="data table1", notes=notes)


# ------------------------------------------------------------------ endpoints
def _rates(c: _Ctx) -> pd.DataFrame:
    r = c.wh.get("endpoint_rates", ["diagnosis", "timepoint", "endpoint", "analysis", "n", "n_total", "pct",
                                    "ci_low", "ci_high"])
    r["N"] = r["n_total"]  # figure code of either vintage (r.N / r.n_total)
    return r


def _same_analyses(r: pd.DataFrame, ep: str) -> bool:
    s = r[r["endpoint"] == ep]
    a = s[s["analysis"] == "complete_case"].set_index(["diagnosis", "timepoint"])[["n", "n_total"]]
    b = s[s["analysis"] == "nri"].set_index(["diagnosis", "timepoint"])[["n", "n_total"]]
    return len(a) > 0 and a.sort_index().equals(b.sort_index())


def _endpoint_figures(c: _Ctx, r: pd.DataFrame, ep: str) -> str:
    label = _endpoint_label(ep, c.settings)
    analyses = [a for a in ANALYSES if (r[(r["endpoint"] == ep)]["analysis"] == a).any()]
    same = "nri" in analyses and _same_analyses(r, ep)
    figs = []
    for a in analyses:
        if a == "nri" and same:
            c.nri_same.append(label)
            continue
        from ibd_pipeline.stats.figures import endpoint_plot

        figs.append(c.figure(f"endpoint_{ep}_{a}", endpoint_plot, (r[r["endpoint"] == ep], ep, a),
                             {"diagnoses": ("UC", "CD"), "title": f"{label} \u2014 {ANALYSES[a]}"},
                             alt=f"{label}, {ANALYSES[a]}",
                             caption=f"{label}: % of patients (n/N) with 95% Wilson CI, {ANALYSES[a].lower()}"))
    return "".join(figs)


def _rates_table(c: _Ctx, r: pd.DataFrame, analysis: str) -> str:
    comp = c.wh.try_get("endpoint_comparisons", ["timepoint", "endpoint", "analysis", "p_value"])
    sub = r[r["analysis"] == analysis]
    if sub.empty:
        raise Unavailable(f"no {analysis} rates")
    if analysis == "nri":  # endpoints where NRI equals complete case are stated once, not repeated
        sub = sub[[not _same_analyses(r, ep) for ep in sub["endpoint"]]]
        if sub.empty:
            return para("Every NRI rate equals its complete-case rate (no result was 'not evaluable'); the "
                        "complete-case table above applies to both analyses.", "note")
    rows = []
    for ep in _order(sub["endpoint"], ENDPOINT_ORDER):
        e = sub[sub["endpoint"] == ep]
        first = True
        for tp in sorted(e["timepoint"].unique(), key=_tp_key):
            cells = [Cell(_endpoint_label(ep, c.settings) if first else "", cls="lbl"), TP_LABELS.get(tp, tp)]
            for dx in DIAGNOSES:
                x = e[(e["timepoint"] == tp) & (e["diagnosis"] == dx)]
                cells.append(DASH if x.empty else F.fmt_rate_cell(*x.iloc[0][["n", "n_total", "pct", "ci_low", "ci_high"]]))
            p = test = DASH
            if comp is not None:
                y = comp[(comp["endpoint"] == ep) & (comp["timepoint"] == tp) & (comp["analysis"] == analysis)]
                if len(y):
                    p, test = fmt_p(y.iloc[0]["p_value"]), str(y.iloc[0].get("test", DASH))
            cells += [p, test]
            rows.append({"cls": "first" if first else "sub", "cells": cells})
            first = False
    notes = ["n/N (%; 95% Wilson CI)."]
    if comp is None:
        notes.append("UC vs CD tests not available: table analytics.endpoint_comparisons not found or empty.")
    return table(["Endpoint", "Time point", "UC", "CD", "Overall", "UC vs CD p", "Test"], rows,
                 caption=f"Endpoint rates \u2014 {ANALYSES[analysis]}", notes=notes)


def _cochran_table(c: _Ctx) -> str:
    q = c.wh.get("cochran_q", ["diagnosis", "endpoint", "analysis", "q", "df", "p", "n_patients"])
    rows = []
    for ep in _order(q["endpoint"], ENDPOINT_ORDER):
        for a in _order(q.loc[q["endpoint"] == ep, "analysis"], list(ANALYSES)):
            cells = [Cell(_endpoint_label(ep, c.settings), cls="lbl"), ANALYSES.get(a, a)]
            for dx in DIAGNOSES:
                x = q[(q["endpoint"] == ep) & (q["analysis"] == a) & (q["diagnosis"] == dx)]
                if x.empty:
                    cells.append(DASH)
                    continue
                x = x.iloc[0]
                if F.missing(x["q"]):
                    note = x.get("note")
                    cells.append(f"{'not computed' if F.missing(note) else note} (n = {fmt_int(x['n_patients'])})")
                else:
                    cells.append(f"Q = {fmt_num(x['q'], 2)}, df {fmt_int(x['df'])}, p = {fmt_p(x['p'])} "
                                 f"(n = {fmt_int(x['n_patients'])})")
            rows.append(cells)
    tps = q["timepoints"].dropna().astype(str).iloc[0] if "timepoints" in q and q["timepoints"].notna().any() else ""
    return table(["Endpoint", "Analysis", "UC", "CD", "Overall"], rows,
                 caption=f"Change across time points: Cochran's Q ({tps.replace(',', ', ')}) on patients with "
                         "every time point")


def _sec_endpoints(c: _Ctx) -> str:
    out = []
    ep_set = c.settings.get("endpoints") or {}
    cd, uc = ep_set.get("CD") or {}, ep_set.get("UC") or {}
    if cd or uc:
        out.append(para(
            f"CD: steroid-free clinical remission HBI \u2264 {cd.get('remission_hbi_max', 4)}; clinical response HBI "
            f"decrease \u2265 {cd.get('response_hbi_drop_points', 3)} or \u2265 {cd.get('response_hbi_drop_pct', 50)}%; "
            f"endoscopic remission SES-CD \u2264 {cd.get('endoscopic_remission_ses_cd_max', 3)} (or Rutgeerts "
            f"{'/'.join(cd.get('endoscopic_remission_rutgeerts', ['i0', 'i1']))}). UC: steroid-free clinical "
            f"remission adapted Mayo \u2264 {uc.get('remission_adapted_mayo_max', 2)} with no subscore > "
            f"{uc.get('remission_subscore_max', 1)}; clinical response decrease \u2265 {uc.get('response_drop_points', 2)} "
            f"points and \u2265 {uc.get('response_drop_pct', 30)}%. Stopping UPA or an IBD-related bowel resection before "
            "a time point counts as non-response (both analyses); otherwise a missing component is not evaluable "
            "(complete case, primary) or a non-response (NRI, sensitivity)."))
    try:
        r = _rates(c)
    except Unavailable as e:
        out.append(c.na(str(e)))
        r = None
    if r is not None:
        c.nri_same = []
        figs = [c.part(_endpoint_figures, c, r, ep) for ep in _order(r["endpoint"], ENDPOINT_ORDER)]
        out.append(F.heading(3, "Rates over time, UC and CD"))
        out.append('<div class="grid">' + "".join(figs) + "</div>")
        if c.nri_same:
            out.append(para("Non-responder imputation gives exactly the complete-case n/N at every time point for: "
                            + "; ".join(c.nri_same) + " (no result was 'not evaluable'), so their NRI figures and "
                            "NRI table rows are not repeated: read the complete-case ones.", "note"))
        out.append(F.heading(3, "Rates and UC vs CD comparisons"))
        for a in ANALYSES:
            out.append(c.part(_rates_table, c, r, a))
    out.append(F.heading(3, "Cochran's Q across time points"))
    out.append(c.part(_cochran_table, c))
    return "\n".join(out)


# ------------------------------------------------------------------ biomarkers
def _units(c: _Ctx) -> dict:
    b = c.wh.try_get("biomarkers", ["test", "unit"])
    if b is None:
        return {}
    return b.dropna(subset=["unit"]).groupby("test")["unit"].first().to_dict()


def _biomarker_table(c: _Ctx, s: pd.DataFrame, units: dict) -> str:
    tests = c.wh.try_get("biomarker_tests", ["diagnosis", "test", "comparison", "p_value"])
    rows = []
    for test in _order(s["test"], BIOMARKER_ORDER):
        g = s[s["test"] == test]
        name = f"{BIOMARKER_LABELS.get(test, test)} ({units[test]})" if units.get(test) else BIOMARKER_LABELS.get(test, test)
        first = True
        for tp in sorted(g["timepoint"].unique(), key=_tp_key):
            cells = [Cell(name if first else "", cls="lbl"), TP_LABELS.get(tp, tp)]
            for dx in DIAGNOSES:
                x = g[(g["timepoint"] == tp) & (g["diagnosis"] == dx)]
                cells.append(DASH if x.empty else
                             f"{fmt_num(x.iloc[0]['median'], 2)} [{fmt_num(x.iloc[0]['q1'], 2)}{EN}"
                             f"{fmt_num(x.iloc[0]['q3'], 2)}] (n = {fmt_int(x.iloc[0]['n'])})")
                p = DASH
                if tests is not None and tp != "baseline":
                    y = tests[(tests["test"] == test) & (tests["diagnosis"] == dx)
                              & (tests["comparison"] == f"baseline_vs_{tp}")]
                    if len(y):
                        p = fmt_p(y.iloc[0]["p_value"])
                cells.append(p)
            rows.append({"cls": "first" if first else "sub", "cells": cells})
            first = False
        if tests is not None:
            cells = [Cell("", cls="lbl"), Cell("Across time points (Kruskal-Wallis)", cls="em")]
            for dx in DIAGNOSES:
                y = tests[(tests["test"] == test) & (tests["diagnosis"] == dx) & (tests["comparison"] == "across_timepoints")]
                cells += [DASH, fmt_p(y.iloc[0]["p_value"]) if len(y) else DASH]
            rows.append({"cls": "sub", "cells": cells})
    hdr = ["Test", "Time point"]
    for dx in DIAGNOSES:
        hdr += [f"{DX_LABELS[dx]} median [IQR] (n)", "p vs baseline"]
    notes = ["p vs baseline: Wilcoxon signed-rank on patients with both values; across time points: Kruskal-Wallis "
             "(as published)."]
    if tests is None:
        notes.append("Tests not available: table analytics.biomarker_tests not found or empty.")
    return table(hdr, rows, caption="Biomarkers per time point", notes=notes)


def _sec_biomarkers(c: _Ctx) -> str:
    s = c.wh.get("biomarker_summary", ["diagnosis", "test", "timepoint", "n", "median", "q1", "q3"])
    units = _units(c)

    def figs():
        from ibd_pipeline.stats.figures import biomarker_trajectory_plot

        out = []
        for test in _order(s["test"], BIOMARKER_ORDER):
            lab = BIOMARKER_LABELS.get(test, test)
            out.append(c.figure(f"biomarker_{test}", biomarker_trajectory_plot, (s[s["test"] == test], test),
                                {"diagnoses": ("UC", "CD"), "unit": f"({units[test]})" if units.get(test) else "",
                                 "title": f"{lab} over time"},
                                alt=f"{lab} median and IQR per time point",
                                caption=f"{lab}: median [IQR] per time point, UC and CD", tight=False))
        return '<div class="grid">' + "".join(out) + "</div>"

    return c.part(figs) + c.part(_biomarker_table, c, s, units)


# ------------------------------------------------------------------ persistence
# baseline dichotomies: variable -> (what, threshold setting in study.yaml baseline, unit, at-or-below)
THRESHOLD_GROUPS = {"albumin_le_35": ("albumin", "albumin_low", "g/L", True),
                    "bmi_le_18_5": ("BMI", "bmi_low", "kg/m\u00b2", True),
                    "crp_gt_8": ("CRP", "crp_high", "mg/L", False),
                    "fc_gt_150": ("FC", "fc_high", "\u00b5g/g", False)}


def _km_title(gv: str, settings: dict) -> str:
    if gv in THRESHOLD_GROUPS:
        what, key, unit, _ = THRESHOLD_GROUPS[gv]
        return f"By baseline {what} ({(settings.get('baseline') or {}).get(key, DASH)} {unit})"
    return {"overall": "All patients", "diagnosis": "By diagnosis"}.get(gv, f"By {F.label(gv)}")


def _group_labels(gv: str, settings: dict) -> dict[str, str]:
    """Readable names of a grouping's levels (the KM legends and tables): 'yes' / 'no' of
    a baseline dichotomy become 'Albumin <= 35 g/L' / 'Albumin > 35 g/L' with the
    threshold of study.yaml (baseline.albumin_low, ...)."""
    if gv == "overall":
        return {"all": "All patients"}
    if gv == "diagnosis":
        return {k: v for k, v in DX_LABELS.items() if k in ("UC", "CD")}
    if gv in THRESHOLD_GROUPS:
        what, key, unit, le = THRESHOLD_GROUPS[gv]
        t = (settings.get("baseline") or {}).get(key, DASH)
        what = what[0].upper() + what[1:]
        at, beyond = ("\u2264", ">") if le else (">", "\u2264")
        yes, no = f"{what} {at} {t} {unit}", f"{what} {beyond} {t} {unit}"
        return {"yes": yes, "no": no, "True": yes, "False": no, "1": yes, "0": no}
    return {}


def _group_label(gv: str, group, settings: dict) -> str:
    return _group_labels(gv, settings).get(str(group), f"{F.label(gv)}: {group}")


def _km_figures(c: _Ctx) -> str:
    from ibd_pipeline.stats.figures import km_plot

    pers = c.wh.get("persistence", ["patient_id", "diagnosis", "time_days", "event"])
    cov = c.wh.try_get("baseline_covariates", ["patient_id"])
    pst = c.settings.get("persistence") or {}
    months = [0] + [int(m) for m in pst.get("km_months", [3, 6, 9, 12])]
    dpm = float(pst.get("days_per_month", 30.4375))
    km = c.wh.try_get("km_estimates", ["group_var"])
    groups = _order(km["group_var"], list(KM_GROUPS)) if km is not None else list(KM_GROUPS)
    out = []
    for gv in groups:
        def one(gv=gv):
            if gv != "overall" and gv not in pers.columns and (cov is None or gv not in cov.columns):
                raise Unavailable(f"grouping variable {gv} is in neither analytics.persistence nor "
                                  "analytics.baseline_covariates")
            cv = None if cov is None or gv in pers.columns or gv == "overall" else cov[["patient_id", gv]]
            return c.figure(f"km_{gv}", km_plot, (pers[[x for x in pers.columns if x != "stop_reason"]], cv, gv),
                            {"days_per_month": dpm, "months": months, "alpha": c.alpha,
                             "title": f"Persistence on UPA \u2014 {_km_title(gv, c.settings)}",
                             "group_labels": _group_labels(gv, c.settings)},
                            alt=f"Kaplan-Meier persistence, {_km_title(gv, c.settings)}",
                            caption=f"Kaplan-Meier: {_km_title(gv, c.settings)}; shaded 95% CI; numbers at risk below")
        out.append(c.part(one))
    return '<div class="grid">' + "".join(out) + "</div>"


def _km_table(c: _Ctx) -> str:
    km = c.wh.get("km_estimates", ["group_var", "group", "month", "survival", "ci_low", "ci_high", "n_at_risk"])
    months = sorted(km["month"].unique())
    rows = []
    for gv in _order(km["group_var"], list(KM_GROUPS)):
        g = km[km["group_var"] == gv]
        for grp in sorted(g["group"].astype(str).unique()):
            cells = [Cell(_km_title(gv, c.settings), cls="lbl"), _group_label(gv, grp, c.settings)]
            for m in months:
                x = g[(g["group"].astype(str) == grp) & (g["month"] == m)]
                if x.empty:
                    cells.append(DASH)
                    continue
                x = x.iloc[0]
                cells.append(f"{F.fmt_prop(x['survival'])} ({F.fmt_prop(x['ci_low'])}{EN}{F.fmt_prop(x['ci_high'])}); "
                             f"at risk {fmt_int(x['n_at_risk'])}")
            rows.append(cells)
    return table(["Grouping", "Group"] + [f"Month {int(m)}" for m in months], rows,
                 caption="Kaplan-Meier persistence (95% CI, log-log Greenwood) and numbers at risk")


def _logrank_table(c: _Ctx) -> str:
    lr = c.wh.get("logrank_tests", ["group_var", "groups", "n", "events", "test_statistic", "df", "p_value"])
    rows = [[_km_title(r.group_var, c.settings),
             " vs ".join(_group_label(r.group_var, g, c.settings) for g in str(r.groups).split("|")),
             fmt_int(r.n), fmt_int(r.events),
             fmt_num(r.test_statistic, 2), fmt_int(r.df), fmt_p(r.p_value)] for r in lr.itertuples()]
    return table(["Comparison", "Groups", "n", "Events", "Chi-square", "df", "p"], rows, caption="Log-rank tests")


def _discontinuation_table(c: _Ctx) -> str:
    d = c.wh.get("discontinuation_rates", ["group_var", "group", "n", "events", "patient_years", "rate_per_100py"])
    rows = [[DX_LABELS.get(str(r.group), str(r.group)) if r.group_var in ("overall", "diagnosis")
             else _group_label(r.group_var, r.group, c.settings),
             fmt_int(r.n), fmt_int(r.events), fmt_num(r.patient_years, 1),
             F.fmt_est_ci(r.rate_per_100py, getattr(r, "ci_low", None), getattr(r, "ci_high", None), lambda v: fmt_num(v, 1))]
            for r in d.itertuples()]
    return table(["Group", "Patients", "Discontinuations", "Patient-years", "Per 100 patient-years (95% CI)"], rows,
                 caption="Discontinuations per 100 patient-years (exact Poisson CI)")


def _sec_persistence(c: _Ctx) -> str:
    return "\n".join([
        para("Persistence: time from UPA start to stop for any reason, censored at the last follow-up."),
        c.part(_km_figures, c),
        F.heading(3, "Kaplan-Meier rates"), c.part(_km_table, c),
        F.heading(3, "Log-rank tests"), c.part(_logrank_table, c),
        F.heading(3, "Discontinuation rate"), c.part(_discontinuation_table, c),
    ])


# ------------------------------------------------------------------ forest helpers
def _estimable(df: pd.DataFrame, est: str, lo: str = "ci_low", hi: str = "ci_high") -> pd.Series:
    e, l, h = (pd.to_numeric(df[x], errors="coerce") for x in (est, lo, hi))
    return (np.isfinite(e) & np.isfinite(l) & np.isfinite(h) & (l > 0) & (e > 1e-3) & (e < 1e3)).astype(bool)


def _ratio_forest(c: _Ctx, df: pd.DataFrame, est: str, name: str, title: str, xlabel: str, what: str) -> str:
    from ibd_pipeline.stats.figures import forest_plot

    ok = _estimable(df, est)
    d = df[ok]
    if d.empty:
        raise Unavailable(f"no estimable {what} to plot")
    dropped = [_var_label(v) for v in df.loc[~ok, "variable"]]
    cap = f"{title}; 95% CI, log scale"
    if dropped:
        cap += f". Not estimable (separation / infinite CI), not plotted: {', '.join(dropped)}"
    return c.figure(name, forest_plot,
                    ([_var_label(v) for v in d["variable"]], d[est].to_numpy(float), d["ci_low"].to_numpy(float),
                     d["ci_high"].to_numpy(float)),
                    {"log_scale": True, "ref_line": 1.0, "title": title, "xlabel": xlabel}, alt=title, caption=cap)


def _ratio_rows(df: pd.DataFrame, est: str, extra) -> list:
    rows = []
    ok = _estimable(df, est) if len(df) else pd.Series(dtype=bool)
    for (i, r), good in zip(df.iterrows(), ok):
        shown = F.fmt_est_ci(r[est], r["ci_low"], r["ci_high"])
        if r.get("estimable") is False or (not F.missing(r.get("estimable")) and not bool(r.get("estimable"))):
            shown = f"not estimable ({fmt_int(r.get('events'))} events / {fmt_int(r.get('n'))})"
        rows.append([Cell(_var_label(r["variable"]), cls="lbl"),
                     Cell(shown, cls=None if good else "warn"),
                     fmt_p(r["p_value"]), *extra(r)])
    return rows


# ------------------------------------------------------------------ cox
def _sec_cox(c: _Ctx) -> str:
    cox = c.wh.get("cox_model", ["model", "variable", "hr", "ci_low", "ci_high", "p_value"])
    st = c.settings.get("statistics") or {}
    multi = cox[cox["model"] == "multivariable"]
    uni = cox[cox["model"] == "univariate"]
    out = [para(f"Cox proportional hazards models of discontinuation (lifelines, Efron ties), stratified by "
                f"center: univariate per candidate covariate, then multivariable by forward selection "
                f"(entry p < {st.get('cox_entry_p', 0.05)}). PH test: Schoenfeld-residual test p per variable.")]

    def extra(r):
        note = r.get("note")
        return [fmt_num(r.get("ph_test_p"), 3) if not F.missing(r.get("ph_test_p")) else DASH,
                fmt_int(r.get("n")), fmt_int(r.get("events")), "" if F.missing(note) else str(note)]

    if len(multi):
        out.append(c.part(_ratio_forest, c, multi, "hr", "cox_forest", "Cox model (multivariable): hazard of discontinuation",
                          "Hazard ratio (95% CI), log scale", "multivariable hazard ratio"))
        out.append(table(["Variable", "HR (95% CI)", "p", "PH test p", "n", "Events", "Note"], _ratio_rows(multi, "hr", extra),
                         caption="Multivariable Cox model"))
    else:
        out.append(para("No covariate entered the multivariable model (none reached the entry p); the forest "
                        "plot shows the univariate estimates.", "note"))
        if len(uni):
            out.append(c.part(_ratio_forest, c, uni, "hr", "cox_forest", "Cox models (univariate): hazard of discontinuation",
                              "Hazard ratio (95% CI), log scale", "univariate hazard ratio"))
    if len(uni):
        out.append(table(["Variable", "HR (95% CI)", "p", "PH test p", "n", "Events", "Note"], _ratio_rows(uni, "hr", extra),
                         caption="Univariate Cox models",
                         notes=["Highlighted estimates are not estimable (e.g. no event in one level): read as "
                                "'no information', not as an effect."]))
    return "\n".join(out)


# ------------------------------------------------------------------ predictors
def _sec_predictors(c: _Ctx) -> str:
    st = c.settings.get("statistics") or {}
    po = st.get("predictor_outcome") or {}
    out = [para(f"Outcome: {_endpoint_label(po.get('endpoint', 'sf_clinical_remission'), c.settings).lower()} at "
                f"{TP_LABELS.get(po.get('timepoint', 'month12'), po.get('timepoint'))} "
                f"({ANALYSES.get(po.get('analysis', 'complete_case'), po.get('analysis'))}). Selection: elastic-net "
                f"logistic regression with {st.get('cv_folds', 10)}-fold cross-validation, Boruta random-forest "
                "importance as confirmation; then a multivariable logistic model with center as a fixed effect, at most "
                f"one variable per {st.get('events_per_variable', 10)} patients of the smaller outcome class; "
                "maximum likelihood when it converges without separation, else Firth-penalized (profile-likelihood "
                "CIs). A variable without a finite estimate is reported as not estimable.")]

    def model():
        m = c.wh.get("logistic_model", ["variable", "odds_ratio", "ci_low", "ci_high", "p_value"])
        parts = [c.part(_ratio_forest, c, m, "odds_ratio", "logistic_forest",
                        "Logistic model: odds of the outcome", "Odds ratio (95% CI), log scale", "odds ratio")]

        def extra(r):
            return [_yesno(r.get("selected_by_enet")),
                    "" if F.missing(r.get("boruta_decision")) else str(r.get("boruta_decision"))]

        first = m.iloc[0]
        cap = "Multivariable logistic model"
        if "n" in m and "events" in m:
            cap += f" ({fmt_int(first['n'])} patients, {fmt_int(first['events'])} events)"
        notes = []
        if "method" in m and not F.missing(first.get("method")):
            notes.append(f"Method: {first['method']}.")
        if "note" in m and not F.missing(first.get("note")):
            notes.append(f"Note: {first['note']}.")
        parts.append(table(["Variable", "OR (95% CI)", "p", "Selected by elastic net", "Boruta"],
                           _ratio_rows(m, "odds_ratio", extra), caption=cap, notes=notes))
        return "\n".join(parts)

    def selection():
        s = c.wh.get("predictor_selection", ["variable"])
        if "boruta_rank" in s:
            s = s.sort_values(["boruta_rank", "variable"], kind="stable")
        rows = [[Cell(_var_label(r.get("variable")), cls="lbl"), fmt_num(r.get("enet_coef"), 3),
                 _yesno(r.get("selected_by_enet")),
                 "" if F.missing(r.get("boruta_decision")) else str(r.get("boruta_decision")),
                 fmt_int(r.get("boruta_rank"))] for _, r in s.iterrows()]
        return table(["Candidate", "Elastic-net coefficient", "Selected (elastic net)", "Boruta decision", "Boruta rank"],
                     rows, caption="Variable selection")

    out += [c.part(model), F.heading(3, "Variable selection"), c.part(selection)]
    return "\n".join(out)


def _sec_roc(c: _Ctx) -> str:
    roc = c.wh.get("roc_curve", ["fpr", "tpr"])
    auc = c.wh.try_get("model_auc", ["auc", "ci_low", "ci_high"])
    from ibd_pipeline.stats.figures import roc_plot

    out = [c.figure("roc", roc_plot, (roc, auc), {"title": "ROC curve of the multivariable logistic model"},
                    alt="ROC curve", caption="ROC curve (apparent) with AUC, 95% CI and optimism-corrected AUC")]
    if auc is not None:
        a = auc.iloc[0]
        rows = [["AUC (apparent)", fmt_num(a["auc"], 3)],
                [f"95% CI ({a.get('ci_method', 'DeLong')})", F.fmt_range(a["ci_low"], a["ci_high"], lambda v: fmt_num(v, 3))],
                ["Bootstrap optimism", fmt_num(a.get("optimism"), 3)],
                ["Optimism-corrected AUC", fmt_num(a.get("auc_optimism_corrected"), 3)],
                ["Bootstrap samples (used / requested)", f"{fmt_int(a.get('bootstrap_used'))} / {fmt_int(a.get('bootstrap_samples'))}"],
                ["Patients / events", f"{fmt_int(a.get('n'))} / {fmt_int(a.get('events'))}"]]
        out.append(table(["Quantity", "Value"], rows, caption="Discrimination"))
    else:
        out.append(c.na("table analytics.model_auc not found or empty"))
    return "\n".join(out)


# ------------------------------------------------------------------ centers
def _center_flag(c: _Ctx, r) -> tuple[bool, bool, bool]:
    fn = F.small_cell(r["n"], c.small)
    fN = not F.missing(r["n_total"]) and F.num(r["n_total"]) < c.small
    stat = bool(r.get("small_cell")) if not F.missing(r.get("small_cell")) else False
    return fn, fN or stat, fn or fN or stat


def _sec_centers(c: _Ctx) -> str:
    from ibd_pipeline.stats.figures import forest_plot

    h = c.wh.get("center_heterogeneity", ["diagnosis", "endpoint", "center", "n", "n_total", "pct", "ci_low", "ci_high"])
    hs = (c.settings.get("statistics") or {}).get("heterogeneity") or {}
    tp = hs.get("timepoint", "month12")
    out = [para(f"Per-center rates at {TP_LABELS.get(tp, tp)} (complete case) with 95% Wilson CIs; random-effects "
                "pooled estimate (DerSimonian-Laird on the logit scale), I\u00b2 and Cochran's Q. Forest plots show "
                "UC and CD pooled ('overall'); the table gives UC and CD separately.")]
    for ep in _order(h["endpoint"], ENDPOINT_ORDER):
        e = h[h["endpoint"] == ep]
        label = _endpoint_label(ep, c.settings)
        out.append(F.heading(3, label))
        plot_dx = "overall" if (e["diagnosis"] == "overall").any() else e["diagnosis"].iloc[0]

        def fig(e=e, ep=ep, label=label, plot_dx=plot_dx):
            d = e[e["diagnosis"] == plot_dx].sort_values("center")
            flags = [_center_flag(c, r)[2] for _, r in d.iterrows()]
            labels = [f"{r['center']} ({fmt_int(r['n'])}/{fmt_int(r['n_total'])}){' ' + F.DAGGER if f else ''}"
                      for (_, r), f in zip(d.iterrows(), flags)]
            r0 = d.iloc[0]
            pooled = None
            if "pooled_pct" in d and not F.missing(r0.get("pooled_pct")):
                pooled = (F.num(r0["pooled_pct"]), F.num(r0.get("pooled_ci_low")), F.num(r0.get("pooled_ci_high")))
            w = pd.to_numeric(d["weight"], errors="coerce") if "weight" in d else None
            weights = w.to_numpy() if w is not None and w.notna().any() else None
            i2 = f"I\u00b2 = {fmt_num(r0.get('i2'), 1)}%" if not F.missing(r0.get("i2")) else "I\u00b2 n/a"
            title = f"{label} \u2014 {DX_LABELS.get(plot_dx, plot_dx)}, {TP_LABELS.get(tp, tp)}: {i2}"
            return c.figure(f"center_{ep}_{plot_dx}", forest_plot,
                            (labels, d["pct"].to_numpy(float), d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float)),
                            {"weights": weights, "pooled": pooled, "title": title,
                             "xlabel": "Patients achieving (%), 95% CI", "pooled_label": "Pooled (DerSimonian-Laird)"},
                            alt=f"Center forest plot, {label}",
                            caption=f"{label}: per-center % (n/N; marker size = random-effects weight) and pooled estimate")

        out.append(c.part(fig))
        rows = []
        for dx in _order(e["diagnosis"], list(DIAGNOSES)):
            d = e[e["diagnosis"] == dx].sort_values("center")
            for _, r in d.iterrows():
                fn, fN, _ = _center_flag(c, r)
                c.flags += int(fn) + int(fN)
                rows.append([DX_LABELS.get(dx, dx), r["center"], Cell(fmt_int(r["n"]), flag=fn),
                             Cell(fmt_int(r["n_total"]), flag=fN),
                             F.fmt_est_ci(r["pct"], r["ci_low"], r["ci_high"], lambda v: fmt_num(v, 1)),
                             fmt_num(r.get("weight"), 1)])
            r0 = d.iloc[0]
            if "pooled_pct" in d:
                rows.append({"cls": "pooled", "cells": [
                    DX_LABELS.get(dx, dx), Cell("Pooled (random effects)", cls="em"), "", "",
                    F.fmt_est_ci(r0.get("pooled_pct"), r0.get("pooled_ci_low"), r0.get("pooled_ci_high"), lambda v: fmt_num(v, 1)),
                    f"I\u00b2 {fmt_num(r0.get('i2'), 1)}%; \u03c4\u00b2 {fmt_num(r0.get('tau2'), 3)}; Q p {fmt_p(r0.get('p_q'))}"]})
        out.append(table(["Diagnosis", "Center", "n", "N", "% (95% CI)", "Weight % / heterogeneity"], rows,
                         caption=f"{label}: per-center rates", notes=[c.small_note()]))
    return "\n".join(out)


# ------------------------------------------------------------------ safety
def _ae_table(c: _Ctx, name: str, caption: str) -> str:
    t = c.wh.get(name, ["term", "diagnosis", "n_patients", "n_included", "n_events"])
    dxs = _order(t["diagnosis"], list(DIAGNOSES))
    ns = {dx: t.loc[t["diagnosis"] == dx, "n_included"].max() for dx in dxs}
    terms = list(dict.fromkeys(["any", *t["term"]]))  # the table's order: any, the CRF terms, others
    if "any" not in set(t["term"]):
        terms.remove("any")
    rows = []
    for term in terms:
        cells = [Cell(_ae_label(term), cls="lbl")]
        for dx in dxs:
            x = t[(t["term"] == term) & (t["diagnosis"] == dx)]
            if x.empty:
                cells += [DASH, DASH, DASH]
                continue
            x = x.iloc[0]
            cells += [f"{fmt_int(x['n_patients'])} ({fmt_pct(x.get('pct_patients'))})", fmt_int(x["n_events"]),
                      F.fmt_est_ci(x.get("rate_per_100py"), x.get("rate_ci_low"), x.get("rate_ci_high"), lambda v: fmt_num(v, 1))]
        rows.append({"cls": "first" if term == "any" else "sub", "cells": cells})
    hdr1 = [Cell("", colspan=1)] + [Cell(f"{DX_LABELS.get(dx, dx)} (N = {fmt_int(ns[dx])})", colspan=3) for dx in dxs]
    hdr2 = ["Term"] + ["Patients n (%)", "Events", "Per 100 PY (95% CI)"] * len(dxs)
    return table([hdr1, hdr2], rows, caption=caption)


def _ae_label(term: str) -> str:
    return "Any adverse event" if term == "any" else AE_LABELS.get(term, F.label(term))


def _special_interest_table(c: _Ctx) -> str:
    """The JAK-inhibitor events of special interest of study.yaml safety.special_interest,
    each with its count even when no patient had one (0 is a result)."""
    spec = (c.settings.get("safety") or {}).get("special_interest") or []
    if not spec:
        raise Unavailable("no events of special interest in the settings (safety.special_interest)")
    t = c.wh.get("ae_summary", ["term", "diagnosis", "n_patients", "n_included", "n_events"])
    ser = c.wh.try_get("safety_serious", ["term", "diagnosis", "n_patients", "n_included", "n_events"])
    dxs = _order(t["diagnosis"], list(DIAGNOSES))
    ns = {dx: t.loc[t["diagnosis"] == dx, "n_included"].max() for dx in dxs}
    rows = []
    for item in spec:
        item = item if isinstance(item, dict) else {"name": item}
        term, serious = str(item["name"]), bool(item.get("serious"))
        src = t
        label = _ae_label(term)
        if serious:
            label = f"Serious {label[0].lower()}{label[1:]}"
            if ser is None:
                rows.append([Cell(label, cls="lbl")] + [DASH] * (2 * len(dxs)))
                continue
            src = ser  # a serious table lists the terms with an event: an absent term had none
        cells = [Cell(label, cls="lbl")]
        for dx in dxs:
            x = src[(src["term"] == term) & (src["diagnosis"] == dx)]
            n_pat = int(x.iloc[0]["n_patients"]) if len(x) else 0
            n_ev = int(x.iloc[0]["n_events"]) if len(x) else 0
            cells += [f"{n_pat} ({fmt_pct(100.0 * n_pat / ns[dx] if ns[dx] else None)})", fmt_int(n_ev)]
        rows.append(cells)
    hdr1 = [Cell("", colspan=1)] + [Cell(f"{DX_LABELS.get(dx, dx)} (N = {fmt_int(ns[dx])})", colspan=2) for dx in dxs]
    hdr2 = ["Event"] + ["Patients n (%)", "Events"] * len(dxs)
    return table([hdr1, hdr2], rows, caption="Adverse events of special interest for JAK inhibitors",
                 notes=["Listed whether or not they occurred (settings safety.special_interest)."])


def _exposure(c: _Ctx) -> str:
    e = c.wh.get("exposure", ["diagnosis", "exposure_years"])
    rows = []
    for dx in ["UC", "CD"] + sorted(set(e["diagnosis"].dropna()) - {"UC", "CD"}) + ["overall"]:
        g = e if dx == "overall" else e[e["diagnosis"] == dx]
        if g.empty:
            continue
        yrs = pd.to_numeric(g["exposure_years"], errors="coerce")
        rows.append([DX_LABELS.get(dx, dx), fmt_int(len(g)), fmt_num(yrs.sum(), 1),
                     f"{fmt_num(yrs.median(), 2)} [{fmt_num(yrs.quantile(.25), 2)}{EN}{fmt_num(yrs.quantile(.75), 2)}]"])
    return table(["Diagnosis", "Patients", "Patient-years", "Exposure, years, median [IQR]"], rows,
                 caption="Exposure to upadacitinib")


def _sec_safety(c: _Ctx) -> str:
    days = (c.settings.get("safety") or {}).get("treatment_emergent_days_after_stop", 30)
    return "\n".join([
        para(f"Treatment-emergent adverse events (onset from day 0 to {days} days after the stop date): patients "
             "with at least one event per term (n, %), events, and events per 100 patient-years of exposure with "
             "exact Poisson 95% CIs."),
        c.part(_exposure, c),
        F.heading(3, "Adverse events of special interest"), c.part(_special_interest_table, c),
        F.heading(3, "Adverse events by term and diagnosis"), c.part(_ae_table, c, "ae_summary", "Adverse events by term"),
        F.heading(3, "Serious adverse events"), c.part(_ae_table, c, "safety_serious", "Serious adverse events"),
        F.heading(3, "Adverse events leading to discontinuation"),
        c.part(_ae_table, c, "safety_discontinuation", "Adverse events leading to discontinuation"),
    ])


# ------------------------------------------------------------------ quality
def _sec_quality(c: _Ctx) -> str:
    q = c.wh.get("quality_results", ["check_id"])
    q = q.drop(columns=[x for x in ("examples",) if x in q.columns])  # failing rows may carry patient ids
    sev = q["severity"].astype(str) if "severity" in q else pd.Series(["?"] * len(q))
    counts = sev.value_counts()
    out = [para(f"{len(q)} checks: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")]
    if "category" in q:
        g = q.assign(_sev=sev).groupby(["category", "_sev"]).size().unstack(fill_value=0)
        rows = [[cat] + [fmt_int(g.loc[cat].get(s, 0)) for s in g.columns] for cat in g.index]
        out.append(table(["Category"] + [str(s) for s in g.columns], rows, caption="Checks by category and result"))
    bad = q[sev.str.lower() != "ok"]
    if len(bad):
        cols = [x for x in ("check_id", "category", "table_name", "column_name", "description", "n_rows", "n_failed",
                            "failed_share", "threshold", "severity") if x in bad.columns]
        rows = []
        for _, r in bad.iterrows():
            row = []
            for x in cols:
                v = r[x]
                row.append(F.fmt_prop(v, 2) if x in ("failed_share", "threshold") else
                           (fmt_int(v) if x in ("n_rows", "n_failed") else ("" if F.missing(v) else str(v))))
            rows.append(row)
        out.append(table([F.label(x) for x in cols], rows, caption="Checks that did not pass",
                         notes=["Example failing rows stay in analytics.quality_results (they can carry patient ids)."]))
    else:
        out.append(para("Every check passed."))
    return "\n".join(out)


# ------------------------------------------------------------------ published vs derived
def _sec_published(c: _Ctx) -> str:
    if not c.published:
        raise Unavailable(getattr(c, "published_error", "") or "no published figures were given")
    cmp_ = compare_published(c.published, c.wh.get, c.settings)
    c.comparison = cmp_
    compared = cmp_[cmp_["match"].notna()]
    n_ok = int((compared["match"] == True).sum())  # noqa: E712
    mism = compared[compared["match"] == False]  # noqa: E712
    out = [para(f"{len(compared)} published quantities compared with the pipeline's derivation: {n_ok} match, "
                f"{len(mism)} differ" + (f" ({', '.join(sorted(set(mism['domain'])))})" if len(mism) else "") +
                ". Rates are complete case (as published). Summary statistics and model estimates are shown but "
                "not compared.")]
    out.append(para("Patient flow, 'other' exclusions: the published flow's reasons add up to 8+1+23+2+10 = 44 "
                    "while 122-80 = 42 patients were excluded: its 10 'other' count named reasons (a patient can "
                    "have more than one). The derived 'other' is therefore the number of named other reasons "
                    "among patients excluded as 'other' when the flow table provides it (step 'other_reason'), "
                    "else the number of patients excluded as 'other' (see the note on that row).", "note"))
    for domain in dict.fromkeys(cmp_["domain"]):
        d = cmp_[cmp_["domain"] == domain]
        rows = []
        for r in d.itertuples():
            m = r.match
            mc = (Cell("\u2713 match", cls="match") if m is True else
                  Cell("\u2717 MISMATCH", cls="mismatch") if m is False else Cell("not compared", cls="muted"))
            rows.append({"cls": "mismatch-row" if m is False else "", "cells": [
                r.quantity, DX_LABELS.get(r.diagnosis, r.diagnosis), TP_LABELS.get(r.timepoint, r.timepoint or ""),
                "" if F.missing(r.published) else str(r.published),
                DASH if F.missing(r.derived) else str(r.derived), mc, r.note or ""]})
        out.append(F.heading(3, F.label(domain)))
        out.append(table(["Quantity", "Diagnosis", "Time point", "Published", "Derived", "Match", "Note"], rows,
                         cls="data published"))
    return "\n".join(out)


# ------------------------------------------------------------------ key numbers
def _key_numbers(c: _Ctx) -> dict:
    k: dict = {}
    wh = c.wh
    f = wh.try_get("patient_flow", ["step", "reason", "center", "n"])
    if f is not None:
        a = f[f["center"].astype(str) == "all"]

        def n(step, reason=None):
            s = a[(a["step"] == step) & (a["reason"].isna() if reason is None else a["reason"] == reason)]
            return int(s["n"].sum()) if len(s) else None

        k.update(screened=n("screened"), excluded=n("excluded"), included=n("included"),
                 included_uc=n("included_by_diagnosis", "UC"), included_cd=n("included_by_diagnosis", "CD"))
    r = wh.try_get("endpoint_rates", ["diagnosis", "timepoint", "endpoint", "analysis", "n", "n_total", "pct"])
    if r is not None:
        po = (c.settings.get("statistics") or {}).get("predictor_outcome") or {}
        ep, tp = po.get("endpoint", "sf_clinical_remission"), po.get("timepoint", "month12")
        for dx in DIAGNOSES:
            x = r[(r["endpoint"] == ep) & (r["timepoint"] == tp) & (r["diagnosis"] == dx) & (r["analysis"] == "complete_case")]
            if len(x):
                k[f"{ep}_{tp}_{dx.lower()}_pct"] = round(F.num(x.iloc[0]["pct"]), 1)
                k[f"{ep}_{tp}_{dx.lower()}"] = f"{int(x.iloc[0]['n'])}/{int(x.iloc[0]['n_total'])}"
    auc = wh.try_get("model_auc", ["auc"])
    if auc is not None:
        a = auc.iloc[0]
        k["auc"] = round(F.num(a["auc"]), 3)
        for col in ("ci_low", "ci_high", "auc_optimism_corrected"):
            if col in auc:
                k[f"auc_{col}" if col != "auc_optimism_corrected" else col] = round(F.num(a[col]), 3)
    km = wh.try_get("km_estimates", ["group_var", "month", "survival"])
    if km is not None:
        x = km[(km["group_var"] == "overall") & (km["month"] == 12)]
        if len(x):
            k["km_12m_persistence_pct"] = round(100 * F.num(x.iloc[0]["survival"]), 1)
            if "ci_low" in x:
                k["km_12m_persistence_ci"] = f"{100 * F.num(x.iloc[0]['ci_low']):.1f}-{100 * F.num(x.iloc[0]['ci_high']):.1f}"
    dr = wh.try_get("discontinuation_rates", ["group_var", "rate_per_100py", "events"])
    if dr is not None:
        x = dr[dr["group_var"] == "overall"]
        if len(x):
            k["discontinuations"] = int(x.iloc[0]["events"])
            k["discontinuation_per_100py"] = round(F.num(x.iloc[0]["rate_per_100py"]), 1)
    # JSON-friendly (no NaN)
    return {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in k.items()}


# ------------------------------------------------------------------ page
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

_ID_PATTERN = re.compile(r"\bP[0-9a-f]{20}\b")


_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")


def _privacy_guard(html_text: str, ids: set[str]) -> tuple[str, int]:
    """Remove any pseudonymous id that reached the text (belt and braces: no section
    lists patients). An id counts where it stands between non-alphanumeric characters.
    Alphanumeric ids (all the pipeline makes) are looked up per alphanumeric run of the
    text, so the cost does not grow with the number of patients; any other id shape goes
    through one alternation pattern."""
    count = 0
    long_ids = {i for i in ids if len(i) >= 6}
    plain = {i for i in long_ids if i.isascii() and i.isalnum()}
    other = sorted(long_ids - plain, key=len, reverse=True)
    if plain:
        hits = 0

        def sub(m: re.Match) -> str:
            nonlocal hits
            if m.group() in plain:
                hits += 1
                return "[id removed]"
            return m.group()

        html_text = _ALNUM_RUN.sub(sub, html_text)
        count += hits
    if other:
        pat = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, other)) + r")(?![A-Za-z0-9])")
        html_text, n1 = pat.subn("[id removed]", html_text)
        count += n1
    html_text, n2 = _ID_PATTERN.subn("[id removed]", html_text)
    return html_text, count + n2


def _key_box(k: dict) -> str:
    items = []

    def add(lbl, val):
        if val is not None:
            items.append(f"<div>{esc(lbl)}<b>{esc(val)}</b></div>")

    add("Screened", k.get("screened"))
    add("Included (UC / CD)", None if k.get("included") is None else f"{k['included']} ({k.get('included_uc')} / {k.get('included_cd')})")
    for dx in ("uc", "cd"):
        v = k.get(f"sf_clinical_remission_month12_{dx}")
        if v:
            add(f"SF clinical remission, month 12, {dx.upper()}", f"{v} ({k.get(f'sf_clinical_remission_month12_{dx}_pct')}%)")
    if k.get("km_12m_persistence_pct") is not None:
        add("On UPA at 12 months (KM)", f"{k['km_12m_persistence_pct']}%")
    if k.get("auc") is not None:
        add("Model AUC, apparent", k["auc"])
        add("Model AUC, optimism-corrected (bootstrap)", k.get("auc_optimism_corrected", DASH))
    if k.get("published_compared"):
        add("Published quantities matched", f"{k['published_compared'] - k.get('published_mismatches', 0)} / {k['published_compared']}")
    return '<div class="keys">' + "".join(items) + "</div>"


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
    ctx = _Ctx(wh, settings, published)
    ctx.published_error = published_error
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    builders = {
        "settings": _sec_settings, "provenance": _sec_provenance, "flow": _sec_flow, "table1": _sec_table1,
        "endpoints": _sec_endpoints, "biomarkers": _sec_biomarkers, "persistence": _sec_persistence,
        "cox": _sec_cox, "predictors": _sec_predictors, "roc": _sec_roc, "centers": _sec_centers,
        "safety": _sec_safety, "quality": _sec_quality, "published": _sec_published,
    }
    bodies: list[tuple[str, str, str]] = []
    for sid, title in SECTIONS:
        if sid in OPTIONAL_SECTIONS and not wh.has(OPTIONAL_SECTIONS[sid]):
            continue
        ctx.section = sid
        body = ctx.part(builders[sid], ctx)
        bodies.append((sid, title, body))

    key = _key_numbers(ctx)
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
    parts = head + [_key_box(key), nav]
    for sid, title, body in bodies:
        parts.append(f'<section id="{esc(sid)}">')
        parts.append(F.heading(2, title))
        parts.append(body)
        parts.append("</section>")
    parts.append(f'<footer><p class="note">Generated by ibd_pipeline.report at {esc(generated_at)}.</p>'
                 "</footer></main></body></html>")
    text = "\n".join(parts)

    t_fig = time.perf_counter()
    rendered = _render_all(ctx.jobs, _workers(workers))
    blocks = {}
    for j in ctx.jobs:
        res = rendered.get(j.name)
        if isinstance(res, (bytes, bytearray)) and res[:8] == b"\x89PNG\r\n\x1a\n":
            ctx.figures[j.name] = bytes(res)
            cap = f"<figcaption>{esc(j.caption)}</figcaption>" if j.caption else ""
            blocks[j.name] = f'<figure><img src="@@IMG:{j.name}@@" alt="{esc(j.alt)}">{cap}</figure>'
        else:
            reason = f"{type(res).__name__}: {res}" if isinstance(res, Exception) else "no PNG produced"
            ctx.unavailable.setdefault(j.section, []).append(f"figure {j.name}: {reason}")
            blocks[j.name] = not_available(f"figure '{j.alt}' could not be drawn ({reason})")
    text = re.sub(r"@@FIGURE:([A-Za-z0-9_.-]+)@@", lambda m: blocks.get(m.group(1), ""), text)
    key["figures"] = len(ctx.figures)
    key["figure_seconds"] = round(time.perf_counter() - t_fig, 2)
    key["sections_not_available"] = sorted(ctx.unavailable)

    text, redacted = _privacy_guard(text, wh.patient_ids())
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
