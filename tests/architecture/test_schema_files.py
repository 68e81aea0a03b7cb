"""The pandera schemas kept under schemas/pandera/ are the ones the pipeline validates with."""

from pathlib import Path

import pandera.pandas as pa
import pytest

from ibd_pipeline.config import PROJECT_ROOT, load_crf
from ibd_pipeline.ingest.schemas import crf_schema, schema_yaml

TABLES = list(load_crf().tables)


@pytest.mark.parametrize("table", TABLES)
def test_schema_file_is_up_to_date_with_the_crf(table):
    path = PROJECT_ROOT / "schemas" / "pandera" / f"{table}.yaml"
    assert path.read_text(encoding="utf-8") == schema_yaml(table, load_crf()), f"regenerate {path}"


@pytest.mark.parametrize("table", TABLES)
def test_schema_file_loads_as_a_pandera_schema_with_every_kept_crf_field(table):
    schema = pa.DataFrameSchema.from_yaml(Path(PROJECT_ROOT / "schemas" / "pandera" / f"{table}.yaml"))
    assert set(schema.columns) == set(crf_schema(table, load_crf()).columns)
    spec = load_crf().table(table)
    required = {f for f, s in spec.fields.items() if s.required and s.phi is None}
    assert {c for c, col in schema.columns.items() if not col.nullable} >= {("table_name" if f == "table" else f) for f in required}


def test_the_fast_yaml_parser_reads_every_project_file_as_safe_load_does():
    """config.read_yaml (libyaml's C parser) gives yaml.safe_load's values for every YAML
    file of the project: settings, CRF, centers, vocabularies, SQL model docs, checks."""
    from pathlib import Path

    import yaml

    from ibd_pipeline.config import PROJECT_ROOT, read_yaml

    files = [p for p in PROJECT_ROOT.rglob("*.y*ml") if p.suffix in (".yaml", ".yml")
             and not any(part in (".venv", "data", ".git") for part in p.relative_to(PROJECT_ROOT).parts)]
    assert len(files) > 80
    for p in files:
        assert read_yaml(p) == yaml.safe_load(Path(p).read_text(encoding="utf-8")), p
