"""The quality suite on core tables built by the real SQL models (dbt_like_sql/core) from
the hand-made cohort: DuckDB's dtypes (datetime64[us], int32, ...) conform, and the
computational-conformance recomputations agree with the SQL."""

import duckdb
import pandas as pd

from ibd_pipeline import sqlmodels as sm
from ibd_pipeline.store import reads
from ibd_pipeline.store import warehouse as wh
from ibd_pipeline.config import load_centers, load_crf, load_settings
from ibd_pipeline.quality import run_quality_suite
from tests.quality.test_quality_cohort import cohort, reconciled_rows


def test_core_tables_from_the_sql_models_pass_the_suite():
    crf, settings = load_crf(), load_settings()
    con = duckdb.connect()
    wh.ensure_warehouse(con, crf)
    for name, df in sm.reference_frames(crf, settings, load_centers()).items():
        wh.replace_table(con, f"ref.{name}", df)
    for table, rows in reconciled_rows().items():
        wh.insert_frame(con, f"reconciled.{table}", pd.DataFrame(rows), wh.reconciled_columns(table, crf))
    tables = {}
    for model in sm.build_order(sm.load_models()):
        if model.schema == "core" and model.sql:
            sm.build_model(con, model)
            tables[model.qualified] = reads.read_table(con, model.qualified)
    assert str(tables["core.labs"]["sample_date"].dtype).startswith("datetime64")
    tables["analytics.eligibility"] = cohort()["analytics.eligibility"]
    r = run_quality_suite(tables, settings, crf)
    bad = r[r["severity"] != "ok"]
    assert bad.empty, bad[["check_id", "n_failed", "examples"]].to_string()
    computed = r[r["subcategory"] == "computational"]
    assert len(computed) == 5 and (computed["n_rows"] > 0).all()
