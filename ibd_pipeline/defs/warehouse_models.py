"""The pooled warehouse: reference tables and the SQL models of dbt_like_sql/
(docs/STUDY_RULES.md#harmonization). Each SQL model is an asset whose upstream
assets are read from its SQL; its YAML column tests are one asset check per model."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from .. import sqlmodels as sm
from ..store import warehouse as wh
from .keys import ref_key, table_key
from .resources import StudyResource
from .tables import column_tests_result, column_tests_spec, description, documented_schema, table_metadata

REF_TABLES = ["drugs", "procedures", "lab_tests", "settings", "centers"]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(ref_key(t), description=description(t, "ref"), kinds={"duckdb"}, group_name="warehouse",
                     metadata={"dagster/column_schema": documented_schema(sm.model_by_name(f"ref.{t}"))})
        for t in REF_TABLES
    ],
    name="reference_tables",
)
def reference_tables(study: StudyResource, warehouse: DuckDBResource):
    """Drug classes and mechanism groups, procedures, lab tests and normal ranges, the
    study settings and the centers, as tables the SQL models join."""
    frames = sm.reference_frames(study.crf(), study.settings(), study.centers())
    with warehouse.get_connection() as con:
        wh.ensure_warehouse(con, study.crf())
        for t in REF_TABLES:
            wh.replace_table(con, f"ref.{t}", frames[t])
            sm.document_table(con, "ref", t)
            yield dg.MaterializeResult(asset_key=ref_key(t), metadata=table_metadata(con, "ref", t, rows=len(frames[t])))


def model_metadata(con, model: sm.Model) -> dict:
    return {
        **table_metadata(con, model.schema, model.name),
        "undocumented_columns": dg.MetadataValue.json(sm.undocumented_columns(con, model)),
    }


def sql_model_asset(model: sm.Model) -> dg.AssetsDefinition:
    key = table_key(model.schema, model.name)

    @dg.asset(
        key=key,
        deps=[table_key(*u) for u in model.upstream],
        description=model.description.strip(),
        kinds={"duckdb", "sql"},
        group_name=model.schema,
        check_specs=column_tests_spec(model),
        metadata={"sql": dg.MetadataValue.md(f"```sql\n{model.sql.strip()}\n```"), "dagster/column_schema": documented_schema(model)},
    )
    def _build(warehouse: DuckDBResource):
        with warehouse.get_connection() as con:
            sm.build_model(con, model)
            meta = model_metadata(con, model)
            checks = column_tests_result(con, model)
        yield dg.MaterializeResult(metadata=meta)
        yield from checks

    return _build


SQL_MODELS = [m for m in sm.build_order(sm.load_models()) if m.sql]
sql_model_assets = [sql_model_asset(m) for m in SQL_MODELS]
