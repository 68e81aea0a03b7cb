"""A center's withdrawal list: the only way a patient leaves the study (record-level
delivery semantics, issue 12; STUDY.md "Privacy" - consent withdrawn).

The file name and columns are the ``withdrawals`` entry of the center's profile
(``centers/<center>.yaml``): ``mrn`` and ``reason`` are required, ``withdrawn_on`` and
``recorded_by`` optional. Pure: no Dagster, no DuckDB. The mrn is pseudonymized at once;
it is never returned.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .config import CenterProfile
from .ingest.errors import UnreadableFileError
from .ingest.readers import header_key
from .pseudonym import patient_id

WITHDRAWAL_COLUMNS = ["patient_id", "withdrawn_on", "reason", "recorded_by", "row_number"]
REQUIRED = ("mrn", "reason")


def withdrawal_spec(profile: CenterProfile) -> dict:
    return profile.raw.get("withdrawals") or {}


def _cells(path: Path, profile: CenterProfile, file_name: str) -> list[list[str]]:
    if profile.format == "xlsx" or str(file_name).lower().endswith(".xlsx"):
        from .ingest.readers import open_workbook

        wb = open_workbook(path, file_name)
        names = wb.sheet_names
        if not names:
            raise UnreadableFileError(file_name, "the workbook has no sheet.")
        rows = wb.get_sheet_by_name(names[0]).to_python(skip_empty_area=True)
        return [["" if c is None else str(c).strip() for c in r] for r in rows]
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, header=None, encoding=profile.encoding or "utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UnreadableFileError(file_name, f"the withdrawal list cannot be read as CSV ({type(exc).__name__}).") from None
    return [[str(c).strip() for c in r] for r in df.itertuples(index=False)]


def read_withdrawals(path: Path, profile: CenterProfile, *, key: bytes, file_name: str) -> pd.DataFrame:
    """The patients a withdrawal list names: WITHDRAWAL_COLUMNS, ``row_number`` as the
    coordinator sees it (header = row 1). Raises UnreadableFileError naming the missing
    column, or the row and field of an empty required cell (never the value)."""
    spec = withdrawal_spec(profile)
    columns: dict[str, str] = spec.get("columns") or {}
    rows = _cells(Path(path), profile, file_name)
    if not rows:
        raise UnreadableFileError(file_name, "the withdrawal list is empty (no header row).")
    header = [header_key(h) for h in rows[0]]
    pos = {f: header.index(header_key(h)) for f, h in columns.items() if header_key(h) in header}
    missing = [f"{columns[f]} ({f})" for f in REQUIRED if f not in pos]
    if missing:
        raise UnreadableFileError(
            file_name, "required columns missing in the withdrawal list: " + ", ".join(missing)
            + " / 撤回名单缺少必填列: " + ", ".join(missing)
        )
    missing_tokens = set(profile.missing_tokens)
    out = []
    for i, r in enumerate(rows[1:], start=2):
        if not any(c for c in r):
            continue

        def cell(f):
            j = pos.get(f)
            v = r[j] if j is not None and j < len(r) else ""
            return None if v in missing_tokens else v

        for f in REQUIRED:
            if cell(f) is None:
                raise UnreadableFileError(
                    file_name, f"row {i}: {columns[f]} ({f}) is empty; every listed patient needs it "
                    f"/ 第 {i} 行: {columns[f]} 为空，每位撤回患者都必须填写。"
                )
        out.append({"patient_id": patient_id(key, profile.id, cell("mrn")), "withdrawn_on": cell("withdrawn_on"),
                    "reason": cell("reason"), "recorded_by": cell("recorded_by"), "row_number": i})
    return pd.DataFrame(out, columns=WITHDRAWAL_COLUMNS)
