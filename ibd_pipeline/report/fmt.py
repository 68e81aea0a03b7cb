"""Formatting and HTML building blocks of the study report: every piece of text goes
through :func:`esc`; numbers are formatted in one place (percent 1 decimal, p-values 3
decimals or "<0.001", ratios 2 decimals)."""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

DASH = "\u2014"  # missing value
EN = "\u2013"  # ranges (CI, IQR)
DAGGER = "\u2020"  # small-cell flag


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def missing(x) -> bool:
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def num(x) -> float:
    """float(x), NaN for missing / unparsable."""
    if missing(x):
        return float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def fmt_int(x) -> str:
    v = num(x)
    return DASH if math.isnan(v) else f"{int(round(v))}"


def fmt_num(x, digits: int = 1) -> str:
    v = num(x)
    if math.isnan(v):
        return DASH
    if math.isinf(v):
        return "\u221e" if v > 0 else "-\u221e"
    return f"{v:.{digits}f}"


def fmt_pct(x, digits: int = 1) -> str:
    """A percentage already on the 0-100 scale."""
    v = num(x)
    return DASH if math.isnan(v) else f"{v:.{digits}f}%"


def fmt_prop(x, digits: int = 1) -> str:
    """A proportion on the 0-1 scale shown as percent."""
    v = num(x)
    return DASH if math.isnan(v) else f"{100 * v:.{digits}f}%"


def fmt_p(p) -> str:
    v = num(p)
    if math.isnan(v):
        return DASH
    if v < 0.001:
        return "<0.001"
    return f"{min(v, 1.0):.3f}"


def fmt_ratio(x) -> str:
    """Odds / hazard ratios: 2 decimals; extreme values (separation) in e-notation."""
    v = num(x)
    if math.isnan(v):
        return DASH
    if math.isinf(v):
        return "\u221e"
    if v != 0 and (abs(v) >= 1000 or abs(v) < 0.01):
        return f"{v:.2g}"
    return f"{v:.2f}"


def fmt_range(lo, hi, f=fmt_num) -> str:
    if missing(lo) and missing(hi):
        return DASH
    return f"{f(lo)}{EN}{f(hi)}"


def fmt_est_ci(est, lo, hi, f=fmt_ratio) -> str:
    if missing(est):
        return DASH
    if missing(lo) and missing(hi):
        return f(est)
    return f"{f(est)} ({f(lo)}{EN}{f(hi)})"


def fmt_rate_cell(n, N, pct=None, lo=None, hi=None) -> str:
    """"19/28 (67.9%; 49.3-82.1)" for an n/N rate with its CI on the 0-100 scale."""
    if missing(N):
        return DASH
    if missing(pct):
        pct = 100.0 * num(n) / num(N) if num(N) else float("nan")
    s = f"{fmt_int(n)}/{fmt_int(N)} ({fmt_pct(pct)}"
    if not (missing(lo) or missing(hi)):
        s += f"; {fmt_num(lo)}{EN}{fmt_num(hi)}"
    return s + ")"


def label(code) -> str:
    """A readable label from a snake_case code."""
    if missing(code):
        return DASH
    s = str(code).replace("_", " ").strip()
    return s[:1].upper() + s[1:]


# ------------------------------------------------------------------ HTML pieces
@dataclass
class Cell:
    """A table cell: ``text`` is escaped unless ``raw``; ``flag`` appends the small-cell
    dagger; ``cls`` adds a CSS class; ``colspan``/``header`` as in HTML."""

    text: object = ""
    cls: str | None = None
    flag: bool = False
    raw: bool = False
    colspan: int = 1
    header: bool = False

    def html(self) -> str:
        body = str(self.text) if self.raw else esc(self.text)
        classes = [c for c in (self.cls, "small-cell" if self.flag else None) if c]
        if self.flag:
            body += f'<sup class="dagger" title="fewer patients than the small-cell threshold">{DAGGER}</sup>'
        tag = "th" if self.header else "td"
        attrs = f' class="{" ".join(classes)}"' if classes else ""
        if self.colspan > 1:
            attrs += f' colspan="{self.colspan}"'
        return f"<{tag}{attrs}>{body}</{tag}>"


def cell(x) -> Cell:
    return x if isinstance(x, Cell) else Cell(x)


def table(headers, rows, caption: str | None = None, cls: str = "data", notes=None) -> str:
    """An HTML table; ``headers`` a list (or list of lists for multi-row headers) of str
    or Cell, ``rows`` lists of str or Cell; ``notes`` lines under the table."""
    if headers and not isinstance(headers[0], (list, tuple)):
        headers = [headers]
    out = [f'<div class="table-wrap"><table class="{esc(cls)}">']
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    if headers:
        out.append("<thead>")
        for hr in headers:
            out.append("<tr>" + "".join(Cell(h.text if isinstance(h, Cell) else h,
                                             cls=h.cls if isinstance(h, Cell) else None,
                                             colspan=h.colspan if isinstance(h, Cell) else 1,
                                             raw=h.raw if isinstance(h, Cell) else False,
                                             header=True).html() for h in hr) + "</tr>")
        out.append("</thead>")
    out.append("<tbody>")
    for r in rows:
        row_cls = ""
        if isinstance(r, dict):
            row_cls, r = r.get("cls", ""), r["cells"]
        attr = f' class="{esc(row_cls)}"' if row_cls else ""
        out.append(f"<tr{attr}>" + "".join(cell(c).html() for c in r) + "</tr>")
    out.append("</tbody></table></div>")
    for n in notes or []:
        out.append(f'<p class="note">{esc(n)}</p>')
    return "\n".join(out)


def para(text: str, cls: str | None = None) -> str:
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<p{attr}>{esc(text)}</p>"


def not_available(reason: str) -> str:
    return f'<p class="na">Not available: {esc(reason)}</p>'


def heading(level: int, text: str, anchor: str | None = None) -> str:
    a = f' id="{esc(anchor)}"' if anchor else ""
    return f"<h{level}{a}>{esc(text)}</h{level}>"


def small_cell(n, below: int) -> bool:
    """A count of 1 .. below-1 patients (zero cells are not disclosive and not flagged)."""
    v = num(n)
    return not math.isnan(v) and 0 < v < below


_INT_PREFIX = re.compile(r"^\s*(\d+)")


def leading_int(s) -> int | None:
    """48 from '48 (60.0%)'."""
    if missing(s):
        return None
    if isinstance(s, (int, np.integer)):
        return int(s)
    m = _INT_PREFIX.match(str(s))
    return int(m.group(1)) if m else None
