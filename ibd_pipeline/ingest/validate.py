"""Validation of one normalised chunk against the CRF schema (pandera, lazy) and the
streaming key-uniqueness check; failures become quarantine rows."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.config import config_context

from ibd_pipeline.config import TableSpec

from ibd_pipeline.privacy import redact

from .frames import FAILURE_COLUMNS
from .rules import QUARANTINE_COLUMNS, empty_quarantine, reason
from .schemas import check_rule, column_name, cross_field_rules


class KeyTracker:
    """First occurrence of every record key of one table, across chunks and
    continuation sheets. Keys are kept as 64-bit hashes of the canonical key values
    (16 bytes per distinct key, sorted arrays; a false duplicate needs a 64-bit hash
    collision, about n^2/2^65: ~3e-6 for 10 million rows)."""

    def __init__(self) -> None:
        self.h = np.empty(0, dtype=np.uint64)
        self.row = np.empty(0, dtype=np.int64)
        self.sheet = np.empty(0, dtype=np.int32)
        self.sheets: list[str | None] = []

    def check(self, keys: pd.DataFrame, rows: np.ndarray, sheet: str | None):
        """``keys``: canonical key columns of a chunk; ``rows``: source row numbers.
        Returns (positions of duplicate rows, first row number, first sheet) - rows
        with a missing key value are not checked (they fail ``required``)."""
        if sheet not in self.sheets:
            self.sheets.append(sheet)
        sid = self.sheets.index(sheet)
        complete = keys.notna().all(axis=1).to_numpy()
        pos = np.flatnonzero(complete)
        if len(pos) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, dtype=object)
        h = pd.util.hash_pandas_object(keys.iloc[pos], index=False).to_numpy(dtype=np.uint64)
        uniq, first, inv = np.unique(h, return_index=True, return_inverse=True)
        found = np.zeros(len(uniq), dtype=bool)
        prior_row = rows[pos[first]]  # first occurrence: in this chunk ...
        prior_sheet = np.full(len(uniq), sid, dtype=np.int32)
        if len(self.h):  # ... or in an earlier chunk / sheet
            loc = np.minimum(np.searchsorted(self.h, uniq), len(self.h) - 1)
            found = self.h[loc] == uniq
            prior_row = np.where(found, self.row[loc], prior_row)
            prior_sheet = np.where(found, self.sheet[loc], prior_sheet)
        is_dup = found[inv] | (np.arange(len(pos)) != first[inv])
        new = ~found
        if new.any():
            hh = np.concatenate([self.h, uniq[new]])
            order = np.argsort(hh, kind="stable")
            self.h = hh[order]
            self.row = np.concatenate([self.row, prior_row[new]])[order]
            self.sheet = np.concatenate([self.sheet, prior_sheet[new]])[order]
        d = np.flatnonzero(is_dup)
        names = np.array(self.sheets + [None], dtype=object)[:-1]
        return pos[d], prior_row[inv[d]], names[prior_sheet[inv[d]]]


def run_schema(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Validate lazily; every failure case as (pos, field, rule) (pos = row position)."""
    with config_context(validation_enabled=True, validation_depth="SCHEMA_AND_DATA"), warnings.catch_warnings():
        # pandera's own collection of the failure cases concatenates all-NA frames (pandas
        # FutureWarning inside pandera.backends.pandas.error_formatters): not ours to change;
        # the failure cases it returns are complete either way
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"pandera\.backends\.pandas\.error_formatters")
        try:
            schema.validate(frame, lazy=True, inplace=True)
            return pd.DataFrame(columns=["pos", "field", "rule"])
        except pa.errors.SchemaErrors as err:
            fc = err.failure_cases
    schema_level = fc["index"].isna()
    if schema_level.any():  # a dtype / missing column error: the normaliser broke its contract
        raise RuntimeError(f"canonical frame does not match the CRF schema:\n{fc[schema_level]}")
    fc = fc.drop_duplicates(["index", "check", "column"])
    mapped = [check_rule(c, col) for c, col in zip(fc["check"], fc["column"])]
    out = pd.DataFrame(
        {
            "pos": fc["index"].astype(np.int64).to_numpy(),
            "field": [m[1] for m in mapped],
            "rule": [m[0] for m in mapped],
        }
    )
    return out.drop_duplicates(["pos", "field", "rule"], ignore_index=True)


