"""The reviewer's adjudications applied to round A: the reconciled tables."""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from ibd_pipeline.config import CenterProfile, Crf
from ibd_pipeline.reconcile.decisions import (
    QUARANTINE_COLUMNS,
    RESOLVED,
    TARGET,
    Decision,
    field_parser,
    read_adjudications,
    reject_row,
    target_key,
    vocabulary_maps,
)
from ibd_pipeline.reconcile.values import DELIVERY_COLUMNS, WHOLE_RECORD, ParseError, record_keys

RESOLVED_COLUMNS = TARGET + ["resolved_value", "reviewer_id", "decided_on", "source"]
LAB_EXTRA_COLUMNS = ("qualifier", "value_reported", "unit_reported")


def _drop_delivery(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in DELIVERY_COLUMNS if c in df.columns]).reset_index(drop=True)


def _empty_table(table: str, crf: Crf) -> pd.DataFrame:
    dtypes = {"date": "datetime64[ns]", "int": "Int64", "float": "float64", "bool": "boolean"}
    cols = {"center": pd.Series(dtype=object), "patient_id": pd.Series(dtype=object)}
    for f, spec in crf.table(table).fields.items():
        if f != "mrn" and spec.phi != "drop":
            cols[f] = pd.Series(dtype=dtypes.get(spec.type, object))
    if table == "labs":
        for c in LAB_EXTRA_COLUMNS:
            cols[c] = pd.Series(dtype=object)
    return pd.DataFrame(cols)


def apply_adjudications(
    round_a: Mapping[str, pd.DataFrame],
    adjudications: pd.DataFrame | None,
    open_discrepancies: pd.DataFrame,
    crf: Crf,
    *,
    round_b: Mapping[str, pd.DataFrame] | None = None,
    profiles: Mapping[str, CenterProfile],
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """Apply the reviewer's decisions to round A.

    ``adjudications``: the ADJ staging frame (``center, patient_id, table_name,
    record_key, field, resolved_value, reviewer_id, decided_on``; ``delivery_id``,
    ``source_file`` and ``source_row`` feed the quarantine rows). ``open_discrepancies``:
    the discrepancy list the decisions may resolve (``discrepancies(...)``, open and
    resolved rows); a decision may name any listed row (a reviewer may re-decide), and
    listed rows already ``resolved`` that no accepted adjudication names (decided in an
    earlier run) are applied with their resolved_value. ``round_b``: needed to add a record
    that only round B has (``*`` resolved as existing). ``profiles``: the center
    profiles whose vocabularies give extra code spellings (the study's centers; passed, never loaded here).

    An adjudication is rejected (quarantine layout, round ADJ) with rule
    ``no_open_discrepancy`` when it names no listed discrepancy; ``required``, ``type``,
    ``code`` or ``range`` when its resolved_value does not parse for the field;
    ``unique_key`` when a later row decides the same discrepancy; ``record_unavailable``
    when the record to change or add is in neither round. ``*`` decisions: a non-empty
    resolved_value (other than absent/false/0/no/否/无) keeps or adds the record, an
    empty one removes it.

    Returns ``(reconciled, rejected, resolved)``: reconciled = every CRF data table,
    round A with the decisions applied, without round/delivery columns (``center``,
    ``patient_id`` + canonical columns); rejected = quarantine rows; resolved = the
    decisions applied (``RESOLVED_COLUMNS``, resolved_value in canonical text,
    ``present``/``absent`` for ``*``; source ``adjudication`` or ``previous``) - pass it
    to ``discrepancies`` to mark the list.
    """
    listed = {target_key(r): r for r in open_discrepancies.to_dict("records")}
    decisions, rejected = read_adjudications(adjudications, listed, crf, profiles)

    parse = None
    for key, r in listed.items():  # resolutions carried over from an earlier run
        if key in decisions or str(r.get("status")) != RESOLVED:
            continue
        parse = parse or field_parser(crf, profiles)
        origin = {"center": key[0], "round": "ADJ", "delivery_id": None, "table_name": "adjudications",
                  "file_name": None, "row_number": None, "patient_id": key[1]}
        try:
            value, text = parse(key[2], key[4], r.get("resolved_value"))
        except ParseError as e:
            rejected.append(reject_row(origin, "resolved_value", r.get("resolved_value"), e.rule,
                                       f"earlier resolution: {e}"))
            continue
        decisions[key] = Decision(key, value, text, None, None, "previous", origin)

    def reject(origin: dict, field: str, value, rule: str, message: str) -> None:
        rejected.append(reject_row(origin, field, value, rule, message))

    reconciled: dict[str, pd.DataFrame] = {}
    applied: list[Decision] = []
    for table in crf.data_tables:
        df = round_a.get(table)
        df = _empty_table(table, crf) if df is None else _drop_delivery(df)
        mine = [d for d in decisions.values() if d.key[2] == table]
        if mine:
            df = _apply_table(df, table, crf, mine, round_b, applied, reject)
        reconciled[table] = df

    resolved = pd.DataFrame(
        [dict(zip(TARGET, d.key), resolved_value=d.text, reviewer_id=d.reviewer_id, decided_on=d.decided_on,
              source=d.source) for d in applied],
        columns=RESOLVED_COLUMNS,
    )
    rej = pd.DataFrame(rejected, columns=QUARANTINE_COLUMNS)
    rej["row_number"] = pd.to_numeric(rej["row_number"], errors="coerce").astype("Int64")
    return reconciled, rej, resolved


def _apply_table(df, table, crf, decisions, round_b, applied, reject) -> pd.DataFrame:
    keys = list(zip(df["center"], df["patient_id"], record_keys(df, table, crf))) if len(df) else []
    index_of = {k: i for i, k in zip(df.index, keys)}
    drop, add = [], []
    b_df, b_pos = None, {}
    for d in decisions:
        rec = (d.key[0], d.key[1], d.key[3])
        idx = index_of.get(rec)
        if d.key[4] == WHOLE_RECORD:
            if not d.value:
                if idx is not None:
                    drop.append(idx)
            elif idx is None:
                if b_df is None:
                    b_df, b_pos = _keyed_positions((round_b or {}).get(table), table, crf)
                if rec not in b_pos:
                    reject(d.origin, "record_key", d.key[3], "record_unavailable",
                           f"{table} record {d.key[3]!r} is neither in round A nor in the round-B frames "
                           "given; nothing to add")
                    continue
                add.append(b_pos[rec])
        else:
            if idx is None:
                reject(d.origin, "record_key", d.key[3], "record_unavailable",
                       f"{table} record {d.key[3]!r} is not in round A; field {d.key[4]!r} cannot be set")
                continue
            if d.key[4] not in df.columns:
                df[d.key[4]] = None
            df.at[idx, d.key[4]] = d.value
        applied.append(d)
    if drop:
        df = df.drop(index=drop)
    if add:
        extra = b_df.iloc[add].reindex(columns=df.columns).astype(df.dtypes.to_dict())
        df = pd.concat([df, extra], ignore_index=True) if len(df) else extra
    return df.reset_index(drop=True)


def _keyed_positions(df: pd.DataFrame | None, table: str, crf: Crf) -> tuple[pd.DataFrame, dict[tuple, int]]:
    """A round-B table without delivery columns and record -> row position."""
    if df is None or df.empty:
        return pd.DataFrame(), {}
    df = _drop_delivery(df)
    keys = zip(df["center"], df["patient_id"], record_keys(df, table, crf))
    return df, {k: i for i, k in enumerate(keys)}
