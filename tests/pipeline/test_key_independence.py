"""Issue 13: the same deliveries give the same study whatever the pseudonymization key.

Patient ids are a keyed hash, so every table that orders or draws by id used to change
with each site's secret key (re-abstraction sample, CV folds, bootstrap resamples,
Boruta). Here the session's reference run (key 1) and a second full run of the same
deliveries with another key must give identical ``analytics`` and ``core`` tables once
each id of the second run is mapped to the first run's id of the same record number.
"""

from __future__ import annotations

import json
import re
import secrets

import pandas as pd

from tests.support.fullrun import run_cli, warehouse_contents
from ibd_pipeline.pseudonym import patient_id

PID = re.compile(r"P[0-9a-f]{20}")


def _id_map(key_from: bytes, key_to: bytes, truth_root) -> dict[str, str]:
    """pid under ``key_from`` -> pid under ``key_to`` of every record number the
    generator wrote (patients, invalid rows, injected discrepancies)."""
    truth = json.loads((truth_root / "truth.json").read_text())
    pairs = {(c, str(m)) for c, v in truth["centers"].items() for m in v["mrns"]}
    pairs |= {(d["center"], str(d["mrn"])) for d in truth.get("discrepancies", []) if d.get("mrn")}
    invalid = truth_root / "invalid_rows.csv"
    if invalid.exists():
        inv = pd.read_csv(invalid, dtype=str, keep_default_na=False)
        pairs |= {(c, m) for c, m in zip(inv["center"], inv["mrn"]) if m.strip()}
    return {patient_id(key_from, c, m): patient_id(key_to, c, m) for c, m in pairs}


def _mapped(contents: dict, mapping: dict) -> dict:
    def one(v):
        if isinstance(v, str):
            return PID.sub(lambda m: mapping.get(m.group(0), "UNMAPPED:" + m.group(0)), v)
        return v

    return {t: (cols, sorted((tuple(one(v) for v in r) for r in rows), key=repr))
            for t, (cols, rows) in contents.items()}


def test_two_pseudonymization_keys_give_the_same_analytics_tables(reference_run, new_data_dir, pseudonym_key, truth_dir):
    ref = reference_run
    other_key = secrets.token_hex(32)
    assert other_key != pseudonym_key
    paths = new_data_dir("other_key")
    (paths.secrets / "pseudonym.key").write_text(other_key + "\n")
    run = run_cli(paths, "run", "--settle", "0")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    mapping = _id_map(other_key.encode(), pseudonym_key.encode(), truth_dir)
    assert len(mapping) > 100
    schemas = ("core", "analytics")
    first = warehouse_contents(ref.data.warehouse, schemas)
    second = _mapped(warehouse_contents(paths.warehouse, schemas), mapping)
    assert set(first) == set(second)
    # the tables that carried the key's order before issue 13
    for t in ("analytics.reabstraction_sample", "analytics.predictor_selection", "analytics.logistic_model",
              "analytics.model_auc", "analytics.cox_model"):
        assert first[t] == second[t], t
    # the quality suite's "examples" (up to 10 failing rows, for the reader of the Data
    # Docs) are the first failing rows in the table's order - a display sample, not a
    # result; every count of the table must agree
    for contents in (first, second):
        cols, rows = contents["analytics.quality_results"]
        i = cols.index("examples")
        contents["analytics.quality_results"] = (cols, sorted((r[:i] + r[i + 1:] for r in rows), key=repr))
    diffs = [t for t in sorted(first) if first[t] != second[t]]
    assert diffs == [], diffs
