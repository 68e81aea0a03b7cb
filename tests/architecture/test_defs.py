"""The Dagster definitions as a reviewed snapshot: every asset key with its group,
partitioning, kinds and dependencies, every asset check with its target, blocking flag
and extra dependencies, the jobs with their assets, the sensors and the schedules are
compared with tests/architecture/snapshots/definitions.json. A change of the asset graph is then a
diff of that file in the review.

To accept an intended change, rewrite the snapshot and commit it:
    IBD_UPDATE_SNAPSHOTS=1 python -m pytest -q tests/architecture/test_defs.py
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path

import dagster as dg
import pytest

from ibd_pipeline.defs import keys

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
UPDATE_ENV = "IBD_UPDATE_SNAPSHOTS"


def _key(k: dg.AssetKey) -> str:
    return k.to_user_string()


def definitions_snapshot(defs: dg.Definitions) -> dict:
    """The structure of ``defs`` as plain, sorted JSON data (no descriptions, no metadata)."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda s: _key(s.key)):
        assets[_key(spec.key)] = {
            "group": spec.group_name,
            "kinds": sorted(spec.kinds),
            "partitions": list(spec.partitions_def.get_partition_keys()) if spec.partitions_def else None,
            "deps": sorted(_key(d.asset_key) for d in spec.deps),
        }
    checks = []
    for ck in sorted(graph.asset_check_keys, key=lambda c: (_key(c.asset_key), c.name)):
        spec = graph.get_check_spec(ck)
        checks.append({
            "asset": _key(ck.asset_key),
            "name": ck.name,
            "blocking": spec.blocking,
            "additional_deps": sorted(_key(d.asset_key) for d in spec.additional_deps),
        })
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # Dagster's implicit asset job
            continue
        jobs[job.name] = {
            "partitions": list(job.partitions_def.get_partition_keys()) if job.partitions_def else None,
            "assets": sorted(_key(k) for k in job.asset_layer.selected_asset_keys),
        }
    sensors = {
        s.name: {
            "type": s.sensor_type.value,
            "jobs": sorted(j.name for j in s.jobs) if s.has_jobs else [],
            "minimum_interval_seconds": s.minimum_interval_seconds,
            "default_status": s.default_status.value,
        }
        for s in sorted(defs.sensors or [], key=lambda s: s.name)
    }
    schedules = {
        s.name: {"cron": s.cron_schedule, "job": s.job_name}
        for s in sorted(defs.schedules or [], key=lambda s: s.name)
    }
    return {"assets": assets, "checks": checks, "jobs": jobs, "sensors": sensors, "schedules": schedules}


def _dump(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> dict:
    from ibd_pipeline.definitions import build_definitions

    return definitions_snapshot(build_definitions(tmp_path_factory.mktemp("defs-data")))


def test_definitions_match_the_committed_snapshot(snapshot):
    got = _dump(snapshot)
    if os.environ.get(UPDATE_ENV):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(got, encoding="utf-8")
        return
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing: run with {UPDATE_ENV}=1 to write it, then review and commit it"
    want = SNAPSHOT.read_text(encoding="utf-8")
    if got != want:
        diff = "".join(difflib.unified_diff(
            want.splitlines(keepends=True), got.splitlines(keepends=True),
            fromfile=f"{SNAPSHOT.name} (committed)", tofile="definitions (this code)", n=2,
        ))
        pytest.fail(
            f"The Dagster definitions differ from {SNAPSHOT}; if the change is intended, rewrite it with "
            f"{UPDATE_ENV}=1 and commit the diff:\n{diff}",
            pytrace=False,
        )


def test_snapshot_holds_the_study_graph(snapshot):
    """The snapshot is the real graph (not an empty shell): the center assets are
    partitioned by the centers, the blocking agreement gate guards the agreement table,
    the report follows the pooled tables, the sensors start the two jobs."""
    a = snapshot["assets"]
    centers = a[_key(keys.AGREEMENT)]["partitions"]
    assert centers and centers == snapshot["jobs"]["center_job"]["partitions"]
    assert _key(keys.SAMPLE) in a[_key(keys.AGREEMENT)]["deps"]
    assert _key(keys.staging_key("patients")) in a[_key(keys.SAMPLE)]["deps"]
    assert {_key(keys.AGREEMENT), _key(keys.DISCREPANCIES), _key(keys.staging_key("labs"))} <= set(
        a[_key(keys.reconciled_key("labs"))]["deps"]
    )
    gate = [c for c in snapshot["checks"] if c["name"] == "agreement_meets_threshold"]
    assert gate == [{"asset": _key(keys.AGREEMENT), "name": "agreement_meets_threshold", "blocking": True, "additional_deps": []}]
    assert _key(keys.analytics_key("endpoints")) in a[_key(keys.REPORT)]["deps"]
    assert _key(keys.REPORT) in a[_key(keys.SNAPSHOT)]["deps"]
    assert _key(keys.REPORT) in snapshot["jobs"]["study_job"]["assets"]
    assert _key(keys.REPORT) not in snapshot["jobs"]["center_job"]["assets"]
    assert {j for s in snapshot["sensors"].values() for j in s["jobs"]} == {"center_job", "study_job"}
    # every dependency is an asset of the graph (no key built wrongly in one module)
    assert {d for v in a.values() for d in v["deps"]} <= set(a)
    assert {c["asset"] for c in snapshot["checks"]} <= set(a)


def test_snapshot_diff_names_the_changed_dependency(tmp_path, monkeypatch, snapshot):
    """A changed graph fails with a diff naming the changed line."""
    changed = json.loads(json.dumps(snapshot))
    changed["assets"][_key(keys.AGREEMENT)]["deps"].remove(_key(keys.SAMPLE))
    fake = tmp_path / "definitions.json"
    fake.write_text(_dump(changed), encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "SNAPSHOT", fake)
    monkeypatch.delenv(UPDATE_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception) as err:
        test_definitions_match_the_committed_snapshot(snapshot)
    added = [line for line in str(err.value).splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert added == [f'+        "{_key(keys.SAMPLE)}",']


def _key_literals(path: Path) -> list[str]:
    """Places in a module that build an asset key themselves: an ``AssetKey(...)`` call,
    or a list/tuple literal given as ``key=``/``asset_key=``/``asset=`` or as the first
    argument of ``AssetSpec``."""
    import ast

    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        literal = (ast.List, ast.Tuple)
        if name == "AssetKey" or (
            name == "AssetSpec" and node.args and isinstance(node.args[0], literal)
        ) or any(k.arg in ("key", "asset_key", "asset") and isinstance(k.value, literal) for k in node.keywords):
            out.append(f"{path.relative_to(Path(__file__).resolve().parents[2])}:{node.lineno}")
    return out


def test_asset_keys_are_built_only_in_defs_keys():
    package = Path(keys.__file__).parents[1]
    found = [hit for p in sorted(package.rglob("*.py")) if p != Path(keys.__file__) for hit in _key_literals(p)]
    assert not found, "asset keys built outside ibd_pipeline/defs/keys.py (use its helpers): " + ", ".join(found)
    assert _key_literals(Path(keys.__file__)), "the reader finds no key in keys.py itself"
