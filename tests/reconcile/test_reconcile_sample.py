"""The re-abstraction sample: size per stratum, seeded order, stability."""

import hashlib

import pandas as pd
import pytest

from ibd_pipeline.config import load_settings
from ibd_pipeline.reconcile import draw_sample, reviewer_list

SETTINGS = load_settings()["reconciliation"]
FRACTION, SEED = SETTINGS["sample_fraction"], SETTINGS["sample_seed"]


def patients(spec: dict[tuple[str, str], int], start: int = 0) -> pd.DataFrame:
    """{(center, diagnosis): n} -> a round-A patients frame with ids like zcmu1-CD-007
    (UPA start i days after 2023-01-01, so each record differs in its order fields)."""
    rows = [
        {"center": c, "round": "A", "patient_id": f"{c}-{d}-{i:03d}", "diagnosis": d,
         "upa_start_date": pd.Timestamp("2023-01-01") + pd.Timedelta(days=i),
         "birth_date": pd.Timestamp("1990-05-01"), "sex": "F", "diagnosis_date": pd.Timestamp("2015-03-01"),
         "source_row": i + 2}
        for (c, d), n in spec.items()
        for i in range(start, start + n)
    ]
    return pd.DataFrame(rows)


BASE = {("zcmu1", "CD"): 35, ("zcmu1", "UC"): 12, ("zcmu1", "IBDU"): 2, ("zju2", "CD"): 3}


def sizes(sample: pd.DataFrame) -> dict:
    return sample.groupby(["center", "diagnosis"]).size().to_dict()


def test_size_is_ceil_of_fraction_per_stratum_and_at_least_one():
    s = draw_sample(patients(BASE), None, FRACTION, SEED)
    # 0.2 * 35 = 7; 0.2 * 12 = 2.4 -> 3;
    # 0.2 * 2 = 0.4 -> 1; 0.2 * 3 = 0.6 -> 1
    assert sizes(s) == {("zcmu1", "CD"): 7, ("zcmu1", "UC"): 3, ("zcmu1", "IBDU"): 1, ("zju2", "CD"): 1}
    assert list(s.columns) == ["center", "patient_id", "diagnosis"]
    assert not s.duplicated(["center", "patient_id"]).any()


def test_min_per_stratum_setting():
    s = draw_sample(patients(BASE), None, FRACTION, SEED, min_per_stratum=2)
    assert sizes(s) == {("zcmu1", "CD"): 7, ("zcmu1", "UC"): 3, ("zcmu1", "IBDU"): 2, ("zju2", "CD"): 2}


def test_size_is_not_inflated_by_float_rounding():
    # a study team may set another fraction: 0.14 * 50 is 7.000000000000001 in floating
    # point, and ceil() of that would draw 8 instead of 7
    s = draw_sample(patients({("zcmu1", "CD"): 50}), None, 0.14, SEED)
    assert len(s) == 7


def test_draw_is_the_seeded_hash_of_the_record_not_of_the_patient_id():
    p = patients(BASE)
    s = draw_sample(p, None, FRACTION, SEED)
    uc = p[(p["center"] == "zcmu1") & (p["diagnosis"] == "UC")]

    def rank(r):
        text = "\x1f".join([str(SEED), r.center, r.upa_start_date.date().isoformat(),
                             r.birth_date.date().isoformat(), r.sex, r.diagnosis_date.date().isoformat(), r.diagnosis])
        return hashlib.sha256(text.encode()).hexdigest()

    first3 = sorted(uc.itertuples(), key=rank)[:3]
    assert set(s.loc[s["diagnosis"] == "UC", "patient_id"]) == {r.patient_id for r in first3}
    other_seed = draw_sample(p, None, FRACTION, SEED + 1)
    assert set(other_seed["patient_id"]) != set(s["patient_id"])


def test_another_pseudonymization_key_draws_the_same_records():
    # issue 13: the ids follow each site's secret key; the sample must not
    p = patients(BASE)
    renamed = p.assign(patient_id="K2-" + p["patient_id"].str[::-1])
    back = dict(zip(renamed["patient_id"], p["patient_id"]))
    s1 = draw_sample(p, None, FRACTION, SEED)
    s2 = draw_sample(renamed, None, FRACTION, SEED)
    assert sorted(s2["patient_id"].map(back)) == sorted(s1["patient_id"])


def test_records_equal_on_every_order_field_are_drawn_in_source_row_order():
    p = patients({("zju2", "UC"): 10}).assign(upa_start_date=pd.Timestamp("2023-06-01"))
    s = draw_sample(p, None, FRACTION, SEED)
    assert list(s["patient_id"]) == ["zju2-UC-000", "zju2-UC-001"]
    with pytest.raises(KeyError, match="upa_start_date"):
        draw_sample(p.drop(columns=["upa_start_date"]), None, FRACTION, SEED)


def test_same_input_gives_same_sample_whatever_the_row_order():
    p = patients(BASE)
    s1 = draw_sample(p, None, FRACTION, SEED)
    s2 = draw_sample(p.sample(frac=1, random_state=3), None, FRACTION, SEED)
    pd.testing.assert_frame_equal(s1, s2)
    # round-B rows are not screened patients of the sample frame
    with_b = pd.concat([p, p.assign(round="B", patient_id=p["patient_id"] + "-b")])
    pd.testing.assert_frame_equal(draw_sample(with_b, None, FRACTION, SEED), s1)


def test_adding_patients_keeps_every_previously_drawn_patient():
    p = patients(BASE)
    first = draw_sample(p, None, FRACTION, SEED)
    more = pd.concat([p, patients({("zcmu1", "CD"): 5, ("zcmu1", "UC"): 5}, start=100)], ignore_index=True)
    second = draw_sample(more, first, FRACTION, SEED)
    assert set(first["patient_id"]) <= set(second["patient_id"])
    # CD 40 -> ceil(8.0) = 8; UC 17 -> ceil(3.4) = 4; others unchanged
    assert sizes(second) == {("zcmu1", "CD"): 8, ("zcmu1", "UC"): 4, ("zcmu1", "IBDU"): 1, ("zju2", "CD"): 1}
    # and re-running on the same input with the same previous sample is a no-op
    pd.testing.assert_frame_equal(draw_sample(more, second, FRACTION, SEED), second)


def test_previous_patient_that_no_longer_exists_is_dropped_and_stratum_topped_up():
    p = patients(BASE)
    first = draw_sample(p, None, FRACTION, SEED)
    gone = first.loc[first["diagnosis"] == "UC", "patient_id"].iloc[0]
    second = draw_sample(p[p["patient_id"] != gone], first, FRACTION, SEED)
    assert gone not in set(second["patient_id"])
    assert set(first["patient_id"]) - {gone} <= set(second["patient_id"])
    # UC 11 -> ceil(2.2) = 3: the stratum is topped up to its size again
    assert sizes(second)[("zcmu1", "UC")] == 3


def test_reviewer_list_carries_the_mrn():
    s = draw_sample(patients(BASE), None, FRACTION, SEED)
    mrn_of = {pid: f"MRN{i:05d}" for i, pid in enumerate(patients(BASE)["patient_id"])}
    r = reviewer_list(s, mrn_of)
    assert list(r.columns) == ["center", "mrn", "patient_id", "diagnosis"]
    assert len(r) == len(s)
    assert all(mrn_of[p] == m for p, m in zip(r["patient_id"], r["mrn"]))
    with pytest.raises(KeyError):
        reviewer_list(s, {})


def test_fraction_must_be_a_share():
    with pytest.raises(ValueError):
        draw_sample(patients(BASE), None, 20, SEED)
