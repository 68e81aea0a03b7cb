"""The storage layer: every DuckDB connection, DDL statement, write and transaction of
the pipeline (issue 16). The modules above it (loading, files, defs/) hand it frames and
get frames back; none of them holds SQL text.

- ``warehouse``: connections, schemas and table layouts from the CRF, typed inserts,
  whole-table replacement, transactions, content fingerprints and ``meta.asset_inputs``
- ``staging``: what loading a center writes (staging rows through the record state,
  quarantine, delivery records, notes, withdrawals), in one transaction
- ``reconciled``: what the reconciliation writes (sample, agreement, discrepancies,
  reconciled tables and the adjudication rejections it owns)
- ``reads``: the reads the orchestration needs (round frames, center rows, delivery
  records, catalog and column metadata)
- ``snapshot``: the analysts' snapshot (publish, PHI redaction, read-only connection)
"""
