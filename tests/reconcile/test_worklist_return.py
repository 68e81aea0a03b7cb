"""A worklist round trip per center format (issue 12 item 3 acceptance): the pipeline
writes the center's open discrepancies as a workbook in the center's own units and
codes, the coordinator fills it in with Excel (openpyxl here) and returns it to the
inbox, and the loading reads it back through the same profile as round ADJ; the
decisions resolve the discrepancies and are applied to round A."""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import stat
import time

import duckdb
import openpyxl
import pandas as pd
import pytest

from ibd_pipeline import reconcile as rc
from ibd_pipeline.store import warehouse as wh
from ibd_pipeline.cli import next_step_lines
from ibd_pipeline.config import data_paths, load_centers, load_crf, load_settings
from ibd_pipeline.intake import drain_inbox
from ibd_pipeline.loading import load_center, mrn_map
from ibd_pipeline.spreadsheet import OUTBOX_FILE_MODE
from ibd_pipeline.reconcile.values import compared_fields, record_keys, to_text
from ibd_pipeline.reconcile.worklist import worklist_headers, worklist_sheet
from tests.support.intake import NAME_CHECK

CENTERS = load_centers()
PROFILES = CENTERS
CRF = load_crf()
SETTINGS = load_settings()
KEY = b"worklist-return-test-key-0123456"
DATE_RE = {"hzfph": r"\d{4}/\d{2}/\d{2}", "zju2": r"\d{4}-\d{2}-\d{2}", "zcmu1": r"\d{4}-\d{2}-\d{2}"}
BOOL = {"hzfph": {"是", "否"}, "zju2": {"是", "否"}, "zcmu1": {"true", "false"}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from ibd_pipeline.synth import generate_deliveries

    root = tmp_path_factory.mktemp("worklist-return")
    generate_deliveries(root / "inbox", n_patients=40, seed=7, discrepancy_share=0.06, truth_dir=root / "truth")
    return root


def _frames(con, center, rnd):
    out = {}
    for t in CRF.data_tables:  # nullable columns, as the reconciliation reads them (a decision may set NULL)
        df = con.execute(f"SELECT * FROM staging.{t} WHERE center = ? AND round = ?", [center, rnd]).df()
        out[t] = df.astype({c: "boolean" for c, d in df.dtypes.items() if str(d) == "bool"}
                           | {c: "Int64" for c, d in df.dtypes.items() if str(d).startswith("int") and c != "source_row"})
    return out


def _load(paths, center, db):
    con = duckdb.connect(str(db))
    try:
        load_center(con, paths, CENTERS[center], CRF, KEY, SETTINGS)
        a, b = _frames(con, center, "A"), _frames(con, center, "B")
        adj = con.execute("SELECT * FROM staging.adjudications WHERE center = ?", [center]).df()
        quarantine = con.execute(
            "SELECT * FROM analytics.quarantine WHERE center = ? AND table_name = 'adjudications'", [center]).df()
        mrns = mrn_map(con, paths, CENTERS[center], KEY, CRF)
    finally:
        con.close()
    return a, b, adj, quarantine, mrns


def _age(path):
    t = time.time() - 60
    os.utime(path, (t, t))


@pytest.mark.parametrize("center", ["zju2", "hzfph", "zcmu1"])
def test_a_worklist_written_filled_in_returned_and_applied(center, study, tmp_path):
    profile = CENTERS[center]
    paths = data_paths(tmp_path / "data").ensure([center])
    for f in (study / "inbox" / center).iterdir():
        shutil.copy(f, paths.inbox(center) / f.name)
    drain_inbox(paths, profile, settle_seconds=0, name_check=NAME_CHECK)
    a, b, _, _, mrns = _load(paths, center, paths.warehouse)
    comparison = rc.compare_rounds(a, b, a["patients"][["center", "patient_id", "diagnosis"]], CRF)
    disc = rc.discrepancies(comparison, crf=CRF, profiles=PROFILES)
    assert len(disc) >= 8, len(disc)

    wl = rc.write_worklist(disc, center, profile, mrns, paths.outbox(center), "20250415",
                           return_to=str(paths.inbox(center)), crf=CRF)
    # the demo's output tells the coordinator where the worklist is and where it goes back to
    con = duckdb.connect(str(paths.warehouse))
    wh.replace_table(con, "analytics.discrepancies", disc)
    con.close()
    lines = next_step_lines(paths)
    start = lines.index(f"{center}: status page     {paths.outbox(center) / 'index.html'}")
    ends = [i for i, x in enumerate(lines) if i > start and not x.startswith(" ")]
    lines = lines[start:ends[0] if ends else None]
    (line,) = [x for x in lines if x.strip().startswith("worklist")]
    assert str(wl) in line and f"{len(disc)} open" in line and str(paths.inbox(center)) in line
    assert worklist_headers(profile)["resolved_value"] in line
    assert any(x.strip().startswith("withdrawal") and "withdrawals_<yyyymmdd>" in x for x in lines)

    wb = openpyxl.load_workbook(wl)
    ws = wb[worklist_sheet(profile)]
    header = [c.value for c in ws[1]]
    col = {f: header.index(h) + 1 for f, h in worklist_headers(profile).items()}
    assert ws.max_row - 1 == len(disc)

    # ---- the values are shown in the center's units and codes
    shown_units = 0
    for i, d in enumerate(disc.itertuples(index=False), start=2):
        cell = lambda f: "" if ws.cell(i, col[f]).value is None else str(ws.cell(i, col[f]).value)  # noqa: E731
        if d.field != "*":
            assert cell("field") == profile.header_for(d.table_name, d.field) or d.field == "qualifier"
        spec = CRF.table(d.table_name).fields.get(d.field)
        for side in ("value_a", "value_b"):
            canon, shown = getattr(d, side), cell(side)
            if canon is None:
                assert shown == ""
            elif d.field == "*":
                assert shown in ({"有", "无"} if profile.raw.get("vocabulary") else {"present", "absent"})
            elif spec is not None and spec.type == "bool":
                assert shown in BOOL[center]
            elif spec is not None and spec.type == "date":
                assert re.fullmatch(DATE_RE[center], shown), shown
            elif spec is not None and spec.type == "code" and profile.code_map(d.field):
                assert profile.code_map(d.field)[shown] == canon  # the center's spelling of the code
            elif (d.table_name, d.field) == ("labs", "value"):
                test = d.record_key.split("|")[1]
                unit, factor = next(iter((profile.units.get(test) or {CRF.canonical_unit(test): 1}).items()))
                assert cell("unit") == unit
                assert math.isclose(float(shown) * float(factor), float(canon), rel_tol=1e-12)
                shown_units += factor != 1
    if center == "zju2":
        assert shown_units > 0  # some values converted back to zju2's own units (mg/dL, g/dL ...)

    # ---- the coordinator fills it in: round A's value (as shown) on the first rows, round B's
    # on the next, one lab value typed in freshly, one row left for later, one impossible code
    expected: dict[int, str | None] = {}
    undecided = None
    bad_row = None
    for i, d in enumerate(disc.itertuples(index=False), start=2):
        if undecided is None and i > 4:
            undecided = i
            continue
        if bad_row is None and d.field != "*" and (CRF.table(d.table_name).fields.get(d.field) is not None
                                                  and CRF.table(d.table_name).fields[d.field].type in ("code", "bool")):
            bad_row = i
            ws.cell(i, col["resolved_value"]).value = "不详 unknown"
        else:
            side = "value_a" if i % 2 else "value_b"
            ws.cell(i, col["resolved_value"]).value = ws.cell(i, col[side]).value
            expected[i] = getattr(d, side)
        ws.cell(i, col["reviewer_id"]).value = "REV07"
        if i % 3 == 0:  # a date typed into Excel is a date cell
            ws.cell(i, col["decided_on"]).value = dt.datetime(2025, 4, 16)
    labs = [i for i, d in enumerate(disc.itertuples(index=False), start=2)
            if (d.table_name, d.field) == ("labs", "value") and i in expected and d.value_a is not None]
    if labs:
        i = labs[0]  # typed as a number cell, in the unit shown
        ws.cell(i, col["resolved_value"]).value = float(ws.cell(i, col["value_a"]).value)
        expected[i] = disc.iloc[i - 2]["value_a"]
    returned = paths.inbox(center) / wl.name
    wb.save(returned)
    _age(returned)
    (outcome,) = drain_inbox(paths, profile, settle_seconds=0, name_check=NAME_CHECK)
    assert outcome.status == "accepted", outcome

    # ---- read back through the profile (round ADJ) and applied
    a, b, adj, quarantine, _ = _load(paths, center, paths.warehouse)
    assert len(adj) == len(disc) - 1  # every decided row; the undecided one is not a decision
    outbox = list(paths.outbox(center).iterdir())  # worklist, reports, status page: one mode, group-readable
    assert {p.name for p in outbox} >= {wl.name, "index.html", f"{wl.name}.report.html"}
    assert {stat.S_IMODE(p.stat().st_mode) for p in outbox} == {OUTBOX_FILE_MODE}
    status = (paths.outbox(center) / "index.html").read_text(encoding="utf-8")
    assert f"{wl.name}" in status and f"{wl.name}.report" not in status.split("下一步")[1].split("</ol>")[0]
    assert quarantine.empty
    assert set(adj["source_file"]) == {wl.name} and set(adj["reviewer_id"]) == {"REV07"}
    assert set(adj["table_name"]) <= set(CRF.data_tables)  # canonical, whatever the center calls them
    decided = rc.discrepancies(comparison, None, adj, crf=CRF, profiles=PROFILES)
    by_row = dict(zip(range(2, 2 + len(disc)), decided.to_dict("records")))
    assert by_row[undecided]["status"] == "open"
    assert by_row[bad_row]["status"] == "open"  # a value that is not a code decides nothing
    for i, want in expected.items():
        r = by_row[i]
        assert r["status"] == "resolved", (i, r)
        if r["field"] == "*" or want is None:
            assert (r["resolved_value"] or None) == (want if r["field"] == "*" else None), (i, r)
        elif r["field"] in ("value",) and r["table_name"] == "labs":
            assert math.isclose(float(r["resolved_value"]), float(want), rel_tol=1e-12), (i, r, want)
        else:
            assert r["resolved_value"] == want, (i, r, want)
    reconciled, rejected, resolved = rc.apply_adjudications(a, adj, decided, CRF, round_b=b, profiles=PROFILES)
    assert len(resolved) == len(expected)
    assert len(rejected) == 1 and rejected["rule"].iloc[0] in ("code", "type")  # a code, or a boolean
    assert rejected["row_number"].tolist() == [bad_row] and rejected["field"].tolist() == ["resolved_value"]
    assert set(rejected["file_name"]) == {wl.name}
    for i, want in expected.items():  # round A now carries the decided values
        r = by_row[i]
        if r["field"] == "*":
            continue
        df = reconciled[r["table_name"]]
        hit = df[(df["patient_id"] == r["patient_id"]) & (record_keys(df, r["table_name"], CRF) == r["record_key"])]
        got = to_text(hit[r["field"]].iloc[0], compared_fields(CRF, r["table_name"])[r["field"]])
        if want is not None and r["field"] == "value":
            assert math.isclose(float(got), float(want), rel_tol=1e-12), (i, got, want)
        else:
            assert got == want, (i, r, got, want)
    dates = set(pd.to_datetime(adj["decided_on"]).dt.date)
    assert dates <= {dt.date(2025, 4, 15), dt.date(2025, 4, 16)} and dt.date(2025, 4, 16) in dates
