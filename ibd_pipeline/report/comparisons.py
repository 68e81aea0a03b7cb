"""Published vs derived by configuration: a study folder's ``comparisons.yaml`` says, for
every figure of its ``published_figures.yaml``, how the pipeline derives it - one SQL
query on the warehouse - and how the two are compared; or why the figure is not derived.
A second study therefore needs no comparison code (issue 15 item 4).

Entry forms (``comparisons.yaml``, a list)::

    - figure: endpoints.clinical_remission.week4      # a path into published_figures.yaml
      compare: count                                   # n and N exactly
      sql: SELECT n, n_total FROM analytics.endpoint_rates WHERE ...   # N as n_total
    - figure: persistence.km_percent.m3
      compare: value                                   # |derived - published| <= tolerance
      tolerance: 0.5
      sql: SELECT 100 * survival AS value FROM analytics.km_estimates WHERE ...
    - figure: baseline.age_years                       # {median, iqr}
      compare: summary
      tolerance: 2
      sql: SELECT median, q1, q3 FROM ...
    - figure: cox_discontinuation.univariate.alb_le_35 # {hr|or, ci, p}
      compare: estimate                                # same direction and the same side of alpha
      sql: SELECT estimate, p FROM ...
    - figure: persistence.km_by_albumin.logrank_p     # a p value
      compare: p                                       # on the same side of alpha
      sql: SELECT p_value AS value FROM analytics.logrank_tests WHERE ...
    - figure: flow.start_period.first                  # a text ("2023-12")
      compare: text                                    # equal as text
      sql: SELECT strftime(min(upa_start_date), '%Y-%m') AS value FROM ...
    - figure: flow.screened
      not_derived: the paper reports no screened count (Figure 1 is an image)
    - figure: safety.ae_leading_to_discontinuation
      compare: count
      reading: "3 of 108 (2.8%); the printed 7.4% is 8/108, inconsistent with n = 3"
      sql: ...

``reading`` names which reading of an inconsistent figure the comparison reproduces; it
is printed with the row. :func:`figure_paths` lists every leaf figure of the published
file, so a test can require that each is compared or given a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from ..config import read_yaml

COMPARISON_COLUMNS = ["domain", "quantity", "diagnosis", "timepoint", "published", "derived", "match", "note"]
KINDS = ("count", "value", "summary", "estimate", "p", "text")
# the leaf forms of a published figure: a mapping holding one of these is one figure
FIGURE_KEYS = ({"n", "N"}, {"median"}, {"or"}, {"hr"})

Query = Callable[[str], pd.DataFrame]


class ComparisonConfigError(ValueError):
    """A comparisons.yaml entry that cannot be applied (unknown figure, kind or form)."""


@dataclass(frozen=True)
class Comparison:
    figure: str
    compare: str | None = None
    sql: str | None = None
    tolerance: float | None = None
    reading: str = ""
    not_derived: str = ""
    alpha: float = 0.05


def load_comparisons(path: Path) -> list[Comparison]:
    """The entries of a study's comparisons.yaml, each checked for its keys."""
    raw = read_yaml(path) or []
    out = []
    for i, e in enumerate(raw, 1):
        where = f"{path}: entry {i}"
        if not isinstance(e, dict) or "figure" not in e:
            raise ComparisonConfigError(f"{where}: each entry needs a figure")
        unknown = set(e) - {"figure", "compare", "sql", "tolerance", "reading", "not_derived", "alpha"}
        if unknown:
            raise ComparisonConfigError(f"{where} ({e['figure']}): unknown keys {sorted(unknown)}")
        if e.get("not_derived"):
            out.append(Comparison(figure=e["figure"], not_derived=str(e["not_derived"])))
            continue
        if e.get("compare") not in KINDS or not e.get("sql"):
            raise ComparisonConfigError(f"{where} ({e['figure']}): needs compare (one of {', '.join(KINDS)}) and sql, "
                                        "or not_derived with a reason")
        if e["compare"] in ("value", "summary") and e.get("tolerance") is None:
            raise ComparisonConfigError(f"{where} ({e['figure']}): compare {e['compare']} needs a tolerance")
        out.append(Comparison(figure=e["figure"], compare=e["compare"], sql=e["sql"], tolerance=e.get("tolerance"),
                              reading=str(e.get("reading") or ""), alpha=float(e.get("alpha", 0.05))))
    return out


def _is_figure(node) -> bool:
    return not isinstance(node, dict) or any(keys <= set(node) for keys in FIGURE_KEYS)


def figure_paths(published: dict, prefix: str = "") -> list[str]:
    """Every leaf figure of a published-figures mapping (dotted paths): a count {n, N},
    a summary {median, iqr}, an estimate {or|hr, ci, p} or a scalar/list; ``null``
    figures (not reported) included."""
    out = []
    for k, v in (published or {}).items():
        path = f"{prefix}.{k}" if prefix else str(k)
        if _is_figure(v):
            out.append(path)
        else:
            out.extend(figure_paths(v, path))
    return out


def figure_at(published: dict, path: str):
    node = published
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ComparisonConfigError(f"{path}: no such figure in the published figures")
        node = node[part]
    return node


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _fmt(x) -> str:
    v = _num(x)
    if v is None:
        return "-"
    return str(int(v)) if v == int(v) else f"{v:.2f}".rstrip("0").rstrip(".")


