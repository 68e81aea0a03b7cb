"""The whole study on the default synthetic deliveries, through Dagster, as `make demo`
runs it: the session's ``demo_run`` (tests/pipeline/conftest.py), ``ibd-pipeline demo``
on a copy of the reference run's data directory - the reference run being the demo's
first run - which adjudicates every worklist and loads the adjudications."""

import json

import duckdb
import pandas as pd
import pytest

from ibd_pipeline.cli import main as cli_main
from ibd_pipeline.config import load_published
from ibd_pipeline.store.snapshot import connect_snapshot

PUBLISHED = load_published()


@pytest.fixture(scope="module")
def demo(demo_run):
    data = demo_run["paths"].root
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    yield data, con
    con.close()


def test_the_demo_on_the_reference_runs_copy_reruns_nothing_then_loads_the_adjudications(demo_run):
    """What makes the reference run the demo's first run: on its copy the demo generated
    nothing, its first run found every job unchanged, and the second loaded the reviewer's
    adjudication of every center."""
    assert demo_run["returncode"] == 0, demo_run["stdout"][-3000:]
    lines = demo_run["stdout"].splitlines()
    assert not any(ln.startswith("synthetic deliveries of") for ln in lines), lines
    first = lines[: lines.index(next(ln for ln in lines if ln.startswith("senior reviewer adjudicated")))]
    for job in ("center hzfph", "center zcmu1", "center zju2", "study"):
        assert any(ln.startswith(f"{job}: unchanged since the run of ") for ln in first), first
    assert "senior reviewer adjudicated 3 worklist(s); loading the adjudications" in lines
    second = lines[len(first) + 1:]
    for job in ("center hzfph", "center zcmu1", "center zju2", "study"):
        assert f"{job}: ok" in second, second


def test_the_demo_on_an_empty_data_directory_writes_deliveries_truth_and_key_then_runs(tmp_path, monkeypatch, capsys):
    """The demo's own first step (the session's demo starts from the reference run's copy):
    122 screened patients' deliveries in every center's inbox, their ground truth in
    ``ground_truth/``, a new pseudonymization key, then a run of the whole study."""
    import ibd_pipeline.runner as runner
    from ibd_pipeline.config import load_centers

    calls = []

    class Ran:
        success = True

        def lines(self):
            return ["study: ok"]

    def fake_run(root, **kw):
        calls.append((root, kw))
        return Ran()

    monkeypatch.setattr(runner, "run_pipeline", fake_run)
    data = (tmp_path / "data").resolve()
    monkeypatch.setenv("IBD_DATA_DIR", str(data))  # the demo sets it for its process
    monkeypatch.delenv("IBD_PSEUDONYM_KEY_FILE", raising=False)
    assert cli_main(["--data-dir", str(data), "demo"]) == 0
    out = capsys.readouterr().out
    assert f"synthetic deliveries of 122 screened patients written to {data / 'inbox'}" in out
    for center in load_centers():
        assert list((data / "inbox" / center).iterdir()), center
    truth = json.loads((data / "ground_truth" / "truth.json").read_text())
    assert sum(len(v["mrns"]) for v in truth["centers"].values()) == 122
    assert len((data / "secrets" / "pseudonym.key").read_text().strip()) >= 32
    assert calls == [(data, {"settle_seconds": 0})]  # no worklist in an outbox yet: one run


def q(con, sql):
    return con.execute(sql).df()


def test_staging_holds_rows_from_all_three_centers_and_both_rounds(demo):
    _, con = demo
    got = q(con, "SELECT center, round, count(*) AS n FROM staging.patients GROUP BY ALL")
    assert {(r.center, r.round) for r in got.itertuples()} == {(c, r) for c in ("zcmu1", "zju2", "hzfph") for r in ("A", "B")}
    for t in ("medications", "assessments", "labs"):
        assert q(con, f"SELECT count(DISTINCT center) AS c FROM staging.{t} WHERE round = 'B'")["c"][0] == 3


