"""Writers: each center's real export format, read from its profile (``centers/*.yaml``).

Nothing here knows a center by name; everything comes from the profile, so a fourth
center is served by a profile file:

* ``format`` csv (``encoding``; UTF-8 with BOM for ``utf-8-sig``) or xlsx (one workbook
  per round, one sheet per table named by ``sheets``, continuation sheets per
  ``sheet_continuation`` beyond 1,048,575 data rows; xlsxwriter ``constant_memory``);
* ``files`` pattern (``{round}``, ``{table}``, ``{yyyymmdd}``);
* ``headers``/``header_overrides`` and ``vocabulary`` (codes and booleans in the center's
  language, occasionally an alternative spelling such as 克罗恩氏病 or 有/无);
* ``dates``: every listed format occurs (Chinese/slashed dates also without zero padding;
  ``excel_date_cell`` = a real date cell, most of the time);
* ``missing``: every token occurs at random;
* canonical centers write booleans true/false, now and then TRUE/FALSE/1/0.

A formatted table is a DataFrame of cells (column = the center's header): ``str``, or for
xlsx also ``float`` (numbers; in date columns a float is an Excel date serial) and
``None`` (blank cell).
"""

from __future__ import annotations

import multiprocessing as mp
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ._util import DAY_MIN, MISSING_DAY

XLSX_MAX_DATA_ROWS = 1_048_575
EXCEL_EPOCH_OFFSET = 25569  # Excel serial of 1970-01-01
_LUT_CACHE: dict[tuple[str, bool], np.ndarray] = {}


def date_lut(fmt: str, pad: bool = True) -> np.ndarray:
    """Text of every day from DAY_MIN in strftime-like ``fmt`` (%Y %m %d only),
    with or without zero padding of month and day."""
    key = (fmt, pad)
    if key not in _LUT_CACHE:
        days = np.arange(DAY_MIN, DAY_MIN + 45000).astype("datetime64[D]")
        y = days.astype("datetime64[Y]").astype(int) + 1970
        m = days.astype("datetime64[M]").astype(int) % 12 + 1
        d = (days - days.astype("datetime64[M]")).astype(int) + 1
        parts = {"Y": y.astype(str), "m": m.astype(str), "d": d.astype(str)}
        if pad:
            parts["m"] = np.char.zfill(parts["m"], 2)
            parts["d"] = np.char.zfill(parts["d"], 2)
        out = np.full(len(days), "", dtype=object).astype(str)
        for tok in re.split(r"(%[Ymd])", fmt):
            if not tok:
                continue
            piece = parts[tok[1]] if tok.startswith("%") else np.full(len(days), tok)
            out = np.char.add(out, piece)
        _LUT_CACHE[key] = out.astype(object)
    return _LUT_CACHE[key]


def file_name(profile, round_: str, table: str, yyyymmdd: str) -> str:
    return profile.file_pattern.format(round=round_, table=table, yyyymmdd=yyyymmdd)