def _one_row(c: Comparison, query: Query) -> dict | None:
    df = query(c.sql)
    if df is None or len(df) == 0:
        return None
    if len(df) > 1:
        raise ComparisonConfigError(f"{c.figure}: its sql returned {len(df)} rows, not one")
    return {str(k).lower(): v for k, v in df.iloc[0].to_dict().items()}


def _compare(c: Comparison, pub, got: dict) -> tuple[str, str, bool | None, str]:
    """(published text, derived text, match, note)."""
    if c.compare == "count":
        n, big_n = pub.get("n"), pub.get("N")
        dn, dN = _num(got.get("n")), _num(got.get("n_total", got.get("n_1")))
        pct = f" ({pub['pct']}%)" if pub.get("pct") is not None else ""
        dpct = f" ({100 * dn / dN:.1f}%)" if dn is not None and dN else ""
        ok = dn is not None and n is not None and int(dn) == int(n) and (big_n is None or (dN is not None and int(dN) == int(big_n)))
        return (f"{n}/{big_n}{pct}" if big_n is not None else f"{n}{pct}", f"{_fmt(dn)}/{_fmt(dN)}{dpct}" if dN else _fmt(dn),
                ok, "n and N exactly")
    if c.compare == "value":
        v, d = _num(pub), _num(got.get("value"))
        ok = v is not None and d is not None and abs(d - v) <= c.tolerance
        return _fmt(v), _fmt(d), ok, f"within {_fmt(c.tolerance)}"
    if c.compare == "p":
        v, d = _num(pub), _num(got.get("value"))
        ok = v is not None and d is not None and (v < c.alpha) == (d < c.alpha)
        return _fmt(v), (f"{d:.4f}" if d is not None else "-"), ok, f"both {'<' if v is not None and v < c.alpha else '>='} {_fmt(c.alpha)}"
    if c.compare == "text":  # a published list is compared as its items joined by ", " in sorted order
        shown = ", ".join(sorted(str(x) for x in pub)) if isinstance(pub, (list, tuple)) else str(pub)
        return shown, str(got.get("value")), shown == str(got.get("value")), "equal"
    if c.compare == "summary":
        if isinstance(pub, (list, tuple)):  # [median, q1, q3]
            pub = {"median": pub[0], "iqr": list(pub[1:3])}
        med, iqr = pub.get("median"), pub.get("iqr") or [None, None]
        dm, q1, q3 = _num(got.get("median")), _num(got.get("q1")), _num(got.get("q3"))
        ok = dm is not None and abs(dm - float(med)) <= c.tolerance
        return (f"{_fmt(med)} ({_fmt(iqr[0])}-{_fmt(iqr[1])})", f"{_fmt(dm)} ({_fmt(q1)}-{_fmt(q3)})", ok,
                f"median within {_fmt(c.tolerance)}")
    # estimate: direction and selection at alpha
    key = "hr" if "hr" in pub else "or"
    est, p = _num(pub.get(key)), _num(pub.get("p"))
    de, dp = _num(got.get("estimate")), _num(got.get("p"))
    if de is None:
        return f"{key.upper()} {_fmt(est)}, p {_fmt(p)}", "not estimable", False, "direction and selection"
    same_side = (est > 1) == (de > 1) if est != 1 else de == 1
    same_sel = p is None or dp is None or ((p < c.alpha) == (dp < c.alpha))
    return (f"{key.upper()} {_fmt(est)}, p {_fmt(p)}", f"{key.upper()} {de:.2f}, p {dp:.3f}" if dp is not None else f"{key.upper()} {de:.2f}",
            bool(same_side and same_sel), f"same direction and p {'<' if p is not None and p < c.alpha else '>='} {_fmt(c.alpha)}")


def compare_declared(published: dict, comparisons: list[Comparison], query: Query) -> pd.DataFrame:
    """One row per comparison (COMPARISON_COLUMNS): domain = the figure's first key,
    quantity = the rest of its path; ``match`` None when not derived or not available."""
    rows = []
    for c in comparisons:
        domain, _, quantity = c.figure.partition(".")
        pub = figure_at(published, c.figure)
        if c.not_derived:
            rows.append((domain, quantity, None, None, _pubtext(pub), None, None, f"not derived: {c.not_derived}"))
            continue
        try:
            got = _one_row(c, query)
        except ComparisonConfigError:
            raise
        except Exception as exc:  # noqa: BLE001  # a table the study did not build: say so, do not stop the report
            rows.append((domain, quantity, None, None, _pubtext(pub), None, None, f"not available: {type(exc).__name__}: {exc}"))
            continue
        if got is None:
            rows.append((domain, quantity, None, None, _pubtext(pub), None, None, "not available: no derived row"))
            continue
        p, d, ok, note = _compare(c, pub, got)
        if c.reading:
            note = f"{note}; reading reproduced: {c.reading}"
        rows.append((domain, quantity, None, None, p, d, ok, note))
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _pubtext(pub) -> str | None:
    if pub is None:
        return None
    if isinstance(pub, dict):
        if "n" in pub:
            return f"{pub['n']}/{pub.get('N')}"
        if "median" in pub:
            return f"{pub['median']}"
        return ", ".join(f"{k} {v}" for k, v in pub.items() if not isinstance(v, (dict, list)))
    return str(pub)


def uncovered_figures(published: dict, comparisons: list[Comparison]) -> list[str]:
    """Figures of the published file that no comparison entry covers (neither compared
    nor given a reason)."""
    covered = {c.figure for c in comparisons}
    return [f for f in figure_paths(published) if f not in covered
            and not any(f.startswith(c + ".") for c in covered)]