def test_every_injected_invalid_row_is_quarantined_with_its_rule_and_no_valid_row_is(demo):
    data, con = demo
    truth = pd.DataFrame(json.loads((data / "ground_truth" / "truth.json").read_text())["invalid_rows"])
    quarantine = q(con, "SELECT center, round, table_name, file_name, sheet, row_number, field, rule FROM analytics.quarantine WHERE round IN ('A', 'B')")
    injected = {(r.center, r.file_name, int(r.row_number), r.rule) for r in truth.itertuples()}
    found = {(r.center, r.file_name, int(r.row_number), r.rule) for r in quarantine.itertuples()}
    assert injected <= found, f"not quarantined: {sorted(injected - found)}"
    # every quarantined row is one the generator made invalid (no valid row is quarantined)
    bad_rows = {(c, f, n) for c, f, n, _ in injected}
    assert {(c, f, n) for c, f, n, _ in found} <= bad_rows


def test_no_name_phone_or_raw_mrn_reaches_any_table_of_the_warehouse_or_snapshot(demo):
    data, con = demo
    secrets = pd.concat(
        [pd.read_csv(p, dtype=str) for p in (data / "ground_truth").glob("*/phi.csv")], ignore_index=True
    )
    values = set()
    for col in secrets.columns:
        values |= {v for v in secrets[col].dropna().astype(str) if len(v) >= 2}
    assert len(values) > 300  # names, phones and mrns of 122 patients
    for db in (data / "warehouse.duckdb", data / "analytics.duckdb"):
        c = con if db.name == "warehouse.duckdb" else connect_snapshot(db)
        c.register("secret_values", pd.DataFrame({"v": sorted(values)}))
        cols = c.execute(
            "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
            "WHERE data_type = 'VARCHAR' AND database_name = current_database() AND schema_name NOT IN ('information_schema', 'pg_catalog')"
        ).fetchall()
        assert cols
        for s, t, col in cols:
            hits = c.execute(
                f'SELECT DISTINCT x."{col}" FROM {s}."{t}" x JOIN secret_values v ON x."{col}" = v.v OR (length(v.v) >= 8 AND contains(x."{col}", v.v))'
            ).fetchall()
            assert hits == [], f"{db.name}: {s}.{t}.{col} holds identifiers {hits[:3]}"
        c.unregister("secret_values")


def test_the_demo_cohort_reproduces_the_published_flow(demo):
    _, con = demo
    flow = q(con, "SELECT step, reason, n FROM analytics.patient_flow WHERE center = 'all'")
    n = {(r.step, r.reason): int(r.n) for r in flow.itertuples()}
    pub = PUBLISHED["flow"]
    assert n[("screened", None)] == pub["screened"]
    for reason in ("not_dtt", "under_18", "insufficient_data", "concomitant_biologic"):
        assert n[("excluded_by_reason", reason)] == pub["excluded"][reason], reason
    # 'other' is reported by name; the published 10 are the named reasons (see cohort.flow)
    assert n[("other_reason", "other")] == pub["excluded"]["other"]
    assert n[("included", None)] == pub["included"]
    for dx, k in pub["by_diagnosis"].items():
        assert n[("included_by_diagnosis", dx)] == k


def test_the_demo_cohort_reproduces_the_published_endpoint_and_biomarker_rates(demo):
    _, con = demo
    rates = q(con, "SELECT diagnosis, timepoint, endpoint, n, n_total FROM analytics.endpoint_rates WHERE analysis = 'complete_case'")
    got = {(r.diagnosis, r.timepoint, r.endpoint): (int(r.n), int(r.n_total)) for r in rates.itertuples()}
    timepoints = {"endpoints": ["induction", "month6", "month12"], "biomarkers": ["baseline", "induction", "month6", "month12", "month18"]}
    diffs = []
    for section, tps in timepoints.items():
        for endpoint, by_dx in PUBLISHED[section].items():
            for dx, values in by_dx.items():
                for tp, (k, total) in zip(tps, values):
                    if got.get((dx, tp, endpoint)) != (k, total):
                        diffs.append((section, endpoint, dx, tp, got.get((dx, tp, endpoint)), (k, total)))
    assert diffs == []