class CenterFormatter:
    """Turns canonical frames into the cells one center writes."""

    def __init__(self, profile, crf, rng: np.random.Generator):
        self.p = profile
        self.crf = crf
        self.rng = rng
        self.xlsx = profile.format == "xlsx"
        self.vocab = profile.vocabulary or {}
        self.localized = bool(profile.raw.get("vocabulary"))
        fmts = [f for f in profile.date_formats]
        self.excel_dates = "excel_date_cell" in fmts
        self.text_formats = [f for f in fmts if f != "excel_date_cell"] or ["%Y-%m-%d"]
        self.missing = list(profile.missing_tokens) or [""]

    # ------------------------------------------------------------ primitives
    def _missing_tokens(self, m: int) -> np.ndarray:
        toks = self.missing
        if len(toks) == 1:
            out = np.full(m, toks[0], dtype=object)
        else:
            w = np.array([0.6 if t == "" else 0.4 / (len(toks) - (1 if "" in toks else 0)) for t in toks])
            out = np.array(toks, dtype=object)[self.rng.choice(len(toks), size=m, p=w / w.sum())]
        if self.xlsx:
            out = np.where(out == "", None, out)
        return out

    def dates(self, days: np.ndarray) -> np.ndarray:
        days = np.asarray(days, dtype=np.int64)
        m = len(days)
        miss = days == MISSING_DAY
        safe = np.where(miss, DAY_MIN, days) - DAY_MIN
        r = self.rng.random(m)
        if self.xlsx and self.excel_dates:
            out = (days + EXCEL_EPOCH_OFFSET).astype(float).astype(object)
            text = r < 0.1
            if text.any():
                fmt = self.text_formats[0]
                out[text] = date_lut(fmt)[safe[text]]
        else:
            k = len(self.text_formats)
            which = self.rng.integers(0, k, m)
            out = np.empty(m, dtype=object)
            for j, fmt in enumerate(self.text_formats):
                sel = which == j
                if not sel.any():
                    continue
                if "年" in fmt or "/" in fmt:  # both occur, also without zero padding
                    unpad = sel & (r < 0.35)
                    out[sel & ~unpad] = date_lut(fmt, True)[safe[sel & ~unpad]]
                    out[unpad] = date_lut(fmt, False)[safe[unpad]]
                else:
                    out[sel] = date_lut(fmt, True)[safe[sel]]
        if miss.any():
            out[miss] = self._missing_tokens(int(miss.sum()))
        return out

    def bools(self, values: np.ndarray) -> np.ndarray:
        v = pd.Series(values, dtype=object)
        miss = v.isna().to_numpy()
        m = len(v)
        truthy = (v == True).to_numpy()  # noqa: E712
        r = self.rng.random(m)
        if self.localized:
            bm = self.vocab.get("codes", {}).get("bool", {})
            t_sp = [k for k, x in bm.items() if x is True] or ["true"]
            f_sp = [k for k, x in bm.items() if x is False] or ["false"]
            alt = r < 0.1
            t_txt = np.where(alt & (len(t_sp) > 1), t_sp[-1], t_sp[0])
            f_txt = np.where(alt & (len(f_sp) > 1), f_sp[-1], f_sp[0])
        else:
            t_txt = np.where(r < 0.88, "true", np.where(r < 0.95, "TRUE", "1"))
            f_txt = np.where(r < 0.88, "false", np.where(r < 0.95, "FALSE", "0"))
        out = np.where(truthy, t_txt, f_txt).astype(object)
        if miss.any():
            out[miss] = self._missing_tokens(int(miss.sum()))
        return out

    def codes(self, field: str, values: np.ndarray) -> np.ndarray:
        v = pd.Series(values, dtype=object)
        miss = v.isna().to_numpy()
        out = v.to_numpy(dtype=object).copy()
        if self.localized:
            cmap = self.vocab.get("codes", {}).get(field, {})
            if cmap:
                rev: dict[str, list[str]] = {}
                for local, canon in cmap.items():
                    rev.setdefault(str(canon), []).append(local)
                first = {c: sp[0] for c, sp in rev.items()}
                alt = {c: sp[1] for c, sp in rev.items() if len(sp) > 1}
                mapped = v.map(first).to_numpy(dtype=object)
                if alt:
                    use_alt = self.rng.random(len(v)) < 0.15
                    alts = v.map(alt).to_numpy(dtype=object)
                    mapped = np.where(use_alt & pd.notna(alts), alts, mapped)
                out = np.where(pd.isna(mapped), out, mapped)
        if miss.any():
            out[miss] = self._missing_tokens(int(miss.sum()))
        return out

    def numbers(self, values: np.ndarray, integer: bool) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        miss = np.isnan(v)
        if self.xlsx:
            out = v.astype(object)
        else:
            if integer:
                out = np.where(miss, "", np.nan_to_num(v).astype(np.int64).astype(str)).astype(object)
            else:
                out = np.array([format(x, ".15g") for x in np.nan_to_num(v)], dtype=object)
        if miss.any():
            out[miss] = self._missing_tokens(int(miss.sum()))
        return out

    def strings(self, values: np.ndarray) -> np.ndarray:
        v = pd.Series(values, dtype=object)
        miss = v.isna().to_numpy() | (v == "").to_numpy()
        out = v.to_numpy(dtype=object).copy()
        if miss.any():
            out[miss] = self._missing_tokens(int(miss.sum()))
        return out

    # ----------------------------------------------------------------- table
    def table(self, table: str, df: pd.DataFrame, abstractor: str, mrn_of: np.ndarray) -> pd.DataFrame:
        """Cells of one table (the CRF fields of the table the generated frame holds, in CRF
        order: the fields of the single-center study are not part of these deliveries)."""
        spec = self.crf.table(table)
        cols = {}
        m = len(df)
        for f, fs in spec.fields.items():
            if f not in df and f not in ("mrn", "abstractor_id") and not (table == "labs" and f in ("value", "unit")):
                continue
            h = self.p.header_for(table, f)
            if f == "mrn":
                cols[h] = mrn_of[df["pidx"].to_numpy()] if "pidx" in df else df["mrn"].to_numpy(dtype=object)
                continue
            if f == "abstractor_id":
                cols[h] = np.full(m, abstractor, dtype=object)
                continue
            if table == "labs" and f == "value":
                if self.xlsx:
                    q = df["qualifier"].isin(["<", ">"]).to_numpy()
                    cells = df["value_written"].to_numpy(dtype=float).astype(object)
                    cells[q] = df["value_reported"].to_numpy(dtype=object)[q]
                    nan = pd.isna(df["value_written"]).to_numpy() & ~q
                    if nan.any():
                        cells[nan] = self._missing_tokens(int(nan.sum()))
                    cols[h] = cells
                else:
                    cols[h] = self.strings(df["value_reported"].to_numpy(dtype=object))
                continue
            if table == "labs" and f == "unit":
                cols[h] = self.strings(df["unit_reported"].to_numpy(dtype=object))
                continue
            vals = df[f].to_numpy() if f in df else np.full(m, None, dtype=object)
            if fs.type == "date":
                cols[h] = self.dates(vals)
            elif fs.type == "bool":
                cols[h] = self.bools(vals)
            elif fs.type == "code":
                cols[h] = self.codes(f, vals)
            elif fs.type in ("int", "float"):
                cols[h] = self.numbers(vals, fs.type == "int")
            else:
                cols[h] = self.strings(vals)
        return pd.DataFrame(cols)

    def date_headers(self, table: str) -> set[str]:
        spec = self.crf.table(table)
        return {self.p.header_for(table, f) for f, fs in spec.fields.items() if fs.type == "date"}


