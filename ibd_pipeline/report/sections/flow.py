"""Patient flow: the flow diagram and the table overall and per center."""

from __future__ import annotations

import pandas as pd

from .. import fmt as F
from ..context import ReportContext
from ..fmt import Cell, fmt_int, table
from ..labels import DX_LABELS, flow_label, study_diagnoses


def _published_flow_note(published: dict | None) -> str | None:
    """When the published exclusions add up to more than screened - included (a paper
    counting reasons, not patients, under 'other'), say so; None when they agree or the
    paper gives no counts."""
    flow = (published or {}).get("flow") or {}
    excluded, screened, included = flow.get("excluded"), flow.get("screened"), flow.get("included")
    if not isinstance(excluded, dict) or screened is None or included is None:
        return None
    counts = {k: v for k, v in excluded.items() if isinstance(v, (int, float))}
    total, patients = int(sum(counts.values())), int(screened) - int(included)
    if total == patients:
        return None
    parts = ", ".join(f"{flow_label('excluded_by_reason', k).strip()} {fmt_int(v)}" for k, v in counts.items())
    extra = (f": its {fmt_int(counts['other'])} 'other' count named reasons, not patients" if "other" in counts
             and total > patients else "")
    return (f"The published flow ({fmt_int(screened)} screened; excluded: {parts}; {fmt_int(included)} included) adds up to "
            f"{fmt_int(total)} exclusions for {fmt_int(patients)} excluded patients{extra} (see Published vs derived).")


def _flow_table(c: ReportContext, flow: pd.DataFrame) -> str:
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
        cells = [Cell(flow_label(step, reason), cls="lbl")]
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
    note = _published_flow_note(c.published)
    if note:
        notes.append(note)
    return table(["Step"] + [DX_LABELS.get(x, x) if x == "all" else x for x in centers], rows,
                 caption="Patient flow overall and per center", notes=notes)


def build(c: ReportContext) -> str:
    flow = c.wh.get("patient_flow", ["step", "reason", "center", "n"])
    # the included patients by the diagnoses the study enrols (a CD-only study has no 'UC: 0' row)
    flow = flow[(flow["step"] != "included_by_diagnosis") | flow["reason"].isin(study_diagnoses(c.settings))]

    def diagram():
        from ibd_pipeline.cohort.flow import flow_diagram

        return c.figure("flow_diagram", flow_diagram, (flow, "all"), raw=True, alt="Patient flow diagram",
                        caption="STROBE/RECORD-style flow: screened, excluded by first reason, included, by diagnosis")

    return c.part(diagram) + c.part(_flow_table, c, flow)
