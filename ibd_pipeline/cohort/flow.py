"""Patient flow table and STROBE/RECORD-style flow diagram (docs/STUDY_RULES.md#eligibility,
workflow step 5: screened -> excluded by reason -> included -> UC / CD)."""

from __future__ import annotations

import io

import pandas as pd

from ibd_pipeline.cohort.eligibility import OTHER

ALL = "all"
FLOW_COLUMNS = ["step", "reason", "center", "n", "counts"]
# what a row's n counts: patients, except other_reason rows, which count reasons
# (a patient excluded as other may have several named other reasons)
REASON_STEPS = {"other_reason"}
DIAGNOSES = ("UC", "CD")
REASON_LABELS = {
    "not_dtt": "Not difficult-to-treat (IOIBD)",
    "under_18": "Age < 18 years at UPA start",
    "insufficient_data": "Insufficient data",
    "concomitant_biologic": "Concomitant biologic",
    OTHER: "Other",
    "other:ibdu": "IBD unclassified",
    "other:pregnancy_or_breastfeeding": "Pregnancy or breastfeeding",
    "other:serious_infection": "Serious infection at start",
    "other:malignancy": "History of malignancy",
    "other:liver_or_kidney": "Liver or kidney dysfunction",
    "other:prior_total_colectomy": "Prior total colectomy",
    "other:short_exposure": "UPA exposure shorter than induction",
}


def _reason_rows(settings: dict, seen: list[str]) -> list[str]:
    """Reasons listed in the flow: the settings order (with the 'other' total before its
    named sub-reasons), then any reason found in the data that the settings do not name."""
    out: list[str] = []
    for r in settings["eligibility"]["order"]:
        out.append(r)
        if r == OTHER:
            out.extend(f"{OTHER}:{o}" for o in settings["eligibility"]["other_order"])
    for r in seen:
        if r not in out:
            if r.startswith(f"{OTHER}:") and OTHER not in out:
                out.append(OTHER)
            out.append(r)
    return out