@dataclass
class ChunkContext:
    """What a quarantine row says besides the failure itself."""

    center: str
    round: str
    table: str
    file_name: str
    sheet: str | None
    delivery_id: str
    spec: TableSpec
    headers: dict[str, str]  # canonical field -> the center's column header
    code_lists: dict[str, str] = field(default_factory=dict)  # field -> accepted spellings (text)
    delivery_date: str = ""  # ISO date of the delivery (its file name), "" when unknown
    plausibility: dict = field(default_factory=dict)  # crf.yaml ``plausibility``
    no_identifier_fields: tuple = ()  # crf.yaml ``no_identifier_fields``

    def hdr(self, f: str) -> str:
        h = self.headers.get(f, f)
        return f if h == f else f"{h} ({f})"


def _s(a) -> pd.Series:
    s = pd.Series(np.asarray(a, dtype=object), dtype=object)
    return s.where(s.notna(), "").astype(str)


def schema_messages(fails: pd.DataFrame, ctx: ChunkContext, texts: dict[str, np.ndarray], frame: pd.DataFrame) -> pd.Series:
    """A (Chinese, English) reason per failure found by the schema, per (rule, field).
    Reasons say what is accepted, never what was delivered (STUDY.md "Privacy")."""
    msg = pd.Series([None] * len(fails), index=fails.index, dtype=object)
    rules = {(r.rule, r.field): r for r in cross_field_rules(ctx.spec)}
    for (rule, fld), g in fails.groupby(["rule", "field"], sort=False):
        spec = ctx.spec.fields.get(fld)
        if rule == "required":
            zh, en = "必填但为空", "is required but empty"
        elif rule == "code":
            acc = ctx.code_lists.get(fld, "")
            zh, en = f"取值不在CRF编码表内（可填：{acc}）", f"is not a code of the CRF (accepted: {acc})"
        elif rule == "range" and spec is not None and spec.range is not None:
            lo, hi = spec.range
            rng = f"[{'' if lo is None else lo}, {'' if hi is None else hi}]"
            if ctx.table == "labs" and fld == "value":
                zh, en = f"换算为标准单位后超出允许范围 {rng}", f"is outside the allowed range {rng} after conversion to the canonical unit"
            else:
                zh, en = f"超出允许范围 {rng}", f"is outside the allowed range {rng}"
        elif (rule, fld) in rules:
            ohdr = ctx.hdr(rules[(rule, fld)].other)
            if rule == "stop_reason_required":
                zh, en = f"为空，但已填写{ohdr}：有停止日期时必须填写停止原因", f"is empty although {ohdr} is filled: a stop date needs a stop reason"
            elif rule == "event_after_birth":
                zh, en = f"早于出生日期 {ohdr}", f"is before the birth date {ohdr}"
            else:
                zh, en = f"早于 {ohdr}", f"is before {ohdr}"
        elif rule == "unit":
            zh, en = "不是该检验项目的标准单位", "is not the canonical unit of the test"
        else:
            typ = spec.type if spec is not None else "value"
            zh, en = f"不是有效的 {typ} 值", f"is not a valid {typ}"
        for i in g.index:
            msg.at[i] = (zh, en)
    return msg


