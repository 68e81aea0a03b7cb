"""Synthetic deliveries of the three study centers, in their real export formats, with a
ground truth calibrated to the published multicenter figures.

Public API::

    generate_deliveries(out, n_patients=122, seed=20250401, discrepancy_share=0.015,
                        delivery_date="20250401", truth_dir=None, centers=None) -> Path
    fill_worklist(worklist, center, truth_dir, out, reviewer_id="REV01", decided_on=None) -> Path
    load_truth(truth_dir) -> dict

Modules: ``design`` (the calibrated 122-patient block), ``cohort`` (canonical tables),
``units`` (delivered units, exact canonical values), ``roundb`` (second abstraction and
its discrepancies), ``invalid`` (rows the pipeline must quarantine), ``writers`` (CSV /
xlsx per center profile), ``truth`` (ground truth files), ``worklist`` (the reviewer).
"""

from .generate import generate_deliveries
from .truth import load_truth
from .worklist import fill_worklist

__all__ = ["generate_deliveries", "fill_worklist", "load_truth"]