# --------------------------------------------------------------------- CSV
def write_csv(path: Path, cells: pd.DataFrame, encoding: str | None) -> None:
    """Write text cells as CSV in the center's encoding (UTF-8 centers get a BOM, as
    files saved from Excel do, and CRLF line ends)."""
    enc = encoding or "utf-8"
    if enc.lower().replace("_", "-") in ("utf-8", "utf8"):
        enc = "utf-8-sig"
    nl = "\r\n" if enc == "utf-8-sig" else "\n"
    fast_csv(path, cells, enc, nl)


def fast_csv(path: Path, frame: pd.DataFrame, encoding: str, newline: str = "\n") -> None:
    """CSV of a frame of text cells (None/NaN = empty), joined row by row in chunks.

    No value of the generator needs quoting; each chunk is verified (separator, quote and
    line-break counts) and the whole file is rewritten by pandas, with quoting, otherwise.
    """
    headers = [str(h) for h in frame.columns]
    k = len(headers)
    cols = [frame[h].to_numpy(dtype=object) for h in frame.columns]

    def cell_text(x) -> str:
        return "" if x is None or (isinstance(x, float) and x != x) else str(x)

    ok = not any(("," in h or '"' in h or "\n" in h) for h in headers)
    if ok:
        with open(path, "w", encoding=encoding, newline="") as fh:
            fh.write(",".join(headers) + newline)
            m = len(frame)
            for a in range(0, m, 100_000):
                b = min(m, a + 100_000)
                parts = [c[a:b].tolist() for c in cols]
                try:
                    text = newline.join(map(",".join, zip(*parts)))
                except TypeError:  # None / NaN / numbers among the cells
                    parts = [[x if x.__class__ is str else cell_text(x) for x in p] for p in parts]
                    text = newline.join(map(",".join, zip(*parts)))
                n = b - a
                if (
                    text.count(",") != n * (k - 1)
                    or '"' in text
                    or text.count("\n") != n - 1
                    or text.count("\r") != (n - 1 if newline == "\r\n" else 0)
                ):
                    ok = False
                    break
                fh.write(text + newline)
    if not ok:
        frame.to_csv(path, index=False, encoding=encoding, lineterminator=newline)