def plausibility_failures(frame: pd.DataFrame, texts: dict[str, np.ndarray], ctx: ChunkContext) -> pd.DataFrame:
    """Failures (pos, field, rule, message) of the CRF's plausibility limits and of the
    no-identifier fields (crf.yaml ``plausibility``, ``no_identifier_fields``; issue 18
    "implausible is not silent"): age at the upadacitinib start outside the limits, a
    date after the delivery date, the upadacitinib stop after the last follow-up, a
    staff-code field holding what looks like a patient identifier."""
    from ibd_pipeline.privacy import phi_suspect

    out: list[pd.DataFrame] = []

    def add(mask, fld, rule, zh, en):
        pos = np.flatnonzero(np.asarray(mask, dtype=bool))
        if len(pos):
            msg = np.empty(len(pos), dtype=object)
            msg.fill((zh, en))
            out.append(pd.DataFrame({"pos": pos, "field": fld, "rule": rule, "message": msg}))

    pl = ctx.plausibility or {}
    cols = set(frame.columns)
    age = pl.get("age_at_upa_start_years")
    if age and {"birth_date", "upa_start_date"} <= cols:
        b, s = frame["birth_date"], frame["upa_start_date"]
        years = s.dt.year - b.dt.year - ((s.dt.month * 100 + s.dt.day) < (b.dt.month * 100 + b.dt.day)).astype(int)
        lo, hi = age
        bad = years.notna() & ((years < lo) | (years > hi))
        add(bad.to_numpy(), "birth_date", "implausible_age",
            f"乌帕替尼开始时的年龄不在 {lo}–{hi} 岁之间", f"gives an age at the upadacitinib start outside {lo}-{hi} years")
    if pl.get("dates_not_after_delivery") and ctx.delivery_date:
        limit = np.datetime64(ctx.delivery_date, "ns") + np.timedelta64(int(pl.get("delivery_grace_days", 0)), "D")
        for f, spec in ctx.spec.fields.items():
            c = column_name(f)
            if spec.type == "date" and c in cols:
                d = frame[c].to_numpy("datetime64[ns]")
                add(~np.isnat(d) & (d > limit), f, "date_after_delivery",
                    f"晚于本文件的交付日期 {ctx.delivery_date}", f"is after the delivery date {ctx.delivery_date} of this file")
    if pl.get("exposure_within_followup") and {"upa_stop_date", "last_followup_date"} <= cols:
        bad = frame["upa_stop_date"] > frame["last_followup_date"]
        add(bad.fillna(False).to_numpy(), "upa_stop_date", "exposure_after_followup",
            f"晚于末次随访日期 {ctx.hdr('last_followup_date')}", f"is after the last follow-up {ctx.hdr('last_followup_date')}")
    for f in ctx.no_identifier_fields:
        if f in texts and f in ctx.spec.fields:
            codes, uniq = pd.factorize(pd.Series(texts[f], dtype=object), use_na_sentinel=True)
            sus = np.array([isinstance(u, str) and phi_suspect(u, names=False) for u in uniq], dtype=bool)
            if sus.any():
                add((codes >= 0) & sus[np.maximum(codes, 0)], f, "identifier",
                    "疑似患者电话或病历号（此处只填写工作人员代码）",
                    "looks like a patient's phone or record number (write the staff code only)")
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=FAILURE_COLUMNS)


_ROW = "\x00row\x00"


def _reason_texts(fails: pd.DataFrame, ctx: ChunkContext, rows: np.ndarray) -> np.ndarray:
    """The full reason of every failure: row, field (the center's header) and the
    (Chinese, English) pair. Each distinct reason is made and passed through the
    redaction once, the row numbers put in afterwards."""
    if len(fails) == 0:
        return np.empty(0, dtype=object)
    pos = fails["pos"].to_numpy(dtype=np.int64)
    keys = pd.Series(list(zip(fails["field"].to_numpy(dtype=object), fails["message"].to_numpy(dtype=object))), dtype=object)
    codes, uniq = pd.factorize(keys)
    templates = []
    for fld, m in uniq:
        hdr = "+".join(ctx.hdr(f) for f in str(fld).split("+"))
        text = reason(_ROW, hdr, m[0], m[1]) if isinstance(m, tuple) else ("" if m is None else str(m))
        templates.append(redact(text).split(_ROW))
    row_text = pd.Series(rows[pos]).astype(str).to_numpy(dtype=object)
    out = np.empty(len(fails), dtype=object)
    for i, (c, r) in enumerate(zip(codes, row_text)):
        out[i] = r.join(templates[c])
    return out


def build_quarantine(
    fails: pd.DataFrame,
    ctx: ChunkContext,
    rows: np.ndarray,
    pids: np.ndarray,
    texts: dict[str, np.ndarray],
) -> pd.DataFrame:
    """Quarantine rows (QUARANTINE_COLUMNS) from failures (pos, field, rule, message[, value])."""
    if len(fails) == 0:
        return empty_quarantine()
    pos = fails["pos"].to_numpy(dtype=np.int64)
    value = np.empty(len(fails), dtype=object)
    value[:] = ""
    for fld, idx in fails.groupby("field", sort=False).indices.items():
        if fld == "mrn":
            value[idx] = pids[pos[idx]]
        elif fld in texts:
            value[idx] = texts[fld][pos[idx]]
    if "value" in fails.columns:
        given = fails["value"].to_numpy(dtype=object)
        has = pd.notna(given)
        value[has] = given[has]
    q = pd.DataFrame(
        {
            "center": ctx.center,
            "round": ctx.round,
            "table_name": ctx.table,
            "file_name": ctx.file_name,
            "sheet": ctx.sheet,
            "row_number": rows[pos].astype(np.int64),
            "patient_id": pids[pos],
            "field": fails["field"].to_numpy(dtype=object),
            "value": value,
            "rule": fails["rule"].to_numpy(dtype=object),
            "message": _reason_texts(fails, ctx, rows),
            "delivery_id": ctx.delivery_id,
        }
    )
    q["value"] = q["value"].where(pd.notna(q["value"]), "")
    return q[QUARANTINE_COLUMNS]


