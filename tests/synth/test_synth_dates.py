"""Synthetic deliveries carry no date after their file's delivery date (CRF
``plausibility.dates_not_after_delivery`` with ``delivery_grace_days: 0``): round B's
date discrepancies and added records are moved back, never past the delivery date."""

from __future__ import annotations

import collections

import pytest

from tests.ingest.test_ingest_support import extract
from ibd_pipeline.config import load_crf
from ibd_pipeline.synth import generate_deliveries


def test_the_crf_allows_no_grace_after_the_delivery_date():
    assert load_crf().raw["plausibility"]["delivery_grace_days"] == 0


@pytest.mark.parametrize("delivery_date", ["20250401", "20250331"])  # the default, and the study's last day itself
def test_no_synthetic_row_is_quarantined_for_a_date_after_its_delivery(tmp_path, delivery_date):
    inbox = tmp_path / "inbox"
    generate_deliveries(inbox, n_patients=122, delivery_date=delivery_date, truth_dir=tmp_path / "truth")
    rules = collections.Counter()
    files = 0
    for center_dir in sorted(p for p in inbox.iterdir() if p.is_dir()):
        for f in sorted(center_dir.iterdir()):
            files += 1
            for x in extract(f, center_dir.name):
                rules.update((f.name[:1], r) for r in x.quarantine["rule"])
    assert files >= 12
    assert {k: n for k, n in rules.items() if k[1] in ("date_after_delivery", "exposure_after_followup")} == {}
    assert sum(n for (rnd, _), n in rules.items() if rnd == "B") == 0  # round B holds valid values only