def test_the_demo_cohort_reproduces_the_published_safety_counts(demo):
    _, con = demo
    ae = q(con, "SELECT diagnosis, term, n_patients FROM analytics.ae_summary")
    got = {(r.diagnosis, r.term): int(r.n_patients) for r in ae.itertuples()}
    for dx, k in PUBLISHED["safety"]["patients_with_any_ae"].items():
        assert got[(dx, "any")] == k
    for term, by_dx in PUBLISHED["safety"]["by_term"].items():
        for dx, k in by_dx.items():
            assert got.get((dx, term), 0) == k, (term, dx)
    stops = q(con, "SELECT diagnosis, sum(event) AS n FROM analytics.persistence GROUP BY 1")
    assert dict(zip(stops.diagnosis, stops.n.astype(int))) == PUBLISHED["safety"]["discontinued"]


def test_every_core_and_analytics_table_is_described_on_the_table_and_its_columns(demo):
    _, con = demo
    tables = q(con, "SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE schema_name IN ('core', 'analytics')")
    assert len(tables) > 20
    assert tables[tables["comment"].fillna("") == ""].empty, tables[tables["comment"].fillna("") == ""]
    cols = q(con, "SELECT schema_name, table_name, column_name FROM duckdb_columns() WHERE schema_name IN ('core', 'analytics') AND coalesce(comment, '') = ''")
    assert cols.empty, cols.head(20)


def test_the_demo_runs_the_reconciliation_cycle_and_applies_the_adjudications(demo):
    data, con = demo
    disc = q(con, "SELECT center, status, count(*) AS n FROM analytics.discrepancies GROUP BY ALL")
    assert set(disc.center) == {"zcmu1", "zju2", "hzfph"}
    assert disc[disc.status == "open"]["n"].sum() == 0
    adj = q(con, "SELECT count(*) AS n FROM staging.adjudications")
    assert adj["n"][0] == disc["n"].sum()
    for c in ("zcmu1", "zju2", "hzfph"):
        assert any(p.name.startswith("worklist_") and p.suffix == ".xlsx" for p in (data / "outbox" / c).iterdir())
        assert (data / "outbox" / c / f"reabstraction_sample_{c}.xlsx").exists()


def test_per_field_disagreements_equal_the_injected_discrepancies_of_the_sampled_patients(demo):
    from ibd_pipeline.config import load_crf
    from ibd_pipeline.pseudonym import patient_id
    from ibd_pipeline.reconcile import compared_fields

    data, con = demo
    key = (data / "secrets" / "pseudonym.key").read_bytes().strip()
    crf = load_crf()
    sampled = set(q(con, "SELECT patient_id FROM analytics.reabstraction_sample")["patient_id"])
    truth = json.loads((data / "ground_truth" / "truth.json").read_text())["discrepancies"]
    expected: dict = {}
    for d in truth:
        if patient_id(key, d["center"], d["mrn"]) not in sampled:
            continue
        # a record present in one round only disagrees on every compared field
        fields = list(compared_fields(crf, d["table"])) if d["field"] == "*" else [d["field"]]
        for f in fields:
            k = (d["center"], d["table"], f)
            expected[k] = expected.get(k, 0) + 1
    assert sum(expected.values()) > 0
    agreement = q(con, "SELECT center, table_name, field, n_compared - n_agree AS n_disagree FROM analytics.agreement "
                       "WHERE field <> '*' AND table_name <> '*'")
    reported = {(r.center, r.table_name, r.field): int(r.n_disagree) for r in agreement.itertuples() if r.n_disagree}
    assert reported == expected


