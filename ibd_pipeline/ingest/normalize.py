"""Text -> canonical typed values (STUDY.md Workflow step 1), vectorised.

Every column is factorized first; parsing, code translation, unit lookup and date
parsing run once per *distinct* delivered text, and the results are taken back onto the
rows. Parse failures come back as failure records ``(pos, field, rule, message)``
where ``pos`` is the row position inside the chunk and ``message`` the reason as a
(Chinese, English) pair that never quotes the delivered text (``validate`` adds row and
field: ``rules.reason``).

Rules found here: ``type`` (not a number/date/yes-no value), ``unit`` (labs: a unit the
test does not accept). Unknown codes are *kept* as delivered so that the pandera
``isin`` check reports them (rule ``code``); missing required values are reported by the
schema's not-nullable check (rule ``required``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd

from ibd_pipeline.config import CenterProfile, Crf, FieldSpec, TableSpec
from ibd_pipeline.pseudonym import patient_ids

from .frames import FAILURE_COLUMNS, empty_canonical
from .rules import human_date_formats
from .schemas import LAB_EXTRA_COLUMNS, canonical_columns, column_name

_INT_RE = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_FLOAT_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_QUAL_RE = re.compile(r"^(<=|>=|≤|≥|<|>|＜|＞|≦|≧)?\s*(.*?)$", re.S)
_QUAL_CANON = {"<": "<", "<=": "<", "≤": "<", "＜": "<", "≦": "<", ">": ">", ">=": ">", "≥": ">", "＞": ">", "≧": ">"}
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
_INT64_MAX = 2**63 - 1


def _const(text: np.ndarray, zh: str, en: str) -> np.ndarray:
    """The same (Chinese, English) reason for every distinct text: a reason never quotes
    the delivered value (STUDY.md "Privacy")."""
    out = np.empty(len(text), dtype=object)
    out.fill((zh, en))
    return out


def _failures(pos: np.ndarray, field: str, rule: str, message) -> pd.DataFrame:
    pos = np.asarray(pos, dtype=np.int64)
    return pd.DataFrame(
        {"pos": pos, "field": field, "rule": rule, "message": message if not np.isscalar(message) else [message] * len(pos)}
    )


@dataclass
class Column:
    """One delivered column, factorized: ``codes`` per row into ``text`` (stripped
    distinct texts) with ``missing`` flags per distinct text."""

    codes: np.ndarray
    text: np.ndarray  # object array of str (stripped)
    missing: np.ndarray  # bool per distinct text

    @property
    def row_text(self) -> np.ndarray:
        return self.text[self.codes]

    @property
    def row_missing(self) -> np.ndarray:
        return self.missing[self.codes]


@dataclass
class Normaliser:
    """Everything that turns one center's text into canonical values of one table."""

    table: str
    spec: TableSpec
    profile: CenterProfile
    crf: Crf
    key: bytes
    missing_tokens: frozenset = field(init=False)

    def __post_init__(self):
        self.missing_tokens = frozenset(t.strip() for t in self.profile.missing_tokens) | {""}
        self.date_formats = list(self.profile.date_formats)
        self._unit_lookup = _UnitLookup(self.profile, self.crf)
        self.columns = canonical_columns(self.table, self.crf, lineage=False)

    # ------------------------------------------------------------------ columns
    def column(self, values: np.ndarray) -> Column:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        text = np.array([("" if u is None else str(u)).strip() for u in uniques], dtype=object)
        missing = np.array([t in self.missing_tokens for t in text], dtype=bool)
        return Column(codes.astype(np.intp, copy=False), text, missing)

    def empty_column(self, n: int) -> Column:
        return Column(np.zeros(n, dtype=np.intp), np.array([""], dtype=object), np.array([True]))

    # ------------------------------------------------------------------ per type
    def parse(self, fname: str, s: FieldSpec, col: Column) -> tuple[object, pd.DataFrame | None]:
        """Typed values of one field (array-like, length n) and its type failures."""
        n = len(col.codes)
        if s.type in ("string", "code"):
            vals = col.text.copy()
            if s.type == "code":
                cmap = self.profile.code_map(fname, "code")
                if cmap:
                    vals = np.array([cmap.get(t, t) for t in vals], dtype=object)
            vals[col.missing] = None
            return vals[col.codes], None
        if s.type == "bool":
            cmap = {str(k).strip(): bool(v) for k, v in self.profile.code_map(fname, "bool").items()}
            out = []
            for t in col.text:
                v = _BOOL_TEXT.get(t.lower())
                if v is None:
                    v = cmap.get(t)
                out.append(v)
            bad = np.array([v is None for v in out]) & ~col.missing
            arr = pd.array([None if m else v for v, m in zip(out, col.missing)], dtype="boolean")
            accepted = ", ".join(["true/false", "1/0"] + list(cmap))
            msgs = _const(col.text, f"不是“是/否”值（可填：{accepted}）", f"is not a yes/no value (accepted: {accepted})")
            return arr.take(col.codes), self._fail(fname, "type", col, bad, msgs)
        if s.type == "int":
            out = []
            bad = np.zeros(len(col.text), dtype=bool)
            for i, t in enumerate(col.text):
                if col.missing[i]:
                    out.append(None)
                elif _INT_RE.match(t):
                    v = int(t.split(".")[0])
                    if abs(v) > _INT64_MAX:
                        bad[i] = True
                        out.append(None)
                    else:
                        out.append(v)
                else:
                    bad[i] = True
                    out.append(None)
            arr = pd.array(out, dtype="Int64")
            msgs = _const(col.text, "不是整数", "is not a whole number")
            return arr.take(col.codes), self._fail(fname, "type", col, bad, msgs)
        if s.type == "float":
            vals, bad = _parse_floats(col.text, col.missing)
            msgs = _const(col.text, "不是数字（小数点请用“.”）", "is not a number (use '.' as the decimal point)")
            return vals[col.codes], self._fail(fname, "type", col, bad, msgs)
        if s.type == "date":
            vals, bad = parse_dates(col.text, col.missing, self.date_formats)
            zh, en = human_date_formats(self.date_formats)
            msgs = _const(col.text, f"不是日期（可填写为：{zh}）", f"is not a date (write it like {en})")
            return vals[col.codes], self._fail(fname, "type", col, bad, msgs)
        raise ValueError(f"CRF field {fname} has an unknown type {s.type!r}")

    @staticmethod
    def _fail(fname, rule, col: Column, bad_u: np.ndarray, msgs_u: np.ndarray) -> pd.DataFrame | None:
        if not bad_u.any():
            return None
        row_bad = bad_u[col.codes]
        pos = np.flatnonzero(row_bad)
        return _failures(pos, fname, rule, msgs_u[col.codes[pos]])

    # ------------------------------------------------------------------ table
    def normalise(self, raw: dict[str, np.ndarray], n: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
        """``raw``: canonical field -> object array of delivered text (fields absent
        from the file are left out). Returns the typed frame (canonical columns, no
        lineage), the failures, and field -> delivered (stripped) text per row."""
        if n == 0:  # a header-only chunk (a table without rows this round) is an empty delivery
            frame = empty_canonical(self.table, self.crf)[self.columns]
            return frame, pd.DataFrame(columns=FAILURE_COLUMNS), {f: np.array([], dtype=object) for f in self.spec.kept_fields}
        out: dict[str, object] = {}
        fails: list[pd.DataFrame] = []
        texts: dict[str, np.ndarray] = {}
        cols: dict[str, Column] = {}
        for fname in self.spec.kept_fields:
            cols[fname] = self.column(raw[fname]) if fname in raw else self.empty_column(n)
            texts[fname] = cols[fname].row_text
        for fname in self.spec.kept_fields:
            s = self.spec.fields[fname]
            col = cols[fname]
            if fname == "mrn":
                distinct = pd.Series(np.where(col.missing, None, col.text), dtype=object)
                pids = patient_ids(self.key, self.profile.id, distinct).to_numpy(dtype=object)
                out["patient_id"] = pids[col.codes]
                continue
            if self.table == "labs" and fname in ("value", "unit"):
                continue
            vals, f = self.parse(fname, s, col)
            out[column_name(fname)] = vals
            if f is not None:
                fails.append(f)
        if self.table == "labs":
            self._labs(cols, out, fails, n)
        frame = pd.DataFrame({c: out[c] for c in self.columns}, index=pd.RangeIndex(n))
        failures = pd.concat(fails, ignore_index=True) if fails else pd.DataFrame(columns=FAILURE_COLUMNS)
        return frame, failures, texts

    # ------------------------------------------------------------------ labs
    def _labs(self, cols: dict[str, Column], out: dict, fails: list, n: int) -> None:
        vcol, ucol = cols["value"], cols["unit"]
        # value: optional detection-limit qualifier + number, per distinct text
        nu = len(vcol.text)
        qual_u = np.full(nu, None, dtype=object)
        num_u = np.full(nu, None, dtype=object)
        for i, t in enumerate(vcol.text):
            if vcol.missing[i]:
                continue
            m = _QUAL_RE.match(t)
            q, rest = m.group(1), m.group(2).strip()
            qual_u[i] = _QUAL_CANON.get(q) if q else None
            num_u[i] = rest
        num_missing = vcol.missing | np.array([x is None or x == "" for x in num_u])
        fv, bad = _parse_floats(np.array(["" if x is None else x for x in num_u], dtype=object), num_missing)
        bad |= ~vcol.missing & num_missing  # a lone qualifier ("<") is not a value
        msgs = _const(vcol.text, "不是数字（可带“<”或“>”）", "is not a number (optionally with '<' or '>')")
        f = self._fail("value", "type", vcol, bad, msgs)
        if f is not None:
            fails.append(f)
        value = fv[vcol.codes].copy()
        value_ok = ~(num_missing | bad)[vcol.codes]
        # unit: normalised spelling per distinct text
        unit_norm_u = np.array([None if m else self._unit_lookup.normalise(t) for t, m in zip(ucol.text, ucol.missing)], dtype=object)
        unit_norm = unit_norm_u[ucol.codes]
        test = out["test"]  # canonical code or the delivered text (unknown -> rule code)
        tcodes, tuniq = pd.factorize(test, use_na_sentinel=True)
        # distinct (test, unit) pairs -> factor into the canonical unit
        nun = len(ucol.text)
        pair = tcodes.astype(np.int64) * nun + ucol.codes
        pair_u, pair_inv = np.unique(pair, return_inverse=True)
        factor_u = np.full(len(pair_u), np.nan)
        canon_u = np.full(len(pair_u), None, dtype=object)
        bad_u = np.zeros(len(pair_u), dtype=bool)
        msg_u = np.full(len(pair_u), None, dtype=object)
        for k, p in enumerate(pair_u):
            tc, uc = divmod(int(p), nun)
            t = tuniq[tc] if p >= 0 else None
            u = unit_norm_u[uc]
            if t is None or t not in self.crf.lab_tests or u is None:
                continue  # unknown test (rule code) or missing unit (rule required)
            res = self._unit_lookup.factor(t, u)
            if res is None:
                bad_u[k] = True
                msg_u[k] = self._unit_lookup.message(t)
            else:
                factor_u[k], canon_u[k] = res
        factor = factor_u[pair_inv]
        bad_unit = bad_u[pair_inv]
        if bad_unit.any():
            pos = np.flatnonzero(bad_unit)
            fails.append(_failures(pos, "unit", "unit", msg_u[pair_inv[pos]]))
        # exact conversion (Decimal) once per distinct (number text, factor)
        conv = value_ok & ~np.isnan(factor) & (factor != 1.0)
        if conv.any():
            pos = np.flatnonzero(conv)
            key = vcol.codes[pos].astype(np.int64) * len(pair_u) + pair_inv[pos]
            key_u, key_inv = np.unique(key, return_inverse=True)
            res = np.empty(len(key_u))
            for k, kk in enumerate(key_u):
                vc, pc = divmod(int(kk), len(pair_u))
                res[k] = float(Decimal(num_u[vc]) * Decimal(repr(float(factor_u[pc]))))
            value[pos] = res[key_inv]
        unit_out = np.where(~np.isnan(factor), canon_u[pair_inv], unit_norm).astype(object)
        unit_out[ucol.row_missing] = None
        out["value"] = value
        out["unit"] = unit_out
        out["qualifier"] = qual_u[vcol.codes]
        for name, col in (("value_reported", vcol), ("unit_reported", ucol)):
            txt = col.text.copy()
            txt[col.text == ""] = None
            out[name] = txt[col.codes]
        assert set(LAB_EXTRA_COLUMNS) <= set(out)


def _parse_floats(text: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vals = np.full(len(text), np.nan)
    bad = np.zeros(len(text), dtype=bool)
    for i, t in enumerate(text):
        if missing[i]:
            continue
        if _FLOAT_RE.match(t):
            v = float(t)
            if np.isfinite(v):
                vals[i] = v
                continue
        bad[i] = True
    return vals, bad


def parse_dates(text: np.ndarray, missing: np.ndarray, formats: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse distinct date texts with the profile's formats, in order.

    ``excel_date_cell`` accepts the ISO text the workbook reader makes of a date cell;
    ``%Y年%m月%d日`` (and other strptime formats) also accept unpadded months and days.
    """
    out = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    todo = ~np.asarray(missing, dtype=bool)
    for fmt in formats:
        if not todo.any():
            break
        idx = np.flatnonzero(todo)
        sub = text[idx]
        if fmt == "excel_date_cell":
            keep = np.array([bool(_ISO_RE.match(t)) for t in sub], dtype=bool)
            idx, sub = idx[keep], sub[keep]
            fmt = "%Y-%m-%d"
        if len(idx) == 0:
            continue
        parsed = pd.to_datetime(pd.Series(sub, dtype=object), format=fmt, errors="coerce").to_numpy("datetime64[ns]")
        ok = ~np.isnat(parsed)
        out[idx[ok]] = parsed[ok]
        todo[idx[ok]] = False
    bad = todo
    return out, bad


class _UnitLookup:
    """Unit spellings -> canonical unit, and the profile's conversion factors."""

    def __init__(self, profile: CenterProfile, crf: Crf):
        self.aliases = {_squash(k): _squash(v) for k, v in profile.unit_aliases.items()}
        self.crf = crf
        self.profile_units: dict[str, dict[str, float]] = {}
        for test, conv in (profile.units or {}).items():
            self.profile_units[test] = {self._exact(_squash(u)): float(f) for u, f in (conv or {}).items()}
        known = set(self.aliases) | set(self.aliases.values())
        known |= {_squash(v["unit"]) for v in crf.lab_tests.values()}
        for conv in self.profile_units.values():
            known |= set(conv)
        self._known = {self._exact(k) for k in known}
        self._lower: dict[str, str] = {}
        for k in sorted(known):
            self._lower.setdefault(k.lower(), self._exact(k))

    def _exact(self, u: str) -> str:
        return self.aliases.get(u, u)

    def normalise(self, text: str) -> str:
        u = _squash(text)
        if u in self.aliases:
            return self.aliases[u]
        if u in self._known:
            return u
        return self._lower.get(u.lower(), u)

    def factor(self, test: str, unit: str) -> tuple[float, str] | None:
        canon = self.crf.canonical_unit(test)
        if unit == _squash(canon):
            return 1.0, canon
        conv = self.profile_units.get(test, {})
        if unit in conv:
            return conv[unit], canon
        return None

    def message(self, test: str) -> tuple[str, str]:
        canon = self.crf.canonical_unit(test)
        acc = ", ".join([canon] + [f"{u} (x{f:g})" for u, f in self.profile_units.get(test, {}).items() if u != _squash(canon)])
        return f"该单位不适用于检验项目 {test}（可用单位：{acc}）", f"is a unit not accepted for {test} (accepted units: {acc})"


def _squash(u: str) -> str:
    return re.sub(r"\s+", "", str(u))

