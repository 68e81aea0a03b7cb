"""The report tests' fixture warehouse tables (tests/report/report_fixtures.py), computed
once per session; read-only (``write_warehouse`` copies them into a DuckDB file)."""

import pytest

from tests.report import report_fixtures as RF


@pytest.fixture(scope="session")
def report_tables():
    return RF.build_tables()
