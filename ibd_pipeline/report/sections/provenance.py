"""Data provenance: deliveries and their hashes, double-abstraction agreement, unresolved discrepancies."""

from __future__ import annotations

import math

import pandas as pd

from .. import fmt as F
from ..context import ReportContext
from ..fmt import DASH, EN, Cell, fmt_int, fmt_num, fmt_pct, para, table


def _deliveries(c: ReportContext) -> str:
    d = c.wh.get("deliveries", ["center", "table_name", "file_name", "sha256", "rows_in", "rows_accepted",
                                "rows_quarantined"])
    warn = float(c.settings["ingestion"]["quarantine_share_warn"])
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


def _agreement(c: ReportContext) -> str:
    a = c.wh.get("agreement", ["center", "table_name", "field", "n_compared", "n_agree", "pct_agree"])
    thr = float(c.settings["reconciliation"]["agreement_threshold_pct"])
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


def _discrepancies(c: ReportContext) -> str:
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


def build(c: ReportContext) -> str:
    return "\n".join([
        F.heading(3, "Deliveries"), c.part(_deliveries, c),
        F.heading(3, "Double-abstraction agreement"), c.part(_agreement, c),
        F.heading(3, "Unresolved discrepancies"), c.part(_discrepancies, c),
    ])
