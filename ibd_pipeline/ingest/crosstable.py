"""Rules that need another table of the same center and round (STUDY.md Workflow 2):

* ``patient_known``: a record whose patient is not in that round's (valid) patients table;
* ``event_after_birth``: a record date before the patient's birth date;
* ``score_matches_diagnosis``: HBI items filled for a patient whose diagnosis is not CD,
  Mayo items filled for a patient whose diagnosis is not UC (IBDU is scored by neither).

Run on the *complete current set* of a center's round (every table's current valid
rows): a later delivery of the patients table changes the verdict on the other tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ibd_pipeline.config import Crf

from .rules import QUARANTINE_COLUMNS, empty_quarantine, reason

HBI_FIELDS = ("hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications")
MAYO_FIELDS = ("mayo_stool", "mayo_bleeding", "mayo_pga", "mayo_endo")
# diagnosis -> the score fields it may carry; a field of a group is allowed only for that diagnosis
SCORE_FIELDS_DEFAULT: dict[str, tuple[str, ...]] = {"CD": HBI_FIELDS, "UC": MAYO_FIELDS}


def event_date_fields(crf: Crf) -> dict[str, list[str]]:
    """Per data table other than patients: its date fields (all must be >= birth date)."""
    out = {}
    for t in crf.data_tables:
        if t == "patients":
            continue
        out[t] = [f for f, s in crf.table(t).fields.items() if s.type == "date"]
    return out


def _fmt(s: pd.Series) -> np.ndarray:
    """Typed values back to text for the quarantine ``value`` column."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.strftime("%Y-%m-%d").fillna("").to_numpy(dtype=object)
    if pd.api.types.is_bool_dtype(s):
        return s.map({True: "true", False: "false"}).fillna("").astype(object).to_numpy()
    return s.astype(object).where(s.notna(), "").astype(str).to_numpy(dtype=object)


def _reasons(df: pd.DataFrame, pos: np.ndarray, fld: str, text) -> np.ndarray:
    """The reason of each failed row (``text(i)`` -> (Chinese, English)), with its row
    number; never the delivered value (STUDY.md "Privacy"): made only of pseudonymous
    ids and CRF codes of rows that passed validation, so no redaction is needed."""
    rows = df["source_row"].to_numpy(dtype=np.int64)
    return np.array([reason(int(rows[i]), fld, *text(i)) for i in pos], dtype=object)


