"""Text a coordinator opens in Excel (worklists, reviewer lists, rejected-row lists) is
neutralised against formula injection: a cell that starts with = + - @ tab or CR gets a
leading single quote, unless it is a plain number (``-1.5``).

Outbox files share one permission mode, ``OUTBOX_FILE_MODE`` (owner read-write, group
and others read: what a report written with the usual umask 022 gets), so a workbook
written through a private temporary file is as readable as the reports beside it.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
OUTBOX_FILE_MODE = 0o644
MAX_WIDTH = 60


def neutralise(text: str) -> str:
    """One cell's text, safe to open in a spreadsheet."""
    if text and text.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def unneutralise(text: str) -> str:
    """A cell read back: the quote ``neutralise`` added is dropped."""
    if len(text) > 1 and text[0] == "'" and text[1:].startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text[1:]):
        return text[1:]
    return text


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every text cell of a frame neutralised (numbers and missing values untouched)."""
    return df.map(lambda v: neutralise(v) if isinstance(v, str) else v)


def text_width(text: str) -> int:
    """Display width of a cell: East Asian wide characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


HEADER_FORMAT = {"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "top"}


@contextmanager
def outbox_workbook(path: str | Path) -> Iterator:
    """An xlsxwriter Workbook for ``path``, written atomically: into a private temporary
    file beside it (every cell text as given - no number, formula or URL guessing), which
    replaces ``path`` with ``OUTBOX_FILE_MODE`` when the block ends without error."""
    import xlsxwriter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix or ".xlsx", dir=path.parent)
    os.close(fd)
    try:
        wb = xlsxwriter.Workbook(tmp, {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False})
        try:
            yield wb
        finally:
            wb.close()
        os.chmod(tmp, OUTBOX_FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cell(v) -> str:
    if v is None:
        return ""
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def print_layout(ws) -> None:
    """A coordinator prints the sheet: A4 landscape, every column on one page's width,
    the header row repeated on each page (LibreOffice and Excel otherwise spread the
    columns over several pages)."""
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(0)


def write_table_workbook(
    path: str | Path,
    sheet: str,
    headers: Sequence[str],
    rows: Sequence[Sequence],
    notes: Sequence[tuple[str, str]] = (),
) -> Path:
    """A one-table workbook for a coordinator: ``headers`` (bilingual text) and ``rows``
    as neutralised text cells, frozen header, widths that fit, an autofilter, and a
    sheet ``说明 Instructions`` with ``notes`` (Chinese, English) when given. Written
    atomically with ``OUTBOX_FILE_MODE``."""
    path = Path(path)
    cells = [[neutralise(_cell(v)) for v in r] for r in rows]
    with outbox_workbook(path) as wb:
        head = wb.add_format(HEADER_FORMAT)
        ws = wb.add_worksheet(sheet)
        for c, h in enumerate(headers):
            ws.write_string(0, c, neutralise(str(h)), head)
            width = max([text_width(str(h))] + [text_width(r[c]) for r in cells[:5000]])
            ws.set_column(c, c, min(MAX_WIDTH, max(8, width + 2)))
        for r, row in enumerate(cells, start=1):
            for c, v in enumerate(row):
                if v != "":
                    ws.write_string(r, c, v)
        ws.freeze_panes(1, 0)
        print_layout(ws)
        if cells:
            ws.autofilter(0, 0, len(cells), len(headers) - 1)
        if notes:
            wrap = wb.add_format({"text_wrap": True, "valign": "top"})
            info = wb.add_worksheet("说明 Instructions")
            info.set_column(0, 1, 80, wrap)
            for r, (zh, en) in enumerate(notes):
                info.write_string(r, 0, neutralise(zh), wrap)
                info.write_string(r, 1, neutralise(en), wrap)
    return path


def set_outbox_modes(folder: str | Path) -> None:
    """Give every file of a center's outbox ``OUTBOX_FILE_MODE`` (reports, notes and the
    status page are written by ``open`` under the process umask; the workbooks through a
    private temporary file): one mode for all, whatever the umask."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        try:
            if p.is_file() and not p.is_symlink() and not p.name.startswith(".tmp-"):
                if (p.stat().st_mode & 0o777) != OUTBOX_FILE_MODE:
                    os.chmod(p, OUTBOX_FILE_MODE)
        except OSError:  # a file removed meanwhile, or not ours: left as it is
            continue
