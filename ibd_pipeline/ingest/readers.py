"""Reading delivered files as text, in bounded chunks.

* CSV: the profile's encoding; the whole file is decoded once up front (streaming, 1 MiB
  blocks) so that a wrong encoding is reported with its byte offset before anything is
  processed; then pandas' C parser reads ``chunk_rows`` records at a time, every cell
  as text.
* xlsx: python-calamine; sheets are matched to CRF tables by the profile's sheet names
  (``sheets``) and continuation sheets (``sheet_continuation``, "<sheet>_2", ...). Every
  cell becomes text: date cells ISO dates (YYYY-MM-DD), numbers without float noise
  (45, not 45.0), booleans true/false.

Row numbers are what the coordinator sees (header = row 1 in a CSV; the sheet's own
row numbers in a workbook). Blank rows are skipped but keep their numbers.
"""

from __future__ import annotations

import codecs
import csv
import datetime as _dt
import itertools
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ibd_pipeline.config import CenterProfile

from .errors import UnreadableFileError

DEFAULT_CHUNK_ROWS = 200_000
_BLOCK = 1 << 20


@dataclass
class RawPart:
    """One table's worth of a file (a CSV, or one sheet of a workbook)."""

    table: str
    sheet: str | None
    header: list[str]
    header_row: int
    chunks: Iterator[tuple[pd.DataFrame, np.ndarray]]  # (text frame, positional columns; source row numbers)
    warnings: list[str] = field(default_factory=list)


def clean_header(h) -> str:
    return ("" if h is None else _cell_text(h)).replace("\ufeff", "").strip()


def header_key(h: str) -> str:
    """Loose header comparison: NFKC (full-width brackets), no whitespace, case-folded."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", h)).casefold()


# ---------------------------------------------------------------------------- CSV
def scan_text_file(path: Path, encoding: str, file_name: str) -> None:
    """Raise UnreadableFileError unless the file is non-empty text in ``encoding``."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableFileError(file_name, "the file is empty (0 bytes).")
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head.startswith(b"PK\x03\x04"):
            raise UnreadableFileError(
                file_name, "this is an Excel workbook or another zip file, not a CSV text file; save it as CSV."
            )
        if head.startswith(b"\xd0\xcf\x11\xe0"):
            raise UnreadableFileError(file_name, "this is an old Excel (.xls) workbook, not a CSV text file; save it as CSV.")
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise UnreadableFileError(
                file_name, f"the file is UTF-16 text; this center's files must be {encoding}. Save it as CSV in {encoding}."
            )
        fh.seek(0)
        dec = codecs.getincrementaldecoder(encoding)(errors="strict")
        offset = 0
        has_text = False
        while True:
            block = fh.read(_BLOCK)
            final = not block
            nul = block.find(b"\x00")
            if nul >= 0:
                raise UnreadableFileError(
                    file_name,
                    f"the file contains binary data (a NUL byte at byte offset {offset + nul}); it is not a CSV text file.",
                )
            pending = len(dec.getstate()[0])
            try:
                text = dec.decode(block, final=final)
            except UnicodeDecodeError as e:
                at = max(offset - pending + e.start, 0)
                bad = e.object[e.start : e.start + 4]
                raise UnreadableFileError(
                    file_name,
                    f"the file is not valid {encoding} text: undecodable bytes {bad.hex(' ')} at byte offset {at}. "
                    f"Save the file in the {encoding} encoding (this center's profile) and deliver it again.",
                ) from None
            if not has_text and text.replace("\ufeff", "").strip():
                has_text = True
            if final:
                break
            offset += len(block)
    if not has_text:
        raise UnreadableFileError(file_name, "the file is empty (no header line).")


