"""The quality suite alone at scale: a clean synthetic cohort of N patients with ~100 lab
rows each (``tests/quality/test_quality_scale.synthetic_core``), validated by the GX suite.

    python benchmarks/quality_suite.py --patients 10000 [--docs]

Prints the time per validated frame, the total (GX import included), CPU time and the
peak memory of the process (ru_maxrss); exits 1 if a check of the clean cohort fails.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ibd_pipeline.config import load_crf, load_settings  # noqa: E402
from ibd_pipeline.quality import run_quality_suite_detailed  # noqa: E402
from tests.quality.test_quality_scale import synthetic_core  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=10000)
    ap.add_argument("--docs", action="store_true", help="also build the GX Data Docs (in a temporary directory)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    tables = synthetic_core(a.patients)
    t_gen = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as td:
        cpu0 = time.process_time()
        run = run_quality_suite_detailed(tables, load_settings(), load_crf(), docs_dir=Path(td) / "docs" if a.docs else None)
        cpu = time.process_time() - cpu0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"patients {a.patients}, lab rows {len(tables['core.labs'])}, assessments {len(tables['core.assessments'])}")
    print(f"generate {t_gen:.1f} s; suite {run.seconds:.1f} s wall, {cpu:.1f} s CPU (GX import included); "
          f"peak RSS before the suite {rss0:.0f} MB, after {rss1:.0f} MB")
    for f, sec in sorted(run.frame_seconds.items(), key=lambda x: -x[1]):
        print(f"  {f:40s} {sec:7.2f} s")
    bad = run.results[~run.results["passed"]]
    if len(bad):
        print(bad[["check_id", "n_failed"]].to_string())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
