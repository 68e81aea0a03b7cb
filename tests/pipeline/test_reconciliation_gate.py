"""The agreement gate through Dagster: a center whose second abstraction disagrees on 10%
of fields is blocked with a message naming it, its agreement and its worst fields, the
other centers go on; after re-abstraction (a new round-B delivery) and the reviewer's
adjudication it flows through."""

import shutil

import duckdb
import pytest
from dagster import DagsterInstance

from ibd_pipeline.cli import adjudicate_outboxes
from ibd_pipeline.config import data_paths, ensure_pseudonym_key
from ibd_pipeline.runner import run_pipeline
from ibd_pipeline.synth import generate_deliveries


def centers_in(data, table):
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        return {r[0] for r in con.execute(f"SELECT DISTINCT center FROM {table}").fetchall()}
    finally:
        con.close()


@pytest.fixture(scope="module")
def blocked(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    paths = data_paths(root / "data").ensure()
    ensure_pseudonym_key(paths)
    generate_deliveries(paths.root / "inbox", n_patients=122, seed=11,
                        discrepancy_share={"zcmu1": 0.015, "zju2": 0.10, "hzfph": 0.015}, truth_dir=paths.ground_truth)
    instance = DagsterInstance.ephemeral()
    first = run_pipeline(paths.root, settle_seconds=0, instance=instance)
    return root, paths, instance, first


def test_a_center_below_the_agreement_threshold_is_blocked_and_the_others_go_on(blocked):
    _, paths, _, first = blocked
    ok, message = first.center_runs["zju2"]
    assert not ok
    assert "agreement_meets_threshold" in message and "zju2" in message
    assert "%" in message  # the center's agreement
    assert first.center_runs["zcmu1"][0] and first.center_runs["hzfph"][0]
    assert first.study_run[0]
    # nothing downstream of the blocked center's data was built
    assert centers_in(paths.root, "reconciled.patients") == {"zcmu1", "hzfph"}
    assert centers_in(paths.root, "core.patients") == {"zcmu1", "hzfph"}
    # but its agreement and worklist exist so the reviewer can act
    assert "zju2" in centers_in(paths.root, "analytics.agreement")
    assert any(p.name.startswith("worklist_") for p in paths.outbox("zju2").iterdir())


def test_the_block_message_names_the_five_weakest_fields(blocked):
    _, paths, _, _ = blocked
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    worst = con.execute(
        "SELECT table_name || '.' || field FROM analytics.agreement WHERE center = 'zju2' AND field <> '*' AND table_name <> '*' "
        "ORDER BY pct_agree, table_name, field LIMIT 1"
    ).fetchone()[0]
    overall = con.execute("SELECT pct_agree FROM analytics.agreement WHERE center = 'zju2' AND table_name = '*' AND field = '*'").fetchone()[0]
    con.close()
    assert overall < 95.0
    from ibd_pipeline import reconcile as rc

    con = duckdb.connect(str(paths.warehouse), read_only=True)
    agreement = con.execute("SELECT * FROM analytics.agreement").df()
    con.close()
    passed, message = rc.agreement_gate(agreement, "zju2", 95.0)
    assert not passed
    assert worst.split(".")[1] in message
    assert f"{overall:.2f}%" in message


def test_after_re_abstraction_and_adjudication_the_center_flows_through(blocked):
    root, paths, instance, _ = blocked
    # the second investigator re-abstracts zju2: a newer round-B workbook replaces the old one
    redo = root / "redo"
    # (same seed: the same charts and round A; only the second abstraction differs)
    generate_deliveries(redo / "inbox", n_patients=122, seed=11, discrepancy_share=0.015,
                        delivery_date="20250501", truth_dir=redo / "truth")
    shutil.copy(redo / "inbox" / "zju2" / "B_20250501.xlsx", paths.inbox("zju2") / "B_20250501.xlsx")
    second = run_pipeline(paths.root, centers=["zju2"], settle_seconds=0, instance=instance, study=False)
    assert second.center_runs["zju2"][0], second.center_runs["zju2"][1]
    assert "zju2" in centers_in(paths.root, "reconciled.patients")
    # the reviewer settles the remaining discrepancies; they are applied
    dropped = adjudicate_outboxes(paths, redo / "truth")
    assert any("zju2" in str(p) for p in dropped)
    for p in dropped:  # only zju2's fresh worklist matters here
        if "zju2" not in str(p):
            p.unlink()
    third = run_pipeline(paths.root, centers=["zju2"], settle_seconds=0, instance=instance, study=False)
    assert third.center_runs["zju2"][0], third.center_runs["zju2"][1]
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    open_left = con.execute("SELECT count(*) FROM analytics.discrepancies WHERE center = 'zju2' AND status = 'open'").fetchone()[0]
    con.close()
    assert open_left == 0
