"""Round A vs round B on hand-made canonical frames with known differences; the
discrepancy list; the adjudication of round A."""

import pandas as pd
import pytest

from ibd_pipeline.config import load_centers, load_crf
from ibd_pipeline.reconcile import (
    CELL_COLUMNS,
    DISCREPANCY_COLUMNS,
    QUARANTINE_COLUMNS,
    apply_adjudications,
    compare_rounds,
    discrepancies,
    unresolved_summary,
)

CRF = load_crf()
PROFILES = load_centers()  # their vocabularies: the extra code spellings a decision may use
C = "zcmu1"
_DTYPES = {"date": "datetime64[ns]", "int": "Int64", "float": "float64", "bool": "boolean"}


def frame(table: str, rows: list[dict], rnd: str) -> pd.DataFrame:
    """A canonical staging frame (ARCHITECTURE.md) of one round."""
    spec = CRF.table(table)
    fields = [f for f in spec.kept_fields if f != "mrn"]
    extra = ["qualifier", "value_reported", "unit_reported"] if table == "labs" else []
    cols = ["center", "round", "patient_id"] + fields + extra + ["delivery_id", "source_file", "source_row"]
    recs = [
        {**dict.fromkeys(cols), "center": C, "round": rnd, "delivery_id": "d" + rnd,
         "source_file": f"{rnd}_{table}_20250401.csv", "source_row": i + 2, **r}
        for i, r in enumerate(rows)
    ]
    df = pd.DataFrame(recs, columns=cols)
    for f in fields:
        t = spec.fields[f].type
        df[f] = pd.to_datetime(df[f]) if t == "date" else df[f].astype(_DTYPES.get(t, object))
    return df


def patient(pid, **kw):
    base = dict(patient_id=pid, abstractor_id="inv1", sex="M", birth_date="1990-01-02", diagnosis="CD",
                diagnosis_date="2015-05-06", cd_location="L3", cd_upper_gi=False, smoking="never",
                height_cm=170.0, weight_kg=60.5, eim_joint=False, upa_start_date="2023-03-01",
                last_followup_date="2024-03-01")
    return {**base, **kw}


def rounds():
    a = {
        "patients": frame("patients", [
            patient("P1"),
            patient("P2", diagnosis="UC", cd_location=None, uc_extent="E3", sex="F", eim_joint=True),
            patient("P3"),
            patient("P4"),
        ], "A"),
        "medications": frame("medications", [
            dict(patient_id="P1", abstractor_id="inv1", drug="infliximab", start_date="2020-01-01",
                 stop_date="2021-01-01", stop_reason="secondary_loss_of_response"),
            dict(patient_id="P1", abstractor_id="inv1", drug="vedolizumab", start_date="2021-02-01"),
        ], "A"),
        "assessments": frame("assessments", [
            dict(patient_id="P1", abstractor_id="inv1", visit_date="2023-03-01", hbi_wellbeing=1, hbi_pain=2),
        ], "A"),
        "labs": frame("labs", [
            dict(patient_id="P2", abstractor_id="inv1", sample_date="2023-03-01", test="TC", value=5.172,
                 unit="mmol/L", value_reported="5.172", unit_reported="mmol/L"),
            dict(patient_id="P2", abstractor_id="inv1", sample_date="2023-03-01", test="FC", value=100.0,
                 unit="ug/g ", value_reported="100", unit_reported="ug/g "),
            dict(patient_id="P2", abstractor_id="inv1", sample_date="2023-03-01", test="ALB", value=35.0,
                 unit="g/L", value_reported="35", unit_reported="g/L"),
        ], "A"),
    }
    b = {
        "patients": frame("patients", [
            patient("P1", abstractor_id="inv2", birth_date="1990-01-03"),  # date differs
            patient("P2", abstractor_id="inv2", diagnosis="UC", cd_location=None, uc_extent=" E3 ", sex="F",
                    smoking="former", eim_joint=False),  # code and bool differ; trimmed code equal
            patient("P4", sex="F"),  # not sampled: ignored
        ], "B"),
        "medications": frame("medications", [
            dict(patient_id="P1", abstractor_id="inv2", drug="infliximab", start_date="2020-01-01",
                 stop_date="2021-01-01", stop_reason="secondary_loss_of_response"),
            dict(patient_id="P1", abstractor_id="inv2", drug="ustekinumab", start_date="2022-01-01"),
        ], "B"),
        "assessments": frame("assessments", [
            dict(patient_id="P1", abstractor_id="inv2", visit_date="2023-03-01", hbi_wellbeing=1, hbi_pain=3),
        ], "B"),
        "labs": frame("labs", [
            # delivered as 200 mg/dL: canonical 200 * 0.02586 mmol/L (5.172000000000001 in floating
            # point) equals A's 5.172 mmol/L
            dict(patient_id="P2", abstractor_id="inv2", sample_date="2023-03-01", test="TC", value=200 * 0.02586,
                 unit="mmol/L", value_reported="200", unit_reported="mg/dL"),
            dict(patient_id="P2", abstractor_id="inv2", sample_date="2023-03-01", test="FC", value=100.0,
                 unit="ug/g", value_reported="100", unit_reported="ug/g"),
            dict(patient_id="P2", abstractor_id="inv2", sample_date="2023-03-01", test="ALB", value=36.0,
                 unit="g/L", value_reported="36", unit_reported="g/L"),
        ], "B"),
    }
    return a, b