def csv_tail_problem(path: Path, encoding: str) -> str | None:
    """Why a CSV looks cut off at its end (a torn last row: an open quoted value, or fewer
    fields than the header line and no line end), or None. The intake holds such a copy;
    the reader rejects it (a torn row never becomes part of a delivery)."""
    import io

    size = path.stat().st_size
    if size == 0:
        return None
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
        if size > len(head):
            fh.seek(max(size - (1 << 16), 0))
            tail = fh.read()
        else:
            tail = head
    if tail.endswith((b"\n", b"\r")):
        return None  # ends with a line end (a quoted value left open is the parser's error)
    try:
        header_text = head.decode(encoding, errors="ignore")
        header = next(csv.reader(io.StringIO(header_text.lstrip("\ufeff").split("\n", 1)[0])), [])
        last_line = tail.rsplit(b"\n", 1)[-1].decode(encoding, errors="ignore")
    except (UnicodeError, LookupError, csv.Error):
        return None
    if size > len(head) or b"\n" in head:  # the last line is a data row, not the header
        if last_line.count('"') % 2 == 1:
            return "the last row ends inside a quoted value and has no line end (the copy is incomplete)"
        try:
            fields = next(csv.reader([last_line]), [])
        except csv.Error:
            return "the last row cannot be read and has no line end (the copy is incomplete)"
        if len(fields) < len(header):
            return (
                f"the last row has {len(fields)} of the header's {len(header)} fields and no line end "
                "(the copy is incomplete)"
            )
    return None



def read_csv_part(path: Path, profile: CenterProfile, table: str, file_name: str, chunk_rows: int) -> RawPart:
    encoding = profile.encoding or "utf-8-sig"
    scan_text_file(path, encoding, file_name)
    torn = csv_tail_problem(path, encoding)
    if torn is not None:
        raise UnreadableFileError(file_name, f"{torn}. Nothing of it was loaded; deliver the whole file again.")
    header: list[str] = []
    try:
        with open(path, encoding=encoding, newline="") as fh:
            for rec in csv.reader(fh):
                if any(c.strip() for c in rec):  # leading blank lines before the header are skipped
                    header = rec
                    break
    except (csv.Error, UnicodeError, ValueError) as e:
        raise UnreadableFileError(file_name, f"the header line cannot be read as CSV ({e}).") from None
    header = [clean_header(h) for h in header]
    if not any(header):
        raise UnreadableFileError(file_name, "the file has no header line.")
    ncols = len(header)

    def chunks() -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        reader = pd.read_csv(
            path,
            header=None,
            names=list(range(ncols)),
            index_col=False,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding=encoding,
            chunksize=chunk_rows,
            engine="c",
        )
        seen_header = False
        try:
            for chunk in reader:
                rows = chunk.index.to_numpy(dtype=np.int64) + 1  # record i (0-based) is row i + 1
                if not seen_header:
                    # drop everything up to and including the header record
                    nonblank = (chunk != "").any(axis=1).to_numpy()
                    first = int(np.argmax(nonblank)) if nonblank.any() else len(chunk)
                    if first < len(chunk):
                        seen_header = True
                    chunk, rows = chunk.iloc[first + 1 :], rows[first + 1 :]
                yield chunk.reset_index(drop=True), rows
        except pd.errors.ParserError as e:
            raise UnreadableFileError(file_name, _parser_problem(str(e), ncols)) from None
        except UnicodeDecodeError as e:  # scan_text_file should have caught it
            raise UnreadableFileError(file_name, f"the file is not valid {encoding} text ({e.reason}).") from None
        except (ValueError, OverflowError, MemoryError, pd.errors.EmptyDataError) as e:
            raise UnreadableFileError(file_name, f"the file is not a readable CSV file ({type(e).__name__}: {e}).") from None

    return RawPart(table=table, sheet=None, header=header, header_row=1, chunks=chunks())


def _parser_problem(msg: str, ncols: int) -> str:
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
    if m:
        return (
            f"a row has {m.group(3)} fields but the header has {ncols} (near line {m.group(2)} of the file); "
            "check for unquoted commas in values or extra separators at the end of lines."
        )
    return f"the file is not a readable CSV file ({msg.strip().splitlines()[0] if msg.strip() else 'parser error'})."


# ---------------------------------------------------------------------------- xlsx
def _num_text(v: float) -> str:
    if v != v or v in (float("inf"), float("-inf")):
        return ""
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def _cell_text(v) -> str:
    if v is None:
        return ""
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return _num_text(v)
    if isinstance(v, _dt.datetime):
        return v.date().isoformat()
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, _dt.time):
        return v.isoformat()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _num_text(float(v))
    return str(v)