def patient_flow(eligibility: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """The patient flow (docs/STUDY_RULES.md#eligibility; published flow: 122 screened
    -> 8 not DTT, 1 under 18, 23 incomplete data, 2 concomitant biologics, 10 other -> 80
    included), overall (center 'all') and per center.

    Rows (step, reason): ('screened', None); ('excluded', None) = all excluded;
    ('excluded_by_reason', code) for every reason in the settings order, zero counts
    included, where 'other' is the total of the 'other:<name>' rows that follow it;
    ('other_reason', 'other:<name>') = every named other reason among the patients
    excluded as 'other' (a patient may have several), ('other_reason', 'other') their
    total; ('included', None); ('included_by_diagnosis', 'UC'|'CD'|...). Columns: step,
    reason, center, n, counts ('patients', or 'reasons' for the other_reason rows)."""
    el = eligibility
    seen = [r for r in el["exclusion_reason"].dropna().unique()]
    reasons = _reason_rows(settings, seen)
    diagnoses = list(DIAGNOSES) + sorted(
        set(el.loc[el["included"].astype(bool), "diagnosis"].dropna()) - set(DIAGNOSES)
    )
    groups = [(ALL, el)] + [(c, g) for c, g in sorted(el.groupby("center"), key=lambda cg: str(cg[0]))]
    rows = []
    for center, g in groups:
        inc = g["included"].astype(bool)
        first = g["exclusion_reason"]
        rows.append(("screened", None, center, len(g)))
        rows.append(("excluded", None, center, int((~inc).sum())))
        for r in reasons:
            n = first.fillna("").str.startswith(f"{OTHER}:").sum() if r == OTHER else (first == r).sum()
            rows.append(("excluded_by_reason", r, center, int(n)))
        # docs/STUDY_RULES.md#eligibility: "other, each reported by name" - a patient excluded as 'other' can
        # have several other reasons; each is counted under its name (the published
        # flow's "10 other" are such reasons: 8 + 1 + 23 + 2 + 10 = 44 > 122 - 80 = 42).
        other_pts = g[first.fillna("").str.startswith(f"{OTHER}:")]
        all_other = other_pts["all_reasons"].fillna("").str.split("|").explode()
        all_other = all_other[all_other.str.startswith(f"{OTHER}:")]
        for r in [r for r in reasons if r.startswith(f"{OTHER}:")]:
            rows.append(("other_reason", r, center, int((all_other == r).sum())))
        rows.append(("other_reason", OTHER, center, int(len(all_other))))
        rows.append(("included", None, center, int(inc.sum())))
        for dx in diagnoses:
            rows.append(("included_by_diagnosis", dx, center, int((inc & (g["diagnosis"] == dx)).sum())))
    out = pd.DataFrame([(*r, "reasons" if r[0] in REASON_STEPS else "patients") for r in rows], columns=FLOW_COLUMNS)
    out["n"] = out["n"].astype("int64")
    return out


def flow_diagram(flow: pd.DataFrame, center: str = ALL) -> tuple[bytes, str]:
    """STROBE/RECORD-style flow diagram of ``patient_flow`` output for one center (default
    all): screened -> exclusion box listing each reason with its count -> included ->
    split by diagnosis. Returns (PNG bytes, SVG text)."""
    import matplotlib

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch

    f = flow[flow["center"] == center]

    def n(step, reason=None):
        sel = f[(f["step"] == step) & (f["reason"].isna() if reason is None else f["reason"] == reason)]
        return int(sel["n"].sum())

    ex = f[f["step"] == "excluded_by_reason"]
    lines = [f"Excluded (n = {n('excluded')})"]
    has_other_reasons = bool(((f["step"] == "other_reason")).any())
    for r in ex["reason"]:
        k = n("excluded_by_reason", r)
        label = REASON_LABELS.get(r, r.split(":", 1)[-1].replace("_", " "))
        if r.startswith(f"{OTHER}:"):
            k = n("other_reason", r) if has_other_reasons else k
            if k:
                lines.append(f"      - {label} (n = {k})")
        elif r == OTHER and has_other_reasons:
            lines.append(f"  - {label} (n = {k} patients, {n('other_reason', OTHER)} reasons)")
        else:
            lines.append(f"  - {label} (n = {k})")
    dx = f[f["step"] == "included_by_diagnosis"]["reason"].tolist()

    fig = Figure(figsize=(9, 7))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.axis("off")
    box = dict(boxstyle="round,pad=0.6", facecolor="white", edgecolor="black", linewidth=1.0)

    def text(x, y, s, **kw):
        return ax.text(x, y, s, ha=kw.pop("ha", "center"), va="center", fontsize=kw.pop("fontsize", 10), bbox=box, **kw)

    center_label = "all centers" if center == ALL else f"center {center}"
    text(30, 92, f"Patients with IBD and an upadacitinib\nprescription screened ({center_label})\n(n = {n('screened')})")
    text(45, 62, "\n".join(lines), ha="left", fontsize=8.5, family="monospace")
    text(30, 34, f"Included (n = {n('included')})")
    xs = [30 + (i - (len(dx) - 1) / 2) * 28 for i in range(len(dx))]
    for x, d in zip(xs, dx):
        text(x, 10, f"{d}\n(n = {n('included_by_diagnosis', d)})")
        ax.add_patch(FancyArrowPatch((30, 30), (x, 15), arrowstyle="-|>", mutation_scale=12, color="black"))
    ax.add_patch(FancyArrowPatch((30, 86), (30, 38), arrowstyle="-|>", mutation_scale=12, color="black"))
    ax.add_patch(FancyArrowPatch((30, 62), (43, 62), arrowstyle="-|>", mutation_scale=12, color="black"))

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=150, bbox_inches="tight", pad_inches=0.2, metadata={"Software": None})
    svg = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "patient-flow", "svg.fonttype": "none"}):
        fig.savefig(svg, format="svg", bbox_inches="tight", pad_inches=0.2, metadata={"Date": None})
    return png.getvalue(), svg.getvalue()
