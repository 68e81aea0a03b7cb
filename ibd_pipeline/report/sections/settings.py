"""Appendix: the settings this report ran with, and the rules decided where the protocol left room."""

from __future__ import annotations

import json

from .. import fmt as F
from ..context import ReportContext
from ..data import Unavailable, flatten_settings
from ..fmt import DASH, Cell, para, table
from ..labels import SETTINGS_GROUPS


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


def build(c: ReportContext) -> str:
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