def cells_to_text(values: np.ndarray) -> np.ndarray:
    """Workbook cell values -> text, once per distinct value (booleans and the numbers
    0/1, which compare equal to them, are resolved per cell)."""
    codes, uniq = pd.factorize(values, use_na_sentinel=False)
    text = np.array([_cell_text(u) for u in uniq], dtype=object)
    out = text[codes]
    amb = np.array(
        [(not isinstance(u, str)) and isinstance(u, (bool, int, float)) and u in (0, 1) for u in uniq], dtype=bool
    )
    if amb.any():
        idx = np.flatnonzero(amb[codes])
        out[idx] = [_cell_text(v) for v in values[idx]]
    return out


def _sheet_label(names: list[str], name: str) -> str:
    """A delivered sheet name as shown in a message: its position, and the name itself
    only when it passes the privacy check (STUDY.md "Privacy")."""
    from ibd_pipeline.privacy import safe_label

    pos = names.index(name) + 1 if name in names else 0
    return f"{safe_label(name)} (sheet no. {pos})" if pos else safe_label(name)


_TAG_ATTR = re.compile(r'([\w:]+)="([^"]*)"')


def _tags(xml: str, tag: str) -> list[dict[str, str]]:
    return [dict(_TAG_ATTR.findall(m)) for m in re.findall(rf"<(?:\w+:)?{tag}\b([^>]*)/?>", xml)]


_CELL = re.compile(rb"<c\b([^>]*?)(?:/>|>(.*?)</c>)", re.S)


def formula_cells_without_value(path: Path, sheets: list[str]) -> dict[str, list[str]]:
    """Cells of ``sheets`` that hold a formula but no computed (cached) value - a workbook
    saved by a program that does not calculate; read naively they would be empty or 0
    (issue 18: a lab 81 became 0). Sheet name -> cell references (e.g. ``E12``)."""
    import zipfile
    import zlib

    out: dict[str, list[str]] = {}
    try:
        with zipfile.ZipFile(path) as z:
            wb = z.read("xl/workbook.xml").decode("utf-8", "replace")
            rels = z.read("xl/_rels/workbook.xml.rels").decode("utf-8", "replace")
            target = {r.get("Id"): r.get("Target", "") for r in _tags(rels, "Relationship")}
            members = set(z.namelist())
            for sh in _tags(wb, "sheet"):
                name = sh.get("name", "")
                name = name.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'")
                if name not in sheets:
                    continue
                t = target.get(sh.get("r:id", ""), "").lstrip("/")
                part = t if t.startswith("xl/") else f"xl/{t}"
                if part not in members:
                    continue
                with z.open(part) as fh:
                    data = fh.read()
                if b"<f" not in data:
                    continue
                refs = []
                for m in _CELL.finditer(data):
                    body = m.group(2) or b""
                    if b"<f" in body and not re.search(rb"<v>[^<]", body):
                        r = re.search(rb'\br="([A-Z]+\d+)"', m.group(1))
                        refs.append(r.group(1).decode() if r else "?")
                if refs:
                    out[name] = refs
    except (KeyError, OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError):
        return out  # the workbook reader reports a damaged file itself (a corrupt deflate stream: zlib.error)
    return out


def _sheet_matcher(profile: CenterProfile):
    base = {header_key(s): (s, t) for s, t in profile.sheets.items()}
    pat = profile.raw.get("sheet_continuation")
    cont = []
    if pat:
        for s, t in profile.sheets.items():
            rx = re.escape(pat).replace(re.escape("{sheet}"), re.escape(s)).replace(re.escape("{n}"), r"(\d+)")
            cont.append((re.compile(rx), s, t))

    def match(name: str) -> tuple[str, str, int] | None:
        hit = base.get(header_key(name))
        if hit:
            return hit[1], hit[0], 1
        for rx, s, t in cont:
            m = rx.fullmatch(name.strip())
            if m and int(m.group(1)) >= 2:
                return t, s, int(m.group(1))
        return None

    return match