def _split_source(src: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    parts = src.astype(str).str.split(":", n=1, expand=True)
    file_name = parts[0].to_numpy(dtype=object)
    sheet = parts[1].to_numpy(dtype=object) if parts.shape[1] > 1 else np.full(len(src), None, dtype=object)
    sheet = np.where(pd.isna(sheet), None, sheet)
    return file_name, sheet


def cross_table_checks(
    tables: dict[str, pd.DataFrame],
    *,
    crf: Crf,
    score_fields: dict[str, tuple[str, ...]] | None = None,
    event_dates: dict[str, list[str]] | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Apply the cross-table rules to canonical valid frames of one or more (center,
    round) sets: ``tables`` maps CRF table -> frame (with ``center``, ``round``,
    ``patient_id``, ``source_file``, ``source_row``, ``delivery_id``).

    Returns (the tables without the rows that failed, quarantine rows for them - one
    per (row, rule, field)). A missing ``patients`` table means no patient is known.
    ``patients`` and ``adjudications`` pass unchanged.
    """
    score_fields = SCORE_FIELDS_DEFAULT if score_fields is None else score_fields
    event_dates = event_date_fields(crf) if event_dates is None else event_dates
    pats = tables.get("patients")
    if pats is None or len(pats) == 0:
        pat = pd.DataFrame({"center": [], "round": [], "patient_id": [], "diagnosis": [], "birth_date": []})
        pat = pat.astype({"birth_date": "datetime64[ns]", "center": object, "round": object, "patient_id": object})
    else:
        pat = pats[["center", "round", "patient_id", "diagnosis", "birth_date"]].drop_duplicates(
            ["center", "round", "patient_id"], keep="first"
        )
    pat = pat.assign(_known=True)
    out: dict[str, pd.DataFrame] = {}
    qs: list[pd.DataFrame] = []
    for t, df in tables.items():
        if t in ("patients", "adjudications") or df is None or len(df) == 0:
            out[t] = df
            continue
        m = df[["center", "round", "patient_id"]].merge(pat, how="left", on=["center", "round", "patient_id"], validate="m:1")
        known = m["_known"].notna().to_numpy(dtype=bool)
        birth = pd.to_datetime(m["birth_date"]).to_numpy("datetime64[ns]")
        diag = m["diagnosis"].to_numpy(dtype=object)
        fails: list[tuple[np.ndarray, str, str, np.ndarray, np.ndarray]] = []  # pos, field, rule, value, message
        pid = df["patient_id"].astype(object).where(df["patient_id"].notna(), "").to_numpy(dtype=object)
        rnd = df["round"].astype(str).to_numpy(dtype=object)
        pos = np.flatnonzero(~known)
        if len(pos):
            msg = _reasons(df, pos, "mrn", lambda i: (
                f"患者 {pid[i]} 不在本中心第 {rnd[i]} 轮的患者表中（缺失或该行被拒收）",
                f"is patient {pid[i]}, who is not in round {rnd[i]}'s patients table of this center "
                "(missing there, or that row was rejected)",
            ))
            fails.append((pos, "mrn", "patient_known", pid[pos], msg))
        for f in event_dates.get(t, []):
            if f not in df:
                continue
            d = df[f].to_numpy("datetime64[ns]")
            bad = known & ~np.isnat(d) & ~np.isnat(birth) & (d < birth)
            pos = np.flatnonzero(bad)
            if len(pos):
                val = _fmt(df[f].iloc[pos])
                msg = _reasons(df, pos, f, lambda i: ("早于患者的出生日期", "is before the patient's birth date"))
                fails.append((pos, f, "event_after_birth", val, msg))
        for dx, flds in score_fields.items():
            for f in flds:
                if f not in df:
                    continue
                bad = known & df[f].notna().to_numpy(dtype=bool) & (diag != dx)
                pos = np.flatnonzero(bad)
                if len(pos):
                    val = _fmt(df[f].iloc[pos])
                    score = f.split("_")[0].upper()
                    msg = _reasons(df, pos, f, lambda i, score=score, dx=dx: (
                        f"已填写，但患者诊断为 {diag[i]}（{score} 评分仅用于 {dx} 患者）",
                        f"is filled but the patient's diagnosis is {diag[i]} ({score} items are scored only for {dx} patients)",
                    ))
                    fails.append((pos, f, "score_matches_diagnosis", val, msg))
        if not fails:
            out[t] = df
            continue
        allpos = np.concatenate([p for p, *_ in fails])
        file_name, sheet = _split_source(df["source_file"].iloc[allpos])
        q = pd.DataFrame(
            {
                "center": df["center"].to_numpy(dtype=object)[allpos],
                "round": rnd[allpos],
                "table_name": t,
                "file_name": file_name,
                "sheet": sheet,
                "row_number": df["source_row"].to_numpy(dtype=np.int64)[allpos],
                "patient_id": pid[allpos],
                "field": np.concatenate([np.full(len(p), f, dtype=object) for p, f, *_ in fails]),
                "value": np.concatenate([v for *_, v, _m in fails]),
                "rule": np.concatenate([np.full(len(p), r, dtype=object) for p, _f, r, *_ in fails]),
                "message": np.concatenate([m for *_, m in fails]),
                "delivery_id": df["delivery_id"].to_numpy(dtype=object)[allpos] if "delivery_id" in df else None,
            }
        )
        q["_pos"] = allpos
        q = q.sort_values(["_pos"], kind="stable").drop(columns="_pos")
        qs.append(q[QUARANTINE_COLUMNS])
        bad_rows = np.zeros(len(df), dtype=bool)
        bad_rows[allpos] = True
        out[t] = df.loc[~bad_rows].reset_index(drop=True)
    quarantine = pd.concat(qs, ignore_index=True) if qs else empty_quarantine()
    return out, quarantine