SAMPLE = pd.DataFrame({"center": [C] * 3, "patient_id": ["P1", "P2", "P3"], "diagnosis": ["CD", "UC", "CD"]})
EXPECTED_DISAGREEMENTS = {
    ("P1", "patients", "patient", "birth_date"),
    ("P2", "patients", "patient", "smoking"),
    ("P2", "patients", "patient", "eim_joint"),
    ("P1", "medications", "vedolizumab|2021-02-01", "stop_date"),
    ("P1", "medications", "vedolizumab|2021-02-01", "stop_reason"),
    ("P1", "medications", "ustekinumab|2022-01-01", "stop_date"),
    ("P1", "medications", "ustekinumab|2022-01-01", "stop_reason"),
    ("P1", "assessments", "2023-03-01", "hbi_pain"),
    ("P2", "labs", "2023-03-01|ALB", "value"),
}


@pytest.fixture(scope="module")
def comparison():
    a, b = rounds()
    return compare_rounds(a, b, SAMPLE, CRF)


def test_exactly_the_known_disagreements(comparison):
    cells = comparison.cells
    assert list(cells.columns) == CELL_COLUMNS
    got = {tuple(r) for r in cells.loc[~cells["agree"], ["patient_id", "table_name", "record_key", "field"]].to_numpy()}
    assert got == EXPECTED_DISAGREEMENTS


def test_cells_cover_every_compared_field_of_the_sampled_patients(comparison):
    cells = comparison.cells
    assert set(cells["patient_id"]) == {"P1", "P2"}  # P3 has no round B, P4 not sampled
    per_table = cells.groupby("table_name").size().to_dict()
    # patients: 27 compared fields (31 fields - mrn, patient_name, phone, abstractor_id) x 2 patients;
    # medications: stop_date, stop_reason x 3 records; assessments: 5 HBI + 4 Mayo items, ses_cd,
    # rutgeerts, upa_dose_mg = 12 x 1;
    # labs: value, qualifier, unit x 3 records
    assert per_table == {"patients": 54, "medications": 6, "assessments": 12, "labs": 9}
    assert not ({"abstractor_id", "value_reported", "unit_reported", "mrn", "phone"} & set(cells["field"]))


