"""Pure extraction and validation of center deliveries (STUDY.md Workflow steps 1-2).

No Dagster, no DuckDB: read a delivered file through its center's profile, map headers
and codes, convert units, parse dates, drop ``phi: drop`` fields, pseudonymize ``mrn``,
validate against pandera schemas generated from the CRF, quarantine every failure with
its rule, and write the coordinator's delivery report.
"""

from .crosstable import HBI_FIELDS, MAYO_FIELDS, SCORE_FIELDS_DEFAULT, cross_table_checks
from .errors import UnreadableFileError
from .extract import ExtractChunk, TableExtract, extract_file, iter_extract, read_fields, source_file_of
from .frames import empty_canonical
from .names import DeliveryName, delivery_name_check, parse_delivery_name
from .readers import DEFAULT_CHUNK_ROWS
from .report import report_name, write_delivery_report
from .rules import QUARANTINE_COLUMNS, RULES, empty_quarantine
from .schemas import canonical_columns, crf_schema, key_columns

__all__ = [
    "UnreadableFileError",
    "DeliveryName",
    "parse_delivery_name",
    "delivery_name_check",
    "TableExtract",
    "ExtractChunk",
    "extract_file",
    "iter_extract",
    "read_fields",
    "empty_canonical",
    "source_file_of",
    "cross_table_checks",
    "write_delivery_report",
    "report_name",
    "crf_schema",
    "canonical_columns",
    "key_columns",
    "QUARANTINE_COLUMNS",
    "RULES",
    "empty_quarantine",
    "HBI_FIELDS",
    "MAYO_FIELDS",
    "SCORE_FIELDS_DEFAULT",
    "DEFAULT_CHUNK_ROWS",
]
