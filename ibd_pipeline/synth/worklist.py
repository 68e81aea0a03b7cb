"""The senior reviewer: fill a discrepancy worklist from the ground truth (round ADJ).

A worklist is what the pipeline writes to a center's outbox: the CRF ``adjudications``
table in the center's own profile (same format, encoding, headers and code vocabulary as
the center's other files - e.g. zju2 an .xlsx with sheet 裁定 and Chinese headers, the
``table`` column in Chinese) plus context columns such as ``value_a``/``value_b`` that
the reviewer ignores. Headers may be the center's or canonical; ``field`` may be the
canonical field name or the center's header of it; ``mrn`` the center's record number
(or, failing that, the pseudonymous patient id, resolved with the pseudonym key).

The reviewer writes the true value (round A of the ground truth) as canonical text
(``truth.canonical_text``: ISO dates, true/false, canonical codes, canonical units), an
empty value when the agreed value is missing; for a one-sided record (field ``*``)
``present`` when the record exists, ``absent`` when it does not (the reconcile module's
convention). Text cells the pipeline protected against formula injection (a leading
``'`` before ``= + - @``) are read back without the quote.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import load_centers, load_crf
from ._util import day_of, rng_for
from .truth import read_truth_table, record_keys
from .writers import CenterFormatter, file_name, sheet_names, write_csv, write_xlsx

ADJ_FIELDS = ["mrn", "table", "record_key", "field", "resolved_value", "reviewer_id", "decided_on"]


def _cell_text(v) -> str:
    if isinstance(v, str) and len(v) > 1 and v[0] == "'" and v[1] in "=+-@\t\r":
        return v[1:].strip()
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:
            return ""
        return str(int(v)) if v.is_integer() else format(v, ".15g")
    if hasattr(v, "isoformat"):
        return v.isoformat()[:10]
    return str(v).strip()


def read_worklist(path: Path, profile) -> pd.DataFrame:
    """The worklist as text cells (columns as written)."""
    path = Path(path)
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        from python_calamine import CalamineWorkbook

        wb = CalamineWorkbook.from_path(str(path))
        sheet = profile.sheet_for("adjudications")
        name = sheet if sheet in wb.sheet_names else wb.sheet_names[0]
        rows = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
        if not rows:
            return pd.DataFrame()
        header = [_cell_text(h) for h in rows[0]]
        data = [[_cell_text(v) for v in r] + [""] * (len(header) - len(r)) for r in rows[1:]]
        data = [r[: len(header)] for r in data if any(x != "" for x in r)]
        return pd.DataFrame(data, columns=header)
    encs = [profile.encoding or "utf-8-sig", "utf-8-sig", "gb18030"]
    for enc in encs:
        try:
            enc2 = "utf-8-sig" if enc.lower().replace("_", "-") in ("utf-8", "utf8") else enc
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=enc2)
            return df.apply(lambda col: col.map(_cell_text))
        except UnicodeDecodeError:
            continue
    raise ValueError(f"cannot decode {path}")


def _column_map(columns, profile, crf) -> dict[str, str]:
    """Worklist column -> adjudications field."""
    cands = {}
    vocab_h = (profile.vocabulary or {}).get("headers", {}).get("adjudications", {})
    for f in ADJ_FIELDS:
        for name in {f, profile.header_for("adjudications", f), vocab_h.get(f, f)}:
            cands[name] = f
    return {c: cands[c] for c in columns if c in cands}


def fill_worklist(
    worklist: Path, center: str, truth_dir: Path, out: Path, reviewer_id: str = "REV01", decided_on: str | None = None
) -> Path:
    """Play the senior reviewer: read a discrepancy worklist the pipeline wrote to a center's outbox (layout = the CRF
    `adjudications` table in the center's own profile - same format/encoding/headers/code vocabulary as that center's
    other files, with extra context columns value_a/value_b the reviewer ignores), fill resolved_value (the true value
    from the ground truth), reviewer_id and decided_on, and write it as an ADJ delivery file named per the center's file
    pattern into `out` (a directory, normally the center inbox). Return the path."""
    crf = load_crf()
    profile = load_centers()[center]
    wl = read_worklist(Path(worklist), profile)
    cmap = _column_map(wl.columns, profile, crf)
    col = {f: c for c, f in cmap.items()}
    for req in ("mrn", "table", "record_key", "field"):
        if req not in col:
            raise ValueError(f"worklist {worklist} has no column for {req!r} (columns: {list(wl.columns)})")
    table_codes = (profile.vocabulary or {}).get("codes", {}).get("table", {})
    tables = wl[col["table"]].map(lambda x: table_codes.get(x, x)).astype(str).to_numpy()
    mrns = wl[col["mrn"]].astype(str).str.strip().to_numpy()
    keys = wl[col["record_key"]].astype(str).str.strip().to_numpy()
    fields = wl[col["field"]].astype(str).str.strip().to_numpy()
    # truth lookup: (table, mrn, record_key) -> row of canonical text
    truth: dict[str, dict] = {}
    for t in crf.data_tables:
        p = Path(truth_dir) / center / f"{t}.csv"
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8")
        typed = read_truth_table(truth_dir, center, t)
        if t == "patients":
            rk = np.full(len(raw), "patient", dtype=object)
        else:
            frame = pd.DataFrame({k: typed[k] for k in crf.table(t).key if k != "mrn"})
            for k in frame.columns:
                if crf.table(t).fields[k].type == "date":
                    frame[k] = frame[k].values.astype("datetime64[D]").astype(np.int64)
            rk = record_keys(t, frame)
        truth[t] = {(m, k): row for m, k, row in zip(raw["mrn"], rk, raw.to_dict("records"))}
    known = {m for d in truth.values() for (m, _) in d}
    alias = {}
    if any(m not in known for m in mrns):
        try:
            from ..config import read_pseudonym_key
            from ..pseudonym import patient_id

            key = read_pseudonym_key()
            alias = {patient_id(key, center, m): m for m in known}
        except Exception:  # no key: unresolved rows stay empty
            alias = {}
    # headers of the table's fields as the center writes them -> canonical field
    vocab = (profile.vocabulary or {}).get("headers", {})
    resolved = []
    for t, m, k, f in zip(tables, mrns, keys, fields):
        m2 = m if m in known else alias.get(m, m)
        if t in crf.tables and f not in crf.table(t).fields and f != "*":
            rev = {profile.header_for(t, x): x for x in crf.table(t).fields}
            rev.update({h: x for x, h in vocab.get(t, {}).items()})
            f = rev.get(f, f)
        row = truth.get(t, {}).get((m2, k))
        if f == "*":
            resolved.append("present" if row is not None else "absent")
        else:
            resolved.append("" if row is None else str(row.get(f, "")))
    decided = decided_on or date.today().isoformat()
    yyyymmdd = decided.replace("-", "")[:8]
    canon = pd.DataFrame(
        {
            "mrn": mrns,
            "table": tables,
            "record_key": keys,
            "field": fields,
            "resolved_value": resolved,
            "reviewer_id": reviewer_id,
            "decided_on": day_of(decided),
        }
    )
    fmt = CenterFormatter(profile, crf, rng_for(0, "adjudication", center, yyyymmdd))
    cells = fmt.table("adjudications", canon, reviewer_id, np.array([], dtype=object))
    # resolved values are canonical text; empty stays empty (no random missing token)
    h_res = profile.header_for("adjudications", "resolved_value")
    cells[h_res] = [None if (v == "" and fmt.xlsx) else v for v in resolved]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / file_name(profile, "ADJ", "adjudications", yyyymmdd)
    if profile.format == "xlsx":
        write_xlsx(
            path, [(sheet_names(profile, "adjudications", len(cells)), cells, fmt.date_headers("adjudications"))]
        )
    else:
        write_csv(path, cells, profile.encoding)
    return path