def open_workbook(path: Path, file_name: str):
    import python_calamine as pc

    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
        if not head:
            raise UnreadableFileError(file_name, "the file is empty (0 bytes).")
        if not head.startswith(b"PK\x03\x04"):
            raise UnreadableFileError(
                file_name, "this is not an Excel workbook (.xlsx); the file content is not a spreadsheet."
            )
        return pc.CalamineWorkbook.from_path(str(path))
    except UnreadableFileError:
        raise
    except Exception as e:  # noqa: BLE001 - calamine raises many kinds
        raise UnreadableFileError(
            file_name, f"the workbook cannot be opened; it may be damaged or incomplete ({type(e).__name__}: {e})."
        ) from None


def _load_sheet(wb, name: str, file_name: str):
    try:
        sheet = wb.get_sheet_by_name(name)
    except Exception as e:  # noqa: BLE001
        raise UnreadableFileError(
            file_name, f"sheet {name!r} cannot be read; the workbook may be damaged ({type(e).__name__}: {e})."
        ) from None
    return sheet


def _nonblank(row) -> bool:
    return any((c is not None and not (isinstance(c, str) and not c.strip())) for c in row)


def _sheet_is_empty(sheet) -> bool:
    if sheet.start is None:
        return True
    return not any(_nonblank(r) for r in sheet.iter_rows())  # stops at the first filled row


def read_xlsx_parts(
    path: Path, profile: CenterProfile, file_name: str, round_: str, chunk_rows: int, allowed_tables: set[str],
    warnings: list[str],
) -> Iterator[RawPart]:
    """The workbook's table sheets (base sheet before its continuations), read lazily
    one at a time; notes for the coordinator are appended to ``warnings``.

    Sheets the profile does not know, and sheets of a table that does not belong in
    the round, are ignored with a warning when empty and make the workbook unreadable
    when they hold data (a misnamed sheet must not silently drop a table)."""
    wb = open_workbook(path, file_name)
    match = _sheet_matcher(profile)
    try:
        names = list(wb.sheet_names)
    except Exception as e:  # noqa: BLE001
        raise UnreadableFileError(file_name, f"the workbook cannot be read ({type(e).__name__}: {e}).") from None
    expected = ", ".join(f"{s} ({t})" for s, t in profile.sheets.items())
    try:
        kinds = {m.name: m.typ for m in wb.sheets_metadata}
    except Exception:  # noqa: BLE001
        kinds = {}
    import python_calamine as pc

    found: list[tuple[int, int, str, str]] = []
    order: dict[str, int] = {}
    for name in names:
        if kinds.get(name, pc.SheetTypeEnum.WorkSheet) != pc.SheetTypeEnum.WorkSheet:
            warnings.append(f"sheet {_sheet_label(names, name)} is not a worksheet (a chart or macro sheet) and was ignored")
            continue
        hit = match(name)
        if hit is None or hit[0] not in allowed_tables:
            sheet = _load_sheet(wb, name, file_name)
            try:
                empty = _sheet_is_empty(sheet)
            except Exception as e:  # noqa: BLE001
                raise UnreadableFileError(file_name, f"sheet {_sheet_label(names, name)} cannot be read ({type(e).__name__}).") from None
            if empty:
                warnings.append(f"empty sheet {_sheet_label(names, name)} ignored")
                continue
            if hit is None:
                raise UnreadableFileError(
                    file_name,
                    f"sheet {_sheet_label(names, name)} is not one of this center's sheets ({expected}; a long table continues on "
                    "'<sheet>_2', '<sheet>_3', ...). Rename or remove the sheet and deliver the workbook again.",
                )
            raise UnreadableFileError(
                file_name,
                f"sheet {name!r} ({hit[0]}) does not belong in a round {round_} workbook "
                "(round ADJ holds only the adjudications sheet; rounds A and B every other table).",
            )
        table, _base, n = hit
        order.setdefault(table, len(order))
        found.append((order[table], n, name, table))
    if not found:
        raise UnreadableFileError(
            file_name,
            f"the workbook has none of this center's sheets ({expected}); sheets found: "
            + (", ".join(_sheet_label(names, n) for n in names) or "none") + ".",
        )

    no_value = formula_cells_without_value(path, [n for *_, n, _t in found])
    if no_value:
        where = "; ".join(
            f"sheet {_sheet_label(names, n)}: {', '.join(refs[:5])}" + (f" and {len(refs) - 5} more" if len(refs) > 5 else "")
            for n, refs in no_value.items()
        )
        raise UnreadableFileError(
            file_name,
            f"cells hold formulas without a computed value ({where}): the workbook was saved without calculating. "
            "Open it in Excel (or WPS), let it recalculate or paste the values, save and deliver it again. "
            "/ 单元格含有未计算结果的公式：请在Excel中重新计算（或粘贴为数值）后保存并重新提交。",
        )

    def parts() -> Iterator[RawPart]:
        delivered = 0
        for _, _, name, table in sorted(found):
            part = _xlsx_part(wb, name, table, file_name, chunk_rows)
            if part is None:
                warnings.append(f"sheet {name!r} ({table}) is empty and was skipped")
                continue
            delivered += 1
            yield part
        if not delivered:
            raise UnreadableFileError(file_name, f"every sheet of the workbook is empty ({expected}).")

    return parts()


