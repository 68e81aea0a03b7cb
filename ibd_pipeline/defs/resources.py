"""Resources, defined once: the study's files (data directory, settings, CRF, profiles,
pseudonym key) and the DuckDB warehouse."""


from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from .. import config
from ..store import warehouse as wh


# the CRF the asset graph is built from (its tables name the staging and reconciled
# assets at definition time); the assets read it through ``StudyResource.crf``
CRF = config.load_crf()


class WarehouseResource(DuckDBResource):
    """The working DuckDB warehouse. DuckDB allows one writing process: runs are queued
    one at a time, and a connection waits for the lock (instead of failing after a few
    seconds) should two runs ever overlap - e.g. when a slow run is wrongly declared
    dead and the queue starts the next one."""

    lock_wait_seconds: float = 900.0

    @contextmanager
    def get_connection(self):
        with wh.connect(self.database, wait_seconds=self.lock_wait_seconds) as con:
            yield con


class StudyResource(dg.ConfigurableResource):
    """Where the study's data live and which settings it runs with."""

    data_dir: str
    settings_file: str = ""
    key_file: str = ""
    _thread_limits: object = PrivateAttr(default=None)

    def setup_for_execution(self, context) -> None:
        """BLAS and OpenMP thread pools at one thread for the run (restored after it):
        the assets' matrices are small (patients x a few covariates), and on a shared
        two-core machine OpenBLAS worker threads spinning around every small product
        made the model fits several times slower (an L-BFGS logistic fit under load: 23
        ms with two threads, 3 ms with one). DuckDB's own threads are not affected."""
        from threadpoolctl import threadpool_limits

        self._thread_limits = threadpool_limits(limits=1)

    def teardown_after_execution(self, context) -> None:
        if self._thread_limits is not None:
            self._thread_limits.restore_original_limits()
            self._thread_limits = None

    def paths(self) -> config.DataPaths:
        return config.data_paths(self.data_dir)

    def settings(self) -> dict:
        return config.load_settings(self.settings_file or None)

    def crf(self) -> config.Crf:
        return CRF

    def centers(self) -> dict[str, config.CenterProfile]:
        return config.load_centers()

    def profile(self, center: str) -> config.CenterProfile:
        return self.centers()[center]

    def key(self) -> bytes:
        if self.key_file:
            p = Path(self.key_file)
            key = p.read_bytes().strip()
            if len(key) < 16:
                raise config.MissingKeyError(f"pseudonymization key in {p} is shorter than 16 bytes")
            return key
        return config.read_pseudonym_key(self.paths())


def build_resources(data_dir: str | Path, settings_file: str | Path | None = None, key_file: str | Path | None = None) -> dict:
    paths = config.data_paths(data_dir)
    return {
        "study": StudyResource(data_dir=str(paths.root), settings_file=str(settings_file or ""), key_file=str(key_file or "")),
        "warehouse": WarehouseResource(database=str(paths.warehouse)),
    }
