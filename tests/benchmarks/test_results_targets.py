"""benchmarks/RESULTS.md judges every figure against issue 14's targets as the issue states them."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
run_all = pytest.importorskip("run_all")


def _size(n, ratio, wall, pss, ms):
    return {"patients": n, "pipeline": {"seconds": wall, "peak_pss_gib": pss},
            "summary": {"ingestion_and_sql_over_floor": ratio, "ingestion_and_sql_s": ratio * 40, "floor_s": 40.0,
                        "ms_per_patient": ms}}


class _verdicts(dict):
    """target name (up to its limit) -> met / missed"""

    def __init__(self, res):
        super().__init__((name.split(" <")[0], verdict) for name, _, verdict in run_all.target_rows(res))


def test_floor_ratio_above_two_is_missed_and_the_whole_pipeline_is_judged_against_five_minutes():
    res = {"scale": {"sizes": [_size(1000, 9.0, 50, 0.6, 50.0), _size(100000, 2.5, 290, 3.5, 2.9)]}}
    v = _verdicts(res)
    assert v["100,000 patients: ingestion + SQL models"] == "**missed**"  # 2.5x: the issue asks for 2x
    assert v["100,000 patients: whole pipeline"] == "met"
    assert v["100,000 patients: peak memory of the process tree"] == "met"
    assert v["time per patient flat from the smallest to the largest size"] == "met"
    res["scale"]["sizes"][1]["pipeline"]["seconds"] = 301
    assert _verdicts(res)["100,000 patients: whole pipeline"] == "**missed**"


def test_the_correction_is_judged_by_its_time_to_the_snapshot_and_unmeasured_targets_say_so():
    res = {"study": {"cold_median_s": 14.0, "update_to_snapshot_median_s": 6.0, "update_median_s": 20.0,
                     "idle_median_s": 1.0, "help_median_s": 1.0}}
    rows = {name: (measured, verdict) for name, measured, verdict in run_all.target_rows(res)}
    verdicts = [v for _, v in rows.values()]
    assert rows["cold study run, 122 patients, <= 15 s (median)"] == ("14.0 s", "met")
    assert rows["one-center correction: drop -> analysts' snapshot, <= 5 s (median)"] == ("6.00 s", "**missed**")
    assert rows["`ibd-pipeline --help` < 1 s (median)"] == ("1.00 s", "**missed**")  # strictly below one second
    assert verdicts.count("met") == 2  # cold and idle
    assert rows["one-center correction: the whole update run, statistics and report included (median)"] == (
        "20.0 s", "no target")
    assert rows["run with nothing new, <= 3 s (median)"] == ("1.00 s", "met")
    res["study"]["idle_median_s"] = None
    assert dict((n, m) for n, m, _ in run_all.target_rows(res))["run with nothing new, <= 3 s (median)"] == "not measured"
