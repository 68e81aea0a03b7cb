"""The senior reviewer: fill a discrepancy worklist from the ground truth (round ADJ).

A worklist is what the pipeline writes to a center's outbox (``reconcile/worklist.py``):
an .xlsx workbook in the center's own terms - its headers, table names, field headers,
code spellings, date format and lab units. The reviewer plays the coordinator: for each
row the true value (round A of the ground truth) is written the way the center writes
it (``reconcile.CenterTerms.to_center``: 是/否, 男/女, zju2 HDL in mg/dL ...), empty when
the agreed value is missing; on a one-sided record (field ``*``) whether it exists
(有/无, present/absent); the reviewer id and the date in 审核人/裁定日期. The filled
workbook is saved under the worklist's own name into the center's inbox (the return
the loading reads back through the same profile).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import load_centers, load_crf
from ..reconcile.center_terms import CenterTerms
from ..reconcile.values import ABSENT, PRESENT
from ..reconcile.worklist import read_worklist_cells, write_worklist_book
from .truth import read_truth_table, record_keys


def fill_worklist(
    worklist: Path, center: str, truth_dir: Path, out: Path, reviewer_id: str = "REV01", decided_on: str | None = None
) -> Path:
    """Play the senior reviewer: read a discrepancy worklist the pipeline wrote to a center's outbox (an .xlsx in the
    center's own terms), fill 裁定值 (the true value from the ground truth, written as the center writes it), 审核人 and
    裁定日期, and save the workbook under its own name into `out` (a directory, normally the center inbox): the
    coordinator's return. Return the path."""
    crf = load_crf()
    profile = load_centers()[center]
    terms = CenterTerms(profile, crf)
    cells = read_worklist_cells(Path(worklist), profile)
    truth = _truth_rows(Path(truth_dir), center, crf)
    known = {m for d in truth.values() for (m, _) in d}
    alias = {}
    if any(m not in known for m in cells["mrn"]):
        try:  # a worklist naming pseudonymous ids instead of record numbers
            from ..config import read_pseudonym_key
            from ..pseudonym import patient_id

            key = read_pseudonym_key()
            alias = {patient_id(key, center, m): m for m in known}
        except Exception:  # no key: unresolved rows stay empty
            alias = {}
    decided = decided_on or date.today().isoformat()
    resolved = []
    for r in cells.to_dict("records"):
        t = terms.table_from(r["table"])
        f = terms.field_from(t, r["field"])
        k = terms.record_key_from(t, r["record_key"])
        m = r["mrn"] if r["mrn"] in known else alias.get(r["mrn"], r["mrn"])
        row = truth.get(t, {}).get((m, k))
        if f == "*":
            canon = PRESENT if row is not None else ABSENT
        else:
            canon = "" if row is None else str(row.get(f, ""))
        resolved.append(terms.to_center(t, f, k, canon))
    filled = cells.assign(
        resolved_value=resolved, reviewer_id=reviewer_id,
        decided_on=terms.to_center("adjudications", "decided_on", "", decided),
    )
    return write_worklist_book(filled, profile, Path(out) / Path(worklist).name, crf=crf)


def _truth_rows(truth_dir: Path, center: str, crf) -> dict[str, dict]:
    """table -> (mrn, record_key) -> the truth row as canonical text."""
    truth: dict[str, dict] = {}
    for t in crf.data_tables:
        p = truth_dir / center / f"{t}.csv"
        if not p.exists():  # a table this study does not deliver
            continue
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
    return truth
