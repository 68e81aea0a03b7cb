"""Double-abstraction reconciliation (STUDY.md Workflow step 3), pure functions over
canonical pandas frames (no dagster, no DuckDB).

Flow for one center (the Dagster layer wires it; the caller passes the CRF and the
settings' ``reconciliation`` section)::

    sample = draw_sample(round_a["patients"], previous_sample, fraction, seed, min_per_stratum)
    comparison = compare_rounds(round_a, round_b, sample, crf)
    agreement = agreement_table(comparison, crf)
    passed, message = agreement_gate(agreement, center, threshold_pct)
    disc = discrepancies(comparison, previous_discrepancies, adjudications, crf=crf, profiles=profiles)  # ADJ staging frame
    write_worklist(disc, center, profile, mrn_of, outbox, yyyymmdd, crf=crf)       # open rows, center's terms (.xlsx)
    reconciled, rejected, resolved = apply_adjudications(round_a, adjudications, disc, crf, round_b=round_b, profiles=profiles)

Conventions: ``record_key`` = the CRF key fields other than mrn, canonical text (dates
ISO, codes canonical), joined by '|' (``patients``: ``patient``); a record present in
one round only is one discrepancy with field ``*`` and value_a/value_b
``present``/``absent``.
"""

from ibd_pipeline.reconcile.adjudicate import RESOLVED_COLUMNS, apply_adjudications
from ibd_pipeline.reconcile.agreement import (
    AGREEMENT_COLUMNS,
    agreement_gate,
    agreement_table,
    cohen_kappa,
    icc_2_1,
    lowest_fields,
)
from ibd_pipeline.reconcile.compare import CELL_COLUMNS, Comparison, compare_rounds
from ibd_pipeline.reconcile.decisions import ADJUDICATION_RULES, QUARANTINE_COLUMNS
from ibd_pipeline.reconcile.discrepancies import DISCREPANCY_COLUMNS, discrepancies, unresolved_summary
from ibd_pipeline.reconcile.sample import draw_sample, reviewer_list
from ibd_pipeline.reconcile.values import PATIENT_RECORD_KEY, WHOLE_RECORD, compared_fields, record_keys
from ibd_pipeline.reconcile.center_terms import CenterTerms
from ibd_pipeline.reconcile.worklist import (
    read_returned_worklist,
    read_worklist_cells,
    remove_worklists,
    worklist_cells,
    worklist_frame,
    write_worklist,
    write_worklist_book,
)
from ibd_pipeline.spreadsheet import neutralise

__all__ = [
    "ADJUDICATION_RULES", "AGREEMENT_COLUMNS", "CELL_COLUMNS", "DISCREPANCY_COLUMNS", "PATIENT_RECORD_KEY",
    "QUARANTINE_COLUMNS", "RESOLVED_COLUMNS", "WHOLE_RECORD", "CenterTerms", "Comparison", "agreement_gate", "agreement_table",
    "apply_adjudications", "cohen_kappa", "compare_rounds", "compared_fields", "discrepancies", "draw_sample",
    "icc_2_1", "lowest_fields", "neutralise", "record_keys", "reviewer_list", "unresolved_summary",
    "read_returned_worklist", "read_worklist_cells", "remove_worklists", "worklist_cells", "worklist_frame",
    "write_worklist", "write_worklist_book",
]
