"""The discrepancy worklist for a center's senior reviewer, written in the layout of that
center's own ADJ delivery (so the filled-in file goes straight back into the inbox)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Mapping

import pandas as pd

from ibd_pipeline.config import CenterProfile
from ibd_pipeline.reconcile.decisions import OPEN
from ibd_pipeline.reconcile.values import is_missing
from ibd_pipeline.spreadsheet import neutralise

ADJ_TABLE = "adjudications"
#: worklist columns in file order: CRF adjudications fields + the two context columns
WORKLIST_FIELDS = ["mrn", "table", "record_key", "field", "value_a", "value_b", "resolved_value", "reviewer_id", "decided_on"]
CONTEXT_HEADERS = {
    "canonical": {"value_a": "value_a (A)", "value_b": "value_b (B)"},
    "zh": {"value_a": "第一轮值", "value_b": "第二轮值"},
}
XLSX_MAX_ROWS = 1_048_576


def worklist_headers(profile: CenterProfile) -> dict[str, str]:
    """Worklist column -> the header the center writes in its ADJ delivery."""
    out = {f: profile.header_for(ADJ_TABLE, f) for f in WORKLIST_FIELDS if f not in ("value_a", "value_b")}
    lang = "canonical" if profile.raw.get("headers", "canonical") == "canonical" else "zh"
    out.update(CONTEXT_HEADERS[lang])
    return {f: out[f] for f in WORKLIST_FIELDS}


def worklist_file_name(profile: CenterProfile, date: str) -> str:
    ymd = re.sub(r"[-/]", "", str(date))
    if not re.fullmatch(r"\d{8}", ymd):
        raise ValueError(f"worklist date must be YYYYMMDD or YYYY-MM-DD, got {date!r}")
    return profile.file_pattern.format(round="ADJ", table=ADJ_TABLE, yyyymmdd=ymd)


def worklist_frame(discrepancies: pd.DataFrame, center: str, profile: CenterProfile, mrn_of: Mapping[str, str]) -> pd.DataFrame:
    """The center's open discrepancies as worklist cells (text, neutralised), with the
    center's headers: the center's mrn, the table in the center's vocabulary, canonical
    record_key/field, the two rounds' values, and empty resolved_value/reviewer_id/decided_on."""
    d = discrepancies[(discrepancies["center"] == center) & (discrepancies["status"] == OPEN)]
    unknown = sorted({pid for pid in d["patient_id"] if pid not in mrn_of})
    if unknown:
        raise KeyError(f"{center}: no mrn for {len(unknown)} patient(s) of the worklist, e.g. {unknown[0]}")
    table_names = {canon: local for local, canon in profile.code_map("table").items()}
    cols = {
        "mrn": [mrn_of[pid] for pid in d["patient_id"]],
        "table": [table_names.get(t, t) for t in d["table_name"]],
        "record_key": d["record_key"].tolist(),
        "field": d["field"].tolist(),
        "value_a": d["value_a"].tolist(),
        "value_b": d["value_b"].tolist(),
        "resolved_value": [""] * len(d),
        "reviewer_id": [""] * len(d),
        "decided_on": [""] * len(d),
    }
    text = {k: [neutralise("" if is_missing(v) else str(v)) for v in vals] for k, vals in cols.items()}
    headers = worklist_headers(profile)
    return pd.DataFrame({headers[f]: text[f] for f in WORKLIST_FIELDS}, dtype=object)


def write_worklist(
    discrepancies: pd.DataFrame,
    center: str,
    profile: CenterProfile,
    mrn_of: Mapping[str, str],
    out_dir: str | Path,
    date: str,
) -> Path:
    """Write the center's open discrepancies to ``out_dir`` (the center's outbox) as a
    file of the center's ADJ delivery layout (``profile.file_pattern`` with round ADJ):
    csv in the profile's encoding, or an xlsx workbook with the adjudications sheet.
    Every cell is text. Written atomically; returns the path (also for no open rows:
    a file with the header only)."""
    frame = worklist_frame(discrepancies, center, profile, mrn_of)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / worklist_file_name(profile, date)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=out_dir)
    os.close(fd)
    try:
        if profile.format == "xlsx":
            _write_xlsx(frame, profile, Path(tmp))
        elif profile.format == "csv":
            frame.to_csv(tmp, index=False, encoding=profile.encoding or "utf-8-sig", lineterminator="\r\n")
        else:
            raise ValueError(f"{center}: cannot write a worklist in format {profile.format!r}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_xlsx(frame: pd.DataFrame, profile: CenterProfile, path: Path) -> None:
    import xlsxwriter

    sheet = profile.sheet_for(ADJ_TABLE) or ADJ_TABLE
    continuation = profile.raw.get("sheet_continuation", "{sheet}_{n}")
    per_sheet = XLSX_MAX_ROWS - 1
    rows = frame.to_numpy().tolist()
    chunks = [rows[i : i + per_sheet] for i in range(0, len(rows), per_sheet)] or [[]]
    wb = xlsxwriter.Workbook(
        str(path), {"strings_to_numbers": False, "strings_to_formulas": False, "strings_to_urls": False}
    )
    try:
        for n, chunk in enumerate(chunks, start=1):
            name = sheet if n == 1 else continuation.format(sheet=sheet, n=n)
            ws = wb.add_worksheet(name)
            for c, h in enumerate(frame.columns):
                ws.write_string(0, c, h)
                ws.set_column(c, c, max(12, min(40, 2 * len(h) + 4)))
            for r, row in enumerate(chunk, start=1):
                for c, v in enumerate(row):
                    if v != "":
                        ws.write_string(r, c, v)
            ws.freeze_panes(1, 0)
    finally:
        wb.close()