def validate_chunk(
    frame: pd.DataFrame,
    norm_fails: pd.DataFrame,
    texts: dict[str, np.ndarray],
    rows: np.ndarray,
    schema: pa.DataFrameSchema,
    tracker: KeyTracker,
    key_cols: list[str],
    ctx: ChunkContext,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows of ``frame``, quarantine rows) - every reason of every failed row."""
    sch = run_schema(schema, frame)
    # a cell that failed to parse is empty in the typed frame: its 'required' is not a second reason
    parse_cells = set(zip(norm_fails["pos"].tolist(), norm_fails["field"].tolist()))
    if parse_cells and len(sch):
        drop = [(r == "required" and (p, f) in parse_cells) for p, f, r in zip(sch["pos"], sch["field"], sch["rule"])]
        sch = sch[~np.array(drop, dtype=bool)]
    sch = sch.reset_index(drop=True)
    sch["message"] = schema_messages(sch, ctx, texts, frame) if len(sch) else []
    plaus = plausibility_failures(frame, texts, ctx)
    if len(plaus) and (ctx.plausibility or {}).get("on_fail") == "block":
        from .errors import UnreadableFileError

        rows_bad = sorted({int(rows[p]) for p in plaus["pos"]})
        rules = ", ".join(sorted(set(plaus["rule"])))
        raise UnreadableFileError(
            ctx.file_name,
            f"{len(rows_bad)} row(s) are implausible ({rules}; first at row {rows_bad[0]}); the study's setting "
            "plausibility.on_fail: block holds the whole delivery back (the previous one stays current). "
            "Correct the rows and deliver the file again.",
        )
    parts = [norm_fails[FAILURE_COLUMNS], sch[FAILURE_COLUMNS], plaus[FAILURE_COLUMNS]]
    dpos, first_row, first_sheet = tracker.check(frame[key_cols], rows, ctx.sheet)
    if len(dpos):
        kf = list(ctx.spec.key)
        val = pd.Series([""] * len(dpos), dtype=object)
        for i, f in enumerate(kf):
            col = frame["patient_id"].to_numpy()[dpos] if f == "mrn" else texts[f][dpos]
            val = (val + ("|" if i else "")) + _s(col).to_numpy()
        where = np.where(first_sheet == ctx.sheet, "", " of sheet " + _s(first_sheet).to_numpy(dtype=object))
        where_zh = np.where(first_sheet == ctx.sheet, "", "（工作表 " + _s(first_sheet).to_numpy(dtype=object) + "）")
        first = pd.Series(first_row).astype(str).to_numpy(dtype=object)
        msg = np.empty(len(dpos), dtype=object)
        for i in range(len(dpos)):
            msg[i] = (
                f"与第{first[i]}行{where_zh[i]}主键相同：保留第一行",
                f"has the same key as row {first[i]}{where[i]}; the first row with this key is kept",
            )
        parts.append(
            pd.DataFrame(
                {"pos": dpos, "field": "+".join(kf), "rule": "unique_key", "message": msg, "value": val.to_numpy()}
            )
        )
    parts = [p for p in parts if len(p)]
    fails = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FAILURE_COLUMNS)
    if len(fails):
        fails = fails.drop_duplicates(["pos", "field", "rule"], keep="first").sort_values(["pos"], kind="stable")
    pids = frame["patient_id"].to_numpy(dtype=object) if "patient_id" in frame else np.full(len(frame), None, dtype=object)
    q = build_quarantine(fails, ctx, rows, pids, texts)
    bad = np.zeros(len(frame), dtype=bool)
    if len(fails):
        bad[fails["pos"].to_numpy(dtype=np.int64)] = True
    return frame.loc[~bad], q


__all__ = ["KeyTracker", "run_schema", "validate_chunk", "ChunkContext"]