def test_values_are_canonical_text(comparison):
    c = comparison.cells.set_index(["patient_id", "table_name", "record_key", "field"])
    assert c.loc[("P1", "patients", "patient", "birth_date"), ["value_a", "value_b"]].tolist() == ["1990-01-02", "1990-01-03"]
    assert c.loc[("P2", "patients", "patient", "eim_joint"), ["value_a", "value_b"]].tolist() == ["true", "false"]
    assert 200 * 0.02586 != 5.172  # the conversion's rounding noise ...
    tc = c.loc[("P2", "labs", "2023-03-01|TC", "value")]
    assert (tc["value_a"], tc["value_b"], tc["agree"]) == ("5.172", "5.172", True)  # ... is no disagreement
    fc_unit = c.loc[("P2", "labs", "2023-03-01|FC", "unit")]
    assert (fc_unit["value_a"], fc_unit["value_b"], fc_unit["agree"]) == ("ug/g", "ug/g", True)
    assert c.loc[("P2", "patients", "patient", "uc_extent"), "agree"]
    # missing == missing agrees
    stop = c.loc[("P1", "patients", "patient", "upa_stop_date")]
    assert stop["value_a"] is None and stop["value_b"] is None and stop["agree"]
    one_sided = c.loc[("P1", "medications", "ustekinumab|2022-01-01", "stop_reason")]
    assert (one_sided["in_a"], one_sided["in_b"], one_sided["agree"]) == (False, True, False)


def test_sampled_patient_without_round_b_is_listed_separately(comparison):
    assert comparison.missing_in_b["patient_id"].tolist() == ["P3"]


def test_discrepancies_one_row_per_field_and_one_per_missing_record(comparison):
    d = discrepancies(comparison, None, None, crf=CRF, profiles=PROFILES)
    assert list(d.columns) == DISCREPANCY_COLUMNS
    rows = {tuple(r) for r in d[["patient_id", "table_name", "record_key", "field", "value_a", "value_b"]].to_numpy()}
    assert rows == {
        ("P1", "patients", "patient", "birth_date", "1990-01-02", "1990-01-03"),
        ("P2", "patients", "patient", "smoking", "never", "former"),
        ("P2", "patients", "patient", "eim_joint", "true", "false"),
        ("P1", "medications", "vedolizumab|2021-02-01", "*", "present", "absent"),
        ("P1", "medications", "ustekinumab|2022-01-01", "*", "absent", "present"),
        ("P1", "assessments", "2023-03-01", "hbi_pain", "2", "3"),
        ("P2", "labs", "2023-03-01|ALB", "value", "35", "36"),
    }
    assert set(d["status"]) == {"open"} and d["resolved_value"].isna().all()
    s = unresolved_summary(d).set_index("table_name")["n_open"].to_dict()
    assert s == {"assessments": 1, "labs": 1, "medications": 2, "patients": 3}


def adjudication_rows(rows):
    cols = ["center", "round", "patient_id", "table_name", "record_key", "field", "resolved_value",
            "reviewer_id", "decided_on", "source_file", "source_row"]
    return pd.DataFrame(
        [{"center": C, "round": "ADJ", "reviewer_id": "rev1", "decided_on": pd.Timestamp("2025-04-10"),
          "source_file": "ADJ_adjudications_20250410.csv", "source_row": i + 2, **r} for i, r in enumerate(rows)],
        columns=cols,
    )


ADJ = adjudication_rows([
    dict(patient_id="P1", table_name="patients", record_key="patient", field="birth_date", resolved_value="1990-01-03"),
    dict(patient_id="P2", table_name="patients", record_key="patient", field="eim_joint", resolved_value="是"),
    dict(patient_id="P2", table_name="patients", record_key="patient", field="smoking", resolved_value="sometimes"),
    dict(patient_id="P1", table_name="medications", record_key="vedolizumab|2021-02-01", field="*", resolved_value=""),
    dict(patient_id="P1", table_name="medications", record_key="ustekinumab|2022-01-01", field="*", resolved_value="present"),
    dict(patient_id="P1", table_name="assessments", record_key="2023-03-01", field="hbi_pain", resolved_value=" 3 "),
    dict(patient_id="P2", table_name="labs", record_key="2023-03-01|ALB", field="value", resolved_value="abc"),
    dict(patient_id="P1", table_name="patients", record_key="patient", field="sex", resolved_value="F"),
])


@pytest.fixture(scope="module")
def adjudicated(comparison):
    a, b = rounds()
    listed = discrepancies(comparison, None, None, crf=CRF, profiles=PROFILES)
    return apply_adjudications(a, ADJ, listed, CRF, round_b=b, profiles=PROFILES)


