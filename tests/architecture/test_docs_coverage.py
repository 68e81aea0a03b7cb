"""The table documentation itself (dbt_like_sql/<schema>/<name>.yml), without building anything:
every file parses, every table and every listed column is described, every column test is one
the runner knows (ibd_pipeline.sqlmodels.run_test) with well-formed arguments, and the documented
tables cover every table the pipeline writes (the contract below)."""

from pathlib import Path

import pytest
import yaml

from ibd_pipeline import sqlmodels as sm

MODELS_DIR = Path(sm.MODELS_DIR)
YML_FILES = sorted(MODELS_DIR.glob("*/*.yml"))
TEST_KINDS = {"not_null", "unique", "accepted_values", "relationships"}

# The contract: every table the pipeline writes into these schemas must be documented.
ANALYTICS_TABLES = {
    # ingest
    "deliveries", "quarantine",
    # reconcile
    "reabstraction_sample", "agreement", "discrepancies",
    # cohort
    "dtt_criteria", "eligibility", "patient_flow",
    # endpoints
    "endpoints", "biomarkers", "adverse_events", "exposure", "persistence", "baseline_covariates",
    "endpoint_rates", "endpoint_rates_by_center", "ae_summary",
    # statistics
    "table1", "endpoint_comparisons", "cochran_q", "biomarker_summary", "biomarker_tests",
    "predictor_selection", "logistic_model", "roc_curve", "model_auc",
    "km_estimates", "logrank_tests", "cox_model", "discontinuation_rates",
    "center_heterogeneity", "safety_serious", "safety_discontinuation",
    # quality
    "quality_results",
}
CRF_DATA_TABLES = {"patients", "medications", "surgeries", "assessments", "labs", "adverse_events", "dose_episodes", "pk_samples"}
STAGING_TABLES = CRF_DATA_TABLES | {"adjudications"}
RECONCILED_TABLES = set(CRF_DATA_TABLES)
REF_TABLES = {"drugs", "procedures", "lab_tests", "settings", "centers"}


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load(path: Path) -> dict:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)


def _documented(schema: str) -> set[str]:
    return {p.stem for p in YML_FILES if p.parent.name == schema}


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def test_there_are_model_files():
    assert YML_FILES, f"no YAML files under {MODELS_DIR}"


@pytest.mark.parametrize("path", YML_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_yaml_parses_and_every_table_and_column_is_described(path):
    doc = _load(path)
    assert isinstance(doc, dict), f"{path}: not a mapping"
    assert set(doc) <= {"description", "columns"}, f"{path}: unknown top-level keys {set(doc) - {'description', 'columns'}}"
    assert _text(doc.get("description")), f"{path}: the table has no description"
    cols = doc.get("columns")
    assert isinstance(cols, dict) and cols, f"{path}: no columns listed"
    for col, spec in cols.items():
        assert isinstance(col, str) and col, f"{path}: column name {col!r}"
        desc = spec if isinstance(spec, str) else (spec or {}).get("description")
        assert _text(desc), f"{path}: column {col!r} has no description"
        if isinstance(spec, dict):
            assert set(spec) <= {"description", "tests"}, f"{path}: {col}: unknown keys {set(spec) - {'description', 'tests'}}"


@pytest.mark.parametrize("path", YML_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_column_tests_are_known_kinds_with_well_formed_arguments(path):
    documented = {f"{p.parent.name}.{p.stem}" for p in YML_FILES}
    for col, spec in (_load(path).get("columns") or {}).items():
        if not isinstance(spec, dict) or spec.get("tests") is None:
            continue
        tests = spec["tests"]
        assert isinstance(tests, list), f"{path}: {col}: tests must be a list"
        kinds = []
        for t in tests:
            if isinstance(t, str):
                kind, arg = t, None
            else:
                assert isinstance(t, dict) and len(t) == 1, f"{path}: {col}: a test is a name or a one-key mapping, got {t!r}"
                (kind, arg), = t.items()
            assert kind in TEST_KINDS, f"{path}: {col}: unknown test {kind!r} (known: {sorted(TEST_KINDS)})"
            kinds.append(kind)
            if kind in ("not_null", "unique"):
                assert arg is None, f"{path}: {col}: {kind} takes no argument"
            elif kind == "accepted_values":
                values = arg.get("values", []) if isinstance(arg, dict) else arg
                from_settings = arg.get("from_settings", []) if isinstance(arg, dict) else []
                assert isinstance(values, list) and isinstance(from_settings, list) and (values or from_settings), \
                    f"{path}: {col}: accepted_values needs a non-empty list (values and/or from_settings)"
                assert not isinstance(arg, dict) or set(arg) <= {"values", "from_settings"}, f"{path}: {col}: unknown key"
                assert all(isinstance(v, (str, int, float, bool)) for v in values), f"{path}: {col}: accepted values must be scalars"
                assert len({str(v) for v in values}) == len(values), f"{path}: {col}: repeated accepted value"
            elif kind == "relationships":
                assert isinstance(arg, dict) and set(arg) <= {"to", "field"} and "to" in arg, \
                    f"{path}: {col}: relationships needs {{to: schema.table, field: column}}"
                to = arg["to"]
                assert isinstance(to, str) and to.count(".") == 1, f"{path}: {col}: relationships.to must be schema.table"
                assert to in documented, f"{path}: {col}: relationships to undocumented table {to}"
                target = yaml.safe_load((MODELS_DIR / to.replace(".", "/", 1)).with_suffix(".yml").read_text(encoding="utf-8"))
                assert arg.get("field", col) in (target.get("columns") or {}), \
                    f"{path}: {col}: {to} documents no column {arg.get('field', col)!r}"
        assert len(kinds) == len(set(kinds)), f"{path}: {col}: a test kind is listed twice (asset-check names would clash)"


def test_the_runner_loads_every_model_and_orders_them_without_cycles():
    sm.clear_model_cache()
    try:
        models = sm.load_models(str(MODELS_DIR))
        assert {f"{m.schema}.{m.name}" for m in models} == {f"{p.parent.name}.{p.stem}" for p in YML_FILES}
        assert all(t.kind in TEST_KINDS for m in models for t in m.tests)
        sm.build_order(models)
    finally:
        sm.clear_model_cache()


@pytest.mark.parametrize(
    "schema, contract",
    [("analytics", ANALYTICS_TABLES), ("staging", STAGING_TABLES), ("reconciled", RECONCILED_TABLES), ("ref", REF_TABLES)],
)
def test_documented_tables_cover_every_table_the_pipeline_writes(schema, contract):
    missing = contract - _documented(schema)
    assert not missing, f"tables of {schema} without dbt_like_sql/{schema}/<table>.yml: {sorted(missing)}"


def test_python_built_schemas_hold_documentation_only():
    """staging, reconciled and ref are built by Python: a .sql there would turn a documented
    table into a SQL model with a second builder."""
    for schema in ("staging", "reconciled", "ref"):
        assert not list((MODELS_DIR / schema).glob("*.sql")), f"dbt_like_sql/{schema} holds SQL files"
