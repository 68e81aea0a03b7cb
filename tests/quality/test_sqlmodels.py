"""The SQL models: lineage from the SQL, documentation in DuckDB, column tests, idempotence."""

import duckdb
import pandas as pd
import pytest

from ibd_pipeline import sqlmodels as sm
from ibd_pipeline.store import warehouse as wh
from ibd_pipeline.store.snapshot import publish_snapshot
from ibd_pipeline.config import load_centers, load_crf, load_settings, with_overrides


def test_upstream_tables_are_read_from_the_sql_and_ctes_are_not_tables():
    sql = """WITH s AS (SELECT * FROM ref.settings)
             SELECT a.x FROM reconciled.patients a JOIN core.labs l USING (patient_id), s
             WHERE a.id IN (SELECT id FROM analytics.eligibility)"""
    assert sm.upstream_tables(sql) == [("analytics", "eligibility"), ("core", "labs"), ("reconciled", "patients"), ("ref", "settings")]


def test_every_sql_model_has_a_description_for_the_table_and_every_column():
    for m in sm.load_models():
        assert m.description.strip(), m.path
        if m.sql:
            assert all(m.columns.values()), f"{m.path}: undocumented columns"


@pytest.fixture()
def con():
    c = duckdb.connect()
    wh.ensure_warehouse(c, load_crf())
    return c


def _load_refs(con, settings):
    for n, df in sm.reference_frames(load_crf(), settings, load_centers()).items():
        wh.replace_table(con, f"ref.{n}", df)


def _patient(**kw):
    base = dict(center="zcmu1", patient_id="P1", sex="F", birth_date="1990-06-15", diagnosis="CD",
                diagnosis_date="2010-06-14", upa_start_date="2024-06-14", upa_stop_date=None,
                last_followup_date="2025-06-14", height_cm=170.0, weight_kg=57.8)
    base.update(kw)
    return base


def _insert(con, table, rows):
    df = pd.DataFrame(rows)
    wh.insert_frame(con, f"reconciled.{table}", df, wh.reconciled_columns(table, load_crf()))


def test_core_patients_derives_completed_ages_montreal_bmi_and_exposure(con):
    _load_refs(con, load_settings())
    _insert(con, "patients", [_patient(), _patient(patient_id="P2", birth_date="1990-06-14", upa_stop_date="2024-09-05")])
    sm.build_order(sm.load_models())
    sm.build_model(con, sm.model_by_name("core.patients"))
    got = con.execute("SELECT patient_id, age_at_upa_start, age_at_diagnosis, montreal_age, round(bmi, 2), exposure_days, discontinued FROM core.patients ORDER BY 1").fetchall()
    # P1: birthday is the day after UPA start -> 33 completed years; diagnosed the day before turning 20 -> 19 (A2)
    assert got[0] == ("P1", 33, 19, "A2", 20.0, 365, False)
    # P2: birthday on the start date -> 34; stopped after 83 days
    assert got[1] == ("P2", 34, 20, "A2", 20.0, 83, True)


def test_changing_the_montreal_threshold_in_the_settings_changes_the_table(con):
    _insert(con, "patients", [_patient(diagnosis_date="2006-06-15")])  # age 16 at diagnosis
    _load_refs(con, load_settings())
    sm.build_model(con, sm.model_by_name("core.patients"))
    assert con.execute("SELECT montreal_age FROM core.patients").fetchone()[0] == "A1"
    _load_refs(con, with_overrides(load_settings(), {"baseline": {"montreal_age": {"A1_below": 16}}}))
    sm.build_model(con, sm.model_by_name("core.patients"))
    assert con.execute("SELECT montreal_age FROM core.patients").fetchone()[0] == "A2"


def test_medication_timing_and_mechanism_groups_follow_the_settings(con):
    _insert(con, "patients", [_patient()])
    _insert(con, "medications", [
        dict(center="zcmu1", patient_id="P1", drug="ustekinumab", start_date="2020-01-01", stop_date="2024-06-13", stop_reason="secondary_loss_of_response"),
        dict(center="zcmu1", patient_id="P1", drug="risankizumab", start_date="2024-01-01", stop_date="2024-06-14", stop_reason="primary_nonresponse"),
        dict(center="zcmu1", patient_id="P1", drug="mesalazine", start_date="2025-07-01", stop_date=None, stop_reason=None),
    ])
    _load_refs(con, load_settings())
    sm.build_model(con, sm.model_by_name("core.medications"))
    rows = con.execute("SELECT drug, mechanism, timing FROM core.medications ORDER BY start_date").fetchall()
    # ends the day before UPA start -> before; ends on the start day -> overlapping (both ends inclusive)
    assert rows == [("ustekinumab", "anti_il23_pathway", "before"), ("risankizumab", "anti_il23_pathway", "overlapping"), ("mesalazine", "aminosalicylate", "after")]
    _load_refs(con, with_overrides(load_settings(), {"dtt": {"mechanism_groups": {}}}))
    sm.build_model(con, sm.model_by_name("core.medications"))
    assert [r[0] for r in con.execute("SELECT mechanism FROM core.medications ORDER BY start_date").fetchall()][:2] == ["anti_il12_23", "anti_il23"]