def test_adjudication_applies_values_to_round_a(adjudicated):
    reconciled, _, _ = adjudicated
    pat = reconciled["patients"].set_index("patient_id")
    assert pat.loc["P1", "birth_date"] == pd.Timestamp("1990-01-03")
    assert pat.loc["P2", "eim_joint"] == True  # noqa: E712 - 是 in the zh vocabulary
    assert pat.loc["P2", "smoking"] == "never"  # rejected: round A stays
    assert pat.loc["P1", "sex"] == "M"
    assert pat["birth_date"].dtype == "datetime64[ns]" and pat["eim_joint"].dtype == "boolean"
    assert set(pat.index) == {"P1", "P2", "P3", "P4"}  # every round-A patient, not only the sample
    ass = reconciled["assessments"]
    assert ass["hbi_pain"].tolist() == [3] and ass["hbi_pain"].dtype == "Int64"
    assert reconciled["labs"].set_index("test").loc["ALB", "value"] == 35.0


def test_whole_record_adjudication_removes_and_adds(adjudicated):
    reconciled, _, _ = adjudicated
    med = reconciled["medications"]
    assert sorted(med["drug"]) == ["infliximab", "ustekinumab"]
    uste = med[med["drug"] == "ustekinumab"].iloc[0]
    assert uste["start_date"] == pd.Timestamp("2022-01-01") and uste["abstractor_id"] == "inv2"
    assert med["start_date"].dtype == "datetime64[ns]"


def test_reconciled_tables_have_no_delivery_columns(adjudicated):
    reconciled, _, _ = adjudicated
    assert set(reconciled) == set(CRF.data_tables)
    for t, df in reconciled.items():
        assert {"center", "patient_id"} <= set(df.columns), t
        assert not ({"round", "delivery_id", "source_file", "source_row"} & set(df.columns)), t
    assert reconciled["surgeries"].empty


def test_rejections_are_quarantine_rows(adjudicated):
    _, rejected, _ = adjudicated
    assert list(rejected.columns) == QUARANTINE_COLUMNS
    got = {(r.patient_id, r.rule, r.row_number, r.value) for r in rejected.itertuples()}
    assert got == {
        ("P2", "code", 4, "sometimes"),
        ("P2", "type", 8, "abc"),
        ("P1", "no_open_discrepancy", 9, "sex"),
    }
    assert set(rejected["round"]) == {"ADJ"} and set(rejected["table_name"]) == {"adjudications"}
    assert set(rejected["file_name"]) == {"ADJ_adjudications_20250410.csv"}


def test_resolved_marks_the_discrepancy_list_and_carries_over(comparison, adjudicated):
    _, _, resolved = adjudicated
    final = discrepancies(comparison, None, resolved, crf=CRF, profiles=PROFILES)
    status = {(r.record_key, r.field): (r.status, r.resolved_value) for r in final.itertuples()}
    assert status == {
        ("patient", "birth_date"): ("resolved", "1990-01-03"),
        ("patient", "eim_joint"): ("resolved", "true"),
        ("patient", "smoking"): ("open", None),
        ("vedolizumab|2021-02-01", "*"): ("resolved", "absent"),
        ("ustekinumab|2022-01-01", "*"): ("resolved", "present"),
        ("2023-03-01", "hbi_pain"): ("resolved", "3"),
        ("2023-03-01|ALB", "value"): ("open", None),
    }
    # next run: the earlier list carries the resolutions (same values on both sides) ...
    again = discrepancies(comparison, final, None, crf=CRF, profiles=PROFILES)
    pd.testing.assert_frame_equal(again, final)
    # ... and they are applied again without the reviewer re-sending them
    a, b = rounds()
    reconciled, rejected, resolved2 = apply_adjudications(a, None, again, CRF, round_b=b, profiles=PROFILES)
    assert rejected.empty and set(resolved2["source"]) == {"previous"}
    assert sorted(reconciled["medications"]["drug"]) == ["infliximab", "ustekinumab"]
    assert reconciled["assessments"]["hbi_pain"].tolist() == [3]