def _xlsx_part(wb, name: str, table: str, file_name: str, chunk_rows: int) -> RawPart | None:
    sheet = _load_sheet(wb, name, file_name)
    try:
        it = iter(sheet.iter_rows())
        header = None
        header_row = 0
        for i, r in enumerate(it):
            if _nonblank(r):
                header, header_row = r, i + 1
                break
    except Exception as e:  # noqa: BLE001
        raise UnreadableFileError(file_name, f"sheet {name!r} cannot be read ({type(e).__name__}: {e}).") from None
    if header is None:
        return None
    del sheet
    hdr = [clean_header(h) for h in header]
    while hdr and hdr[-1] == "":
        hdr.pop()
    ncols = len(hdr)
    warnings: list[str] = []

    def chunks():
        start = header_row + 1  # row number of the next data row
        extra_cells = 0
        while True:
            try:
                batch = list(itertools.islice(it, chunk_rows))  # rows come as lists from calamine
            except Exception as e:  # noqa: BLE001
                raise UnreadableFileError(
                    file_name, f"sheet {name!r} cannot be read completely ({type(e).__name__}: {e})."
                ) from None
            if not batch:
                break
            frame, ex = _batch_frame(batch, ncols)
            extra_cells += ex
            yield frame, np.arange(start, start + len(batch), dtype=np.int64)
            start += len(batch)
        if extra_cells:
            warnings.append(f"sheet {name!r}: {extra_cells} filled cells right of the last header column were ignored")

    return RawPart(table=table, sheet=name, header=hdr, header_row=header_row, chunks=chunks(), warnings=warnings)


def read_table_parts(path: Path, profile: CenterProfile, table: str, file_name: str, chunk_rows: int) -> list[RawPart]:
    """The raw parts of one CRF table of a delivered file: the CSV itself, or of a
    workbook only that table's sheet and its continuation sheets (in their order; the
    other sheets are not loaded)."""
    if profile.format != "xlsx":
        return [read_csv_part(path, profile, table, file_name, chunk_rows)]
    wb = open_workbook(path, file_name)
    match = _sheet_matcher(profile)
    sheets = sorted((hit[2], name) for name in wb.sheet_names if (hit := match(name)) is not None and hit[0] == table)
    return [p for _, name in sheets if (p := _xlsx_part(wb, name, table, file_name, chunk_rows)) is not None]


def _batch_frame(batch: list, ncols: int) -> tuple[pd.DataFrame, int]:
    arr = np.empty((len(batch), max(ncols, len(batch[0]))), dtype=object)
    try:
        arr[:, : len(batch[0])] = batch  # one C-level copy (calamine rows all have the sheet's width)
    except ValueError:  # ragged rows: copy row by row
        width = max(len(r) for r in batch)
        arr = np.empty((len(batch), max(width, ncols)), dtype=object)
        arr[:] = ""
        for i, r in enumerate(batch):
            arr[i, : len(r)] = r
    if arr.shape[1] < ncols:
        arr = np.hstack([arr, np.full((len(batch), ncols - arr.shape[1]), "", dtype=object)])
    extra = 0
    if arr.shape[1] > ncols:
        rest = arr[:, ncols:]
        extra = int(((rest != "") & (rest != None)).sum())  # noqa: E711 (element-wise)
    cols = {j: cells_to_text(arr[:, j]) for j in range(ncols)}
    return pd.DataFrame(cols), extra
