"""Pseudonymization of the medical record number (STUDY.md, Privacy).

``mrn`` becomes ``patient_id``: a keyed hash (HMAC-SHA-256) of the center and the mrn,
so ids are unique across centers and cannot be reversed without the key, which lives
outside the repository and the warehouse (``IBD_PSEUDONYM_KEY_FILE``).
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd


def patient_id(key: bytes, center: str, mrn: str) -> str:
    """The pseudonymous id of one center's mrn (``P`` + 20 hex digits)."""
    msg = f"{center}\x1f{str(mrn).strip()}".encode("utf-8")
    return "P" + hmac.new(key, msg, hashlib.sha256).hexdigest()[:20]


def patient_ids(key: bytes, center: str, mrns: pd.Series) -> pd.Series:
    """Vectorised over a Series of mrns (missing stays missing)."""
    cache: dict[str, str] = {}

    def one(m):
        if m is None or (isinstance(m, float) and pd.isna(m)) or str(m).strip() == "":
            return None
        s = str(m).strip()
        if s not in cache:
            cache[s] = patient_id(key, center, s)
        return cache[s]

    return mrns.map(one).astype(object)