def test_models_are_documented_in_duckdb_and_rebuilt_idempotently(con):
    _load_refs(con, load_settings())
    _insert(con, "patients", [_patient()])
    for m in sm.build_order([m for m in sm.load_models() if m.sql]):
        sm.build_model(con, m)
        sm.build_model(con, m)
    comment = con.execute("SELECT comment FROM duckdb_tables() WHERE schema_name='core' AND table_name='patients'").fetchone()[0]
    assert "screened patient" in comment
    missing = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name='core' AND (comment IS NULL OR comment = '')"
    ).fetchall()
    assert missing == []
    assert con.execute("SELECT count(*) FROM core.patients").fetchone()[0] == 1


def test_column_tests_report_the_offending_values(con):
    _load_refs(con, load_settings())
    _insert(con, "patients", [_patient(), _patient(patient_id="P1")])
    model = sm.model_by_name("core.patients")
    sm.build_model(con, model)
    results = {t.name: sm.run_test(con, model, t) for t in model.tests}
    assert not results["patient_id_unique"].passed and results["patient_id_unique"].examples == ["P1"]
    assert results["sex_accepted_values"].passed
    con.execute("UPDATE core.patients SET center = 'nowhere' WHERE true")
    r = sm.run_test(con, model, next(t for t in model.tests if t.name == "center_relationships"))
    assert not r.passed and r.examples == ["nowhere"]


def test_the_column_tests_of_a_model_are_one_asset_check_naming_the_failing_tests(con):
    from ibd_pipeline.defs.tables import COLUMN_TESTS_CHECK, column_tests_result, column_tests_spec

    _load_refs(con, load_settings())
    model = sm.model_by_name("core.patients")
    (spec,) = column_tests_spec(model)
    assert spec.name == COLUMN_TESTS_CHECK and "unique on patient_id" in spec.description
    _insert(con, "patients", [_patient()])
    sm.build_model(con, model)
    (ok,) = column_tests_result(con, model)
    assert ok.passed and ok.metadata["tests"].value == len(model.tests) and ok.metadata["failed_tests"].value == []
    _insert(con, "patients", [_patient()])  # the same patient twice
    sm.build_model(con, model)
    (bad,) = column_tests_result(con, model)
    assert not bad.passed and bad.severity.value == "ERROR"
    assert bad.metadata["failed_tests"].value == ["patient_id_unique"]
    assert bad.metadata["examples"].value == {"patient_id_unique": ["P1"]}
    assert "| patient_id_unique | unique | patient_id | 1 |" in bad.metadata["results"].value


def test_treatment_emergent_window_ends_the_set_number_of_days_after_the_stop(con):
    _load_refs(con, load_settings())
    _insert(con, "patients", [_patient(upa_stop_date="2024-12-01")])
    _insert(con, "adverse_events", [
        dict(center="zcmu1", patient_id="P1", onset_date=d, term="acne", serious=False, led_to_discontinuation=False)
        for d in ("2024-06-13", "2024-06-14", "2024-12-31", "2025-01-01")
    ])
    sm.build_model(con, sm.model_by_name("core.adverse_events"))
    assert [r[0] for r in con.execute("SELECT treatment_emergent FROM core.adverse_events ORDER BY onset_date").fetchall()] == [False, True, True, False]


def test_snapshot_is_published_atomically_with_comments(con, tmp_path):
    _load_refs(con, load_settings())
    _insert(con, "patients", [_patient()])
    sm.build_model(con, sm.model_by_name("core.patients"))
    target = tmp_path / "analytics.duckdb"
    copied = publish_snapshot(con, target)
    assert copied["core.patients"] == 1
    snap = duckdb.connect(str(target), read_only=True)
    assert snap.execute("SELECT count(*) FROM core.patients").fetchone()[0] == 1
    assert snap.execute("SELECT comment FROM duckdb_columns() WHERE table_name='patients' AND column_name='bmi'").fetchone()[0]
    assert snap.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name='staging'").fetchone()[0] == 0
    # a reader holding the old snapshot does not block a new publication
    publish_snapshot(con, target)
    assert snap.execute("SELECT count(*) FROM core.patients").fetchone()[0] == 1
    snap.close()
