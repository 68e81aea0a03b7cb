"""Published vs derived: the published study's figures beside the pipeline's."""

from __future__ import annotations

from .. import fmt as F
from ..context import ReportContext
from ..data import Unavailable
from ..fmt import DASH, Cell, para, table
from ..labels import DX_LABELS, tp_label
from ..published import compare_published


def build(c: ReportContext) -> str:
    if not c.published:
        raise Unavailable(getattr(c, "published_error", "") or "no published figures were given")
    if c.comparisons is not None:
        return _declared(c)
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
    out += _domain_tables(cmp_)
    return "\n".join(out)


def _declared(c: ReportContext) -> str:
    """The study's own declarations (report.comparisons): every published figure derived
    by one SQL query, or the reason it is not."""
    from ..comparisons import compare_declared, uncovered_figures

    cmp_ = compare_declared(c.published, c.comparisons, lambda sql: c.wh.con.execute(sql).df())
    c.comparison = cmp_
    compared = cmp_[cmp_["match"].notna()]
    n_ok = int((compared["match"] == True).sum())  # noqa: E712
    mism = compared[compared["match"] == False]  # noqa: E712
    n_not = int(cmp_["note"].fillna("").str.startswith("not derived").sum())
    uncovered = uncovered_figures(c.published, c.comparisons)
    out = [para(f"{len(compared)} published figures compared with the pipeline's derivation: {n_ok} match, "
                f"{len(mism)} differ" + (f" ({', '.join(sorted(set(mism['domain'])))})" if len(mism) else "") +
                f"; {n_not} not derived (the reason is given). Counts are compared exactly, Kaplan-Meier and other "
                "values within the stated tolerance, model estimates by direction and by selection at the study's "
                "alpha. Where the paper is inconsistent, the note names the reading reproduced.")]
    if uncovered:
        out.append(para(f"Published figures without a declaration (neither compared nor given a reason): "
                        f"{', '.join(uncovered)}.", "note"))
    out += _domain_tables(cmp_)
    return "\n".join(out)


def _domain_tables(cmp_) -> list[str]:
    out = []
    for domain in dict.fromkeys(cmp_["domain"]):
        d = cmp_[cmp_["domain"] == domain]
        rows = []
        for r in d.itertuples():
            m = r.match
            mc = (Cell("\u2713 match", cls="match") if m is True else
                  Cell("\u2717 MISMATCH", cls="mismatch") if m is False else Cell("not compared", cls="muted"))
            rows.append({"cls": "mismatch-row" if m is False else "", "cells": [
                r.quantity, DX_LABELS.get(r.diagnosis, r.diagnosis), tp_label(r.timepoint),
                "" if F.missing(r.published) else str(r.published),
                DASH if F.missing(r.derived) else str(r.derived), mc, r.note or ""]})
        out.append(F.heading(3, F.label(domain)))
        out.append(table(["Quantity", "Diagnosis", "Time point", "Published", "Derived", "Match", "Note"], rows,
                         cls="data published"))
    return out