# -------------------------------------------------------------------- XLSX
def sheet_names(profile, table: str, n_rows: int) -> list[str]:
    base = profile.sheet_for(table) or table
    k = max(1, -(-n_rows // XLSX_MAX_DATA_ROWS))
    pat = profile.raw.get("sheet_continuation", "{sheet}_{n}")
    return [base] + [pat.format(sheet=base, n=i) for i in range(2, k + 1)]


def sheet_row(index: int) -> tuple[int, int]:
    """(sheet number 0.., Excel row number) of the data row with 0-based ``index``."""
    return index // XLSX_MAX_DATA_ROWS, index % XLSX_MAX_DATA_ROWS + 2


def _col_letter(c: int) -> str:
    out = ""
    c += 1
    while c:
        c, r = divmod(c - 1, 26)
        out = chr(65 + r) + out
    return out


def _escape_one(t: str) -> str:
    """XML data escaping as xlsxwriter does it (&, <, >)."""
    if "&" in t or "<" in t or ">" in t:
        return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return t


def _rows_xml(columns: list[np.ndarray], is_date: list[bool], first_row: int, date_format) -> str:
    """The <row> elements of data rows (0-based sheet row ``first_row`` onwards), exactly
    as xlsxwriter's constant_memory writer emits them (inline strings, numbers as %.16G,
    date cells as numbers with the date format's xf index). Each distinct cell value is
    rendered once (``pd.factorize``); rows are assembled with vectorised concatenation."""
    m = len(columns[0]) if columns else 0
    if m == 0:
        return ""
    rownum = (np.arange(first_row, first_row + m) + 1).astype(str).astype(object)
    row_xml = ('<row r="' + rownum + '">').astype(object)
    for c, (col, isd) in enumerate(zip(columns, is_date)):
        codes, uniq = pd.factorize(np.asarray(col, dtype=object), use_na_sentinel=True)
        uniq = np.asarray(uniq, dtype=object)
        body = np.empty(len(uniq) + 1, dtype=object)
        body[-1] = None  # code -1: blank cell
        isstr = np.array([u.__class__ is str for u in uniq], dtype=bool)
        if isstr.any():
            body[:-1][isstr] = ['" t="inlineStr"><is><t>' + _escape_one(u) + "</t></is></c>" for u in uniq[isstr]]
        if (~isstr).any():
            nums = np.char.mod("%.16G", np.asarray(uniq[~isstr], dtype=float))
            s_attr = f'" s="{date_format._get_xf_index()}"' if isd else '"'
            body[:-1][~isstr] = [s_attr + "><v>" + x + "</v></c>" for x in nums.tolist()]
        cells = body[codes]
        present = codes >= 0
        if present.all():
            row_xml = row_xml + ('<c r="' + _col_letter(c) + rownum) + cells
        elif present.any():
            piece = np.full(m, "", dtype=object)
            piece[present] = ('<c r="' + _col_letter(c) + rownum[present]) + cells[present]
            row_xml = row_xml + piece
    return "".join((row_xml + "</row>").tolist())


def write_xlsx(
    path: Path, sheets: list[tuple[str, pd.DataFrame, set]], created: datetime | None = None, fast: bool = True
) -> None:
    """One workbook; ``sheets`` = [(sheet names, cells, date headers)] - a table longer
    than a sheet continues on its continuation sheets (names from ``sheet_names``).

    xlsxwriter in ``constant_memory`` mode builds the workbook; with ``fast`` the data rows
    are streamed into its row-data file in bulk, in the very XML its cell writer would
    produce (``tests/test_synth_formats.py`` checks the identity), ~10x faster.
    """
    import xlsxwriter

    wb = xlsxwriter.Workbook(
        str(path),
        {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False},
    )
    wb.set_properties({"created": created or datetime(2025, 1, 1)})
    dfmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    chunk = 50_000
    for names, cells, date_heads in sheets:
        headers = list(cells.columns)
        is_date = [h in date_heads for h in headers]
        n = len(cells)
        arrays = [cells[h].to_numpy(dtype=object) for h in headers]
        for s, name in enumerate(names):
            ws = wb.add_worksheet(name)
            wstr, wnum = ws._write_string, ws._write_number
            for c, h in enumerate(headers):
                wstr(0, c, h)
            lo, hi = s * XLSX_MAX_DATA_ROWS, min(n, (s + 1) * XLSX_MAX_DATA_ROWS)
            if fast:
                if hi > lo:
                    ws._write_single_row(1)  # flush the header row
                    for a in range(lo, hi, chunk):
                        b = min(hi, a + chunk)
                        ws.row_data_fh.write(_rows_xml([col[a:b] for col in arrays], is_date, a - lo + 1, dfmt))
                    ws.previous_row = hi - lo
                    ws.dim_rowmax = hi - lo
                    ws.dim_colmax = max(ws.dim_colmax or 0, len(headers) - 1)
                continue
            spec = list(zip(range(len(headers)), arrays, is_date))
            for i in range(lo, hi):
                r = i - lo + 1
                for c, col, isd in spec:
                    v = col[i]
                    if v is None:
                        continue
                    if v.__class__ is str:
                        wstr(r, c, v)
                    elif isd:
                        wnum(r, c, v, dfmt)
                    elif v == v:  # not NaN
                        wnum(r, c, v)
    wb.close()


_JOBS: dict[int, tuple] = {}


def _run_job(key: int) -> None:
    fn, args = _JOBS[key]
    fn(*args)


class BackgroundWriters:
    """Write jobs (fn, args) in forked processes while the caller goes on; the job data is
    inherited through fork, not pickled. Small jobs (or no fork) run inline."""

    def __init__(self, inline_below_rows: int = 200_000):
        self.inline_below = inline_below_rows
        self.procs = []
        self.ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None

    def submit(self, fn, args, rows: int) -> None:
        if self.ctx is None or rows < self.inline_below:
            fn(*args)
            return
        key = max(_JOBS, default=-1) + 1
        _JOBS[key] = (fn, args)
        p = self.ctx.Process(target=_run_job, args=(key,))
        p.start()
        del _JOBS[key]  # the child has its copy
        self.procs.append(p)

    def terminate(self) -> None:
        """Stop this object's own writer processes (after an error in the caller)."""
        for p in self.procs:
            if p.is_alive():
                p.terminate()
            p.join()
        self.procs = []

    def join(self) -> None:
        failed = []
        for p in self.procs:
            p.join()
            if p.exitcode != 0:
                failed.append(p.exitcode)
        self.procs = []
        if failed:
            raise RuntimeError(f"writer process failed (exit codes {failed})")
