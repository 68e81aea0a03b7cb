"""The endpoint definitions in words, written from the study settings
(docs/STUDY_RULES.md#endpoints; ``endpoints`` of study.yaml), so the report states the
rules the pipeline applied - the thresholds, the steroid-free condition, the
non-responder events - for whichever study runs, and never a sentence of another
protocol. Pure: the settings in, text out; each text follows the branch of
``endpoints.evaluate`` that applies the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from ibd_pipeline.clinical.records import fmt_num

from .evaluate import (
    _BIOMARKER_TESTS,
    ENDOSCOPIC_REMISSION,
    ENDOSCOPIC_RESPONSE,
    ENDOSCOPIC_RULES,
    REMISSION,
    RESPONSE,
    EndpointSpec,
    biomarker_thresholds,
    endpoint_specs,
)

LE, GE, LT = "\u2264", "\u2265", "<"
_OPS = {"<": LT, "<=": LE}
# what each non-responder event of ``endpoints.nri_events`` is, in words (nri_event)
NRI_EVENT_WORDS = {"discontinuation": "stopping UPA", "bowel_resection": "an IBD-related bowel resection"}


@dataclass(frozen=True)
class EndpointDefinition:
    """One endpoint's rule in words: ``diagnosis`` is "CD"/"UC" for a clinical endpoint
    (its rule differs by disease), None for a biomarker endpoint (one rule for both)."""

    endpoint: str
    kind: str  # "clinical" | "biomarker"
    diagnosis: str | None
    text: str


def clinical_text(spec: EndpointSpec, diagnosis: str, cfg: dict) -> str:
    """The rule of a clinical endpoint for ``diagnosis`` (``cfg`` = ``endpoints.CD`` or
    ``endpoints.UC``), as ``cd_endpoint`` / ``uc_endpoint`` apply it."""
    sf = " and steroid-free" if spec.steroid_free else ""
    n = fmt_num
    if diagnosis == "CD":
        if spec.rule == REMISSION:
            return f"HBI {LE} {n(cfg['remission_hbi_max'])}{sf}"
        if spec.rule == RESPONSE:
            pct = cfg.get("response_hbi_drop_pct")
            return (f"HBI decrease {GE} {n(cfg['response_hbi_drop_points'])} points"
                    + (f" or {GE} {n(pct)}%" if pct is not None else "") + " from baseline")
        if spec.rule == ENDOSCOPIC_REMISSION:
            rut = list(cfg.get("endoscopic_remission_rutgeerts") or [])
            return (f"SES-CD {LE} {n(cfg['endoscopic_remission_ses_cd_max'])}"
                    + (f", or Rutgeerts {'/'.join(rut)} where only a Rutgeerts score is recorded" if rut else ""))
        if spec.rule == ENDOSCOPIC_RESPONSE:
            return f"SES-CD decrease {GE} {n(cfg['endoscopic_response_drop_pct'])}% from baseline"
    elif diagnosis == "UC":
        if spec.rule == REMISSION:
            return (f"adapted Mayo {LE} {n(cfg['remission_adapted_mayo_max'])} with no subscore > "
                    f"{n(cfg['remission_subscore_max'])}{sf}")
        if spec.rule == RESPONSE:
            return (f"adapted Mayo decrease {GE} {n(cfg['response_drop_points'])} points and {GE} "
                    f"{n(cfg['response_drop_pct'])}% from baseline, with a rectal bleeding decrease {GE} "
                    f"{n(cfg['response_bleeding_drop'])} or rectal bleeding {LE} {n(cfg['response_bleeding_max'])}")
        if spec.rule == ENDOSCOPIC_REMISSION:
            return f"Mayo endoscopic subscore {LE} {n(cfg['endoscopic_remission_endo_max'])}"
        if spec.rule == ENDOSCOPIC_RESPONSE:
            return f"Mayo endoscopic subscore decrease {GE} {n(cfg['endoscopic_response_drop_pct'])}% from baseline"
    raise ValueError(f"{spec.name}: no {diagnosis} definition of rule {spec.rule!r}")


def biomarker_text(spec: EndpointSpec, biochemical: dict, units: dict[str, str] | None = None) -> str:
    """The rule of a biomarker endpoint (``endpoints.biochemical``), as
    ``biomarker_endpoint`` applies it: either test normal (OR) or both, each measured (AND)."""
    tests, combine = _BIOMARKER_TESTS[spec.rule]
    thr = biomarker_thresholds(biochemical)
    units = units or {}
    parts = [f"{t} {_OPS[thr[t][0]]} {fmt_num(thr[t][1])}" + (f" {units[t]}" if units.get(t) else "") for t in tests]
    if len(parts) == 1:
        return parts[0]
    return (" or " if combine == "any" else " and ").join(parts) + (", each measured" if combine == "all" else "")


def endpoint_definitions(settings: dict, units: dict[str, str] | None = None) -> list[EndpointDefinition]:
    """Every endpoint of the settings in their order: the clinical ones once per scored
    diagnosis the settings define (``endpoints.CD`` / ``endpoints.UC``), then the
    biomarker ones. ``units``: the canonical unit per lab test (CRP, FC), printed after
    the thresholds."""
    cfg = settings["endpoints"]
    out = []
    for spec in endpoint_specs(settings, "clinical"):
        for dx in ("CD", "UC"):
            if cfg.get(dx):
                out.append(EndpointDefinition(spec.name, "clinical", dx, clinical_text(spec, dx, cfg[dx])))
    for spec in endpoint_specs(settings, "biomarker"):
        out.append(EndpointDefinition(spec.name, "biomarker", None, biomarker_text(spec, cfg["biochemical"], units)))
    return out


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _mid(label: str) -> str:
    """A label inside a sentence: "Clinical remission" -> "clinical remission", "CRP normal" stays."""
    return label[0].lower() + label[1:] if len(label) > 1 and label[1].islower() else label


def missing_data_text(settings: dict, label=None) -> str:
    """The analysis-set, non-responder and missing-data rules (``timepoints.analysis_set``,
    ``endpoints.nri_events``, ``nri_applies_to``; ``evaluate.endpoints``) in words.
    ``label``: endpoint name -> its label (default: the name with spaces)."""
    label = label or (lambda name: name.replace("_", " "))
    cfg = settings["endpoints"]
    events = [NRI_EVENT_WORDS.get(e, e.replace("_", " ")) for e in cfg.get("nri_events") or []]
    groups = set(cfg.get("nri_applies_to") or ("clinical", "endoscopic"))
    specs = endpoint_specs(settings, "clinical")
    applies = [s for s in specs if ("endoscopic" if s.rule in ENDOSCOPIC_RULES else "clinical") in groups]
    exempt = [s for s in specs if s not in applies]
    out = []
    tail = ""
    if events and applies:
        which = "" if not exempt else " for " + " and ".join(_mid(label(s.name)) for s in applies)
        out.append(f"{_and(events)[0].upper()}{_and(events)[1:]} before a time point counts as non-response{which} "
                   "at that and every later time point (both analyses)")
        if exempt:
            names = " and ".join(_mid(label(s.name)) for s in exempt)
            tail = f" {names[0].upper()}{names[1:]}: evaluated as measured (a stop before the time point is not a non-response)."
    sentence = "; ".join(out)
    if (settings.get("timepoints") or {}).get("analysis_set") == "reached_or_stopped":
        cut = (settings.get("study") or {}).get("data_cutoff")
        lead = (f"The set of a time point holds the patients who reached it by the data cut-off ({cut}) or stopped UPA "
                "before it; those still on UPA who have not reached it are left out of that set. ")
    else:
        lead = ""
    rest = ("a missing component is not evaluable (complete case, primary) or a non-response "
            "(non-responder imputation, sensitivity). Biomarker endpoints are evaluated from the laboratory results.")
    return lead + ((sentence + "; otherwise " + rest) if sentence else rest[0].upper() + rest[1:]) + tail