def test_the_demo_cohort_reproduces_the_published_baseline_counts(demo):
    _, con = demo
    cov = q(con, "SELECT * FROM analytics.baseline_covariates")
    base = PUBLISHED["baseline"]

    def count(col, dx=None, value=True):
        d = cov if dx is None else cov[cov["diagnosis"] == dx]
        return int((d[col] == value).sum())

    diffs = []

    def check(name, got, want):
        if got != want:
            diffs.append((name, got, want))

    for dx, k in base["male"].items():
        check(("male", dx), count("male", dx), k)
    for level, k in base["montreal_age"].items():
        check(("montreal_age", level), count("montreal_age", "CD", level), k)
    for col in ("cd_location", "cd_behavior"):
        for level, k in base[col].items():
            check((col, level), count(col, "CD", level), k)
    check("cd_perianal", count("perianal", "CD"), base["cd_perianal"])
    for level, k in base["uc_extent"].items():
        check(("uc_extent", level), count("uc_extent", "UC", level), k)
    simple = {"eim_any": "eim_any", "eim_eye": "eim_eye", "eim_skin": "eim_skin", "eim_joint": "eim_joint",
              "eim_other": "eim_other", "ibd_surgery_history": "surgery_history", "steroid_at_baseline": "steroid_at_baseline"}
    simple.update({k: k for k in base if k.startswith("prior_")})
    for name, col in simple.items():
        for dx, k in base[name].items():
            check((name, dx), count(col, dx), k)
    for drug, by_dx in base["concomitant_with_upa"].items():
        for dx, k in by_dx.items():
            check(("concomitant", drug, dx), count(f"concomitant_{drug}", dx), k)
    assert diffs == []


def test_every_endpoint_row_is_traceable_to_its_inputs(demo):
    _, con = demo
    e = q(con, "SELECT * FROM analytics.endpoints")
    assert len(e) > 80 * 7 * 3
    assert e["value"].notna().all() and (e["value"].astype(str).str.len() > 0).all()
    assert e["reason"].notna().all() and (e["reason"].astype(str).str.len() > 0).all()
    assert set(e["status"]) <= {"achieved", "not_achieved", "not_evaluable"}


def test_statistics_tables_exist_for_uc_cd_and_overall(demo):
    _, con = demo
    for table in ("endpoint_rates", "biomarker_summary", "ae_summary", "center_heterogeneity"):
        got = set(q(con, f"SELECT DISTINCT diagnosis FROM analytics.{table}")["diagnosis"])
        assert {"UC", "CD", "overall"} <= got or table == "center_heterogeneity" and {"UC", "CD"} <= got, (table, got)
    t1 = q(con, "SELECT * FROM analytics.table1")
    assert {"overall", "UC", "CD", "p_value", "test"} <= set(t1.columns)
    tests = set(t1["test"].dropna())
    assert {"Wilcoxon rank-sum", "Pearson chi-square", "Fisher's exact"} <= tests
    assert tests <= {"Wilcoxon rank-sum", "Welch's t", "Pearson chi-square", "Fisher's exact",
                     "Fisher's exact (Freeman-Halton, exact enumeration)", "not tested"}
    km = q(con, "SELECT DISTINCT group_var FROM analytics.km_estimates")
    assert {"overall", "diagnosis", "albumin_le_35", "bmi_le_18_5"} <= set(km["group_var"])
    for table in ("cox_model", "logistic_model", "model_auc", "roc_curve", "cochran_q", "biomarker_tests",
                  "endpoint_comparisons", "logrank_tests", "discontinuation_rates", "safety_serious", "quality_results"):
        assert q(con, f"SELECT count(*) AS n FROM analytics.{table}")["n"][0] > 0, table


def test_the_report_is_written_with_every_section_and_nonempty_figures(demo):
    import base64
    import re

    from ibd_pipeline.report.sections import OPTIONAL_SECTIONS, SECTION_IDS

    data, _ = demo
    html = (data / "reports" / "study_report.html").read_text(encoding="utf-8")
    for sid in SECTION_IDS:
        if sid == "pk":  # the multicenter study has no PK substudy: no pk_concentrations table, no section
            assert OPTIONAL_SECTIONS[sid] == "pk_concentrations" and f'id="{sid}"' not in html
            continue
        assert f'id="{sid}"' in html, sid
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) >= 15
    for b64 in images:
        png = base64.b64decode(b64)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert 'class="na"' not in html  # no section or figure fell back to "Not available"
    assert (data / "reports" / "data_docs" / "index.html").exists()