def test_raw_adjudications_mark_only_valid_decisions_resolved(comparison, adjudicated):
    # the ADJ staging frame itself may be given to discrepancies(): values that do not
    # parse (smoking 'sometimes', ALB 'abc') leave their discrepancy open
    _, _, resolved = adjudicated
    from_raw = discrepancies(comparison, None, ADJ, crf=CRF, profiles=PROFILES)
    pd.testing.assert_frame_equal(from_raw, discrepancies(comparison, None, resolved, crf=CRF, profiles=PROFILES))
    # and applying the adjudications against that list gives the same reconciled tables
    a, b = rounds()
    reconciled, rejected, _ = apply_adjudications(a, ADJ, from_raw, CRF, round_b=b, profiles=PROFILES)
    for t, df in adjudicated[0].items():
        pd.testing.assert_frame_equal(reconciled[t], df)
    assert sorted(rejected["rule"]) == ["code", "no_open_discrepancy", "type"]


def test_changed_values_reopen_a_resolved_discrepancy(comparison, adjudicated):
    _, _, resolved = adjudicated
    final = discrepancies(comparison, None, resolved, crf=CRF, profiles=PROFILES)
    stale = final.copy()
    stale.loc[stale["field"] == "hbi_pain", "value_b"] = "4"  # round B said something else then
    again = discrepancies(comparison, stale, None, crf=CRF, profiles=PROFILES)
    assert again.set_index("field").loc["hbi_pain", "status"] == "open"


def test_adjudication_of_a_vanished_discrepancy_is_rejected():
    a, b = rounds()
    b["patients"].loc[b["patients"]["patient_id"] == "P1", "birth_date"] = pd.Timestamp("1990-01-02")
    listed = discrepancies(compare_rounds(a, b, SAMPLE, CRF), None, None, crf=CRF, profiles=PROFILES)
    _, rejected, _ = apply_adjudications(a, ADJ.iloc[:1], listed, CRF, round_b=b, profiles=PROFILES)
    assert rejected["rule"].tolist() == ["no_open_discrepancy"]


def test_later_adjudication_of_the_same_discrepancy_wins(comparison):
    a, b = rounds()
    adj = adjudication_rows([
        dict(patient_id="P1", table_name="assessments", record_key="2023-03-01", field="hbi_pain", resolved_value="3",
             decided_on=pd.Timestamp("2025-04-12")),
        dict(patient_id="P1", table_name="assessments", record_key="2023-03-01", field="hbi_pain", resolved_value="1"),
    ])
    reconciled, rejected, _ = apply_adjudications(a, adj, discrepancies(comparison, crf=CRF, profiles=PROFILES), CRF, round_b=b, profiles=PROFILES)
    assert reconciled["assessments"]["hbi_pain"].tolist() == [3]  # decided 2025-04-12, after 2025-04-10
    assert rejected[["rule", "row_number"]].values.tolist() == [["unique_key", 3]]
    assert a["assessments"]["hbi_pain"].tolist() == [2] and "round" in a["assessments"]  # input untouched


def test_duplicate_record_keys_are_a_contract_error():
    a, b = rounds()
    b["labs"] = pd.concat([b["labs"], b["labs"].iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="round B labs"):
        compare_rounds(a, b, SAMPLE, CRF)


@pytest.mark.parametrize(
    "field, text, rule",
    [("hbi_pain", "7", "range"), ("hbi_pain", "2.5", "type"), ("upa_dose_mg", "20", "code"),
     ("hbi_pain", "", None), ("upa_dose_mg", "30", None)],
)
def test_resolved_value_parsing_rules(field, text, rule):
    a, b = rounds()
    b["assessments"]["upa_dose_mg"] = pd.array([15], dtype="Int64")
    comp = compare_rounds(a, b, SAMPLE, CRF)
    adj = adjudication_rows([dict(patient_id="P1", table_name="assessments", record_key="2023-03-01", field=field,
                                  resolved_value=text)])
    reconciled, rejected, _ = apply_adjudications(a, adj, discrepancies(comp, crf=CRF, profiles=PROFILES), CRF, round_b=b, profiles=PROFILES)
    if rule is None:
        assert rejected.empty
        v = reconciled["assessments"][field].iloc[0]
        assert (pd.isna(v) if text == "" else v == int(text))
    else:
        assert rejected["rule"].tolist() == [rule]
