"""A REDCap-exporting center by configuration (issue 15 item 3): the synthetic hospital's
REDCap export (synth/redcap.py) read through its profile (studies/single_center_cd/centers/
ahmu.yaml) by ingest/redcap.py and the common extraction path; the dictionary comparison;
the CRF additions of the single-center study in a multicenter warehouse."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibd_pipeline.store import warehouse as wh
from ibd_pipeline.config import PROJECT_ROOT, CenterProfile, load_centers, load_crf
from ibd_pipeline.ingest import UnreadableFileError, canonical_columns, extract_file, write_delivery_report
from ibd_pipeline.ingest.redcap import (
    RedcapProfileError,
    compare_dictionary,
    dictionary_name_for,
    is_dictionary_file,
    read_dictionary,
    redcap_spec,
)
from ibd_pipeline.pseudonym import patient_ids
from ibd_pipeline.synth.redcap import DICTIONARY_COLUMNS, hospital_project, write_redcap_export

CRF = load_crf()

KEY = b"redcap-test-key-0123456789abcdef"
D = pd.Timestamp
DATE = "2025-09-01"


@pytest.fixture(scope="module")
def profile() -> CenterProfile:
    return load_centers(PROJECT_ROOT / "studies" / "single_center_cd" / "centers")["ahmu"]


def _frames() -> dict[str, pd.DataFrame]:
    """Three CD patients touching every instrument, checkbox option, choice style and the
    wide laboratory form (two tests on one date, one on another)."""
    a, b, c = "ZY2400101", "ZY2400102", "ZY2400103"
    pat = pd.DataFrame([
        dict(mrn=a, abstractor_id="AB01", sex="M", birth_date=D("1990-01-02"), diagnosis="CD", diagnosis_date=D("2015-03-04"),
             cd_location="L3", cd_upper_gi=False, cd_behavior="B3", cd_perianal=True, smoking=None, height_cm=172.5,
             weight_kg=60.0, eim_eye=False, eim_skin=True, eim_joint=False, eim_other=False, imaging_penetrating=True,
             imaging_penetrating_site="ileum", upa_start_date=D("2024-01-10"), upa_stop_date=D("2024-09-01"),
             upa_stop_reason="adverse_event", last_followup_date=D("2025-01-10")),
        dict(mrn=b, abstractor_id="AB02", sex="F", birth_date=D("1985-05-06"), diagnosis="CD", diagnosis_date=D("2010-03-04"),
             cd_location="L1", cd_upper_gi=True, cd_behavior="B1", cd_perianal=False, smoking="never", height_cm=160.0,
             weight_kg=45.2, eim_eye=True, eim_skin=False, eim_joint=True, eim_other=True, imaging_penetrating=False,
             imaging_penetrating_site=None, upa_start_date=D("2024-02-10"), upa_stop_date=None, upa_stop_reason=None,
             last_followup_date=D("2025-02-10")),
        dict(mrn=c, abstractor_id="AB01", sex="F", birth_date=D("2000-12-31"), diagnosis="CD", diagnosis_date=D("2019-07-01"),
             cd_location="L2", cd_upper_gi=False, cd_behavior="B2", cd_perianal=False, smoking="current", height_cm=181.0,
             weight_kg=70.5, eim_eye=False, eim_skin=False, eim_joint=False, eim_other=False, imaging_penetrating=True,
             imaging_penetrating_site="perianal", upa_start_date=D("2024-03-01"), upa_stop_date=None, upa_stop_reason=None,
             last_followup_date=D("2025-03-01")),
    ])
    ab = {a: "AB01", b: "AB02", c: "AB01"}

    def rows(table_rows):
        df = pd.DataFrame(table_rows)
        df.insert(1, "abstractor_id", df["mrn"].map(ab))
        return df

    meds = rows([
        dict(mrn=a, drug="infliximab", start_date=D("2020-01-01"), stop_date=D("2023-06-01"), stop_reason="secondary_loss_of_response", last_dose_date=D("2023-05-20")),
        dict(mrn=a, drug="azathioprine", start_date=D("2019-01-01"), stop_date=D("2019-06-01"), stop_reason="intolerance", last_dose_date=D("2019-05-30")),
        dict(mrn=b, drug="exclusive_enteral_nutrition", start_date=D("2021-01-01"), stop_date=None, stop_reason=None, last_dose_date=None),
        dict(mrn=c, drug="adalimumab", start_date=D("2022-01-01"), stop_date=D("2024-01-15"), stop_reason="primary_nonresponse", last_dose_date=D("2024-01-02")),
    ])
    visits = rows([
        dict(mrn=a, visit_date=D("2024-01-10"), hbi_wellbeing=3, hbi_pain=2, hbi_liquid_stools=6, hbi_mass=1, hbi_complications=2, ses_cd=14, upa_dose_mg=45),
        dict(mrn=a, visit_date=D("2024-04-03"), hbi_wellbeing=0, hbi_pain=0, hbi_liquid_stools=1, hbi_mass=0, hbi_complications=0, ses_cd=None, upa_dose_mg=30),
        dict(mrn=b, visit_date=D("2024-02-10"), hbi_wellbeing=4, hbi_pain=3, hbi_liquid_stools=12, hbi_mass=3, hbi_complications=1, ses_cd=None, upa_dose_mg=45),
    ])
    labs = rows([
        dict(mrn=a, sample_date=D("2024-01-09"), test="CRP", value=12.5, unit="mg/L"),
        dict(mrn=a, sample_date=D("2024-01-09"), test="FC", value=800.0, unit="ug/g"),
        dict(mrn=a, sample_date=D("2024-04-01"), test="HB", value=121.0, unit="g/L"),
        dict(mrn=b, sample_date=D("2024-02-01"), test="ALB", value=33.1, unit="g/L"),
        dict(mrn=b, sample_date=D("2024-02-01"), test="FIB", value=4.4, unit="g/L"),
        dict(mrn=c, sample_date=D("2024-02-28"), test="CRP", value=0.8, unit="mg/L"),
    ])
    aes = rows([
        dict(mrn=a, onset_date=D("2024-02-01"), term="reduced_fibrinogen", serious=False, led_to_discontinuation=False, severity="mild", led_to_dose_reduction=True),
        dict(mrn=a, onset_date=D("2024-08-20"), term="herpes_zoster", serious=True, led_to_discontinuation=True, severity="severe", led_to_dose_reduction=False),
        dict(mrn=c, onset_date=D("2024-05-05"), term="respiratory_tract_infection", serious=False, led_to_discontinuation=False, severity="moderate", led_to_dose_reduction=None),
    ])
    surg = rows([dict(mrn=c, surgery_date=D("2018-05-01"), procedure="ileocecal_resection", ibd_related=True, urgency="emergency", indication="obstruction")])
    doses = rows([
        dict(mrn=a, start_date=D("2024-01-10"), dose_mg=45, reason="induction"),
        dict(mrn=a, start_date=D("2024-02-01"), dose_mg=30, reason="adverse_event"),
        dict(mrn=b, start_date=D("2024-02-10"), dose_mg=45, reason="induction"),
        dict(mrn=b, start_date=D("2024-05-10"), dose_mg=15, reason="endoscopic_remission"),
    ])
    pk = rows([dict(mrn=b, sample_date=D("2024-08-12"), sample_time="09:30", hours_since_last_dose=24.0, upa_ng_ml=12.75, assay="lc_ms")])
    return {"patients": pat, "medications": meds, "assessments": visits, "labs": labs, "adverse_events": aes,
            "surgeries": surg, "dose_episodes": doses, "pk_samples": pk}


def _extract(profile, records: Path, dictionary: Path | None = None):
    return {te.table: te for te in extract_file(records, profile, key=KEY, delivery_id="d" * 64, dictionary=dictionary, crf=CRF)}


def _records(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _write_records(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _row_of(rows, instrument: str, **values) -> int:
    """The records file row (header = 1) of the row of ``instrument`` with ``values``."""
    for i, r in enumerate(rows):
        if r["redcap_repeat_instrument"] == instrument and all(r[k] == v for k, v in values.items()):
            return i + 2
    raise AssertionError(f"no {instrument} row with {values}")


def _comparable(df: pd.DataFrame, table: str, cols: list[str]) -> pd.DataFrame:
    keys = [("patient_id" if k == "mrn" else k) for k in load_crf().table(table).key]
    out = df[cols].sort_values(keys, kind="stable").reset_index(drop=True)
    return out.astype(object).where(out.notna(), None)


# ----------------------------------------------------------------------------- the profile
def test_the_profile_matches_the_hospital_project_dictionary(profile):
    assert compare_dictionary(hospital_project().dictionary(), profile, CRF) == []
    spec = redcap_spec(profile, CRF)
    assert {i: s["table"] for i, s in spec.instruments.items()} == {
        "baseline": "patients", "prior_therapy": "medications", "visit": "assessments", "laboratory": "labs",
        "adverse_event": "adverse_events", "surgery": "surgeries", "dose_change": "dose_episodes", "pk_sample": "pk_samples",
    }
    # the profile speaks REDCap: headers and raw codes of the center
    assert profile.header_for("patients", "birth_date") == "dob"
    assert profile.header_for("patients", "eim_joint") == "eim___3"
    assert profile.header_for("labs", "mrn") == "mrn"
    assert profile.code_map("sex") == {"1": "M", "2": "F"}
    assert profile.code_map("smoking")["9"] is None
    assert profile.code_map("drug")["29"] == "exclusive_enteral_nutrition"
    assert dictionary_name_for(profile, "redcap_records_20250901.csv") == "redcap_dictionary_20250901.csv"
    assert is_dictionary_file(profile, "redcap_dictionary_20250901.csv")
    assert not is_dictionary_file(profile, "redcap_records_20250901.csv")


def test_a_profile_that_maps_a_choice_to_no_crf_code_is_refused_naming_the_field(profile):
    raw = {**profile.raw, "redcap": {**profile.raw["redcap"], "instruments": {
        **profile.raw["redcap"]["instruments"],
        "baseline": {"table": "patients", "fields": {**profile.raw["redcap"]["instruments"]["baseline"]["fields"],
                                                     "sex": {"crf": "sex", "type": "radio", "choices": "1, Male | 2, Female",
                                                             "codes": {"1": "M", "2": "female"}}}},
    }}}
    with pytest.raises(RedcapProfileError, match=r"field sex: choice 2 maps to 'female', not a value of patients.sex"):
        redcap_spec(CenterProfile(id="ahmu", raw=raw), CRF)


# ------------------------------------------------------------------------------ round trip
def test_round_trip_canonical_frames_to_redcap_and_back(tmp_path, profile):
    frames = _frames()
    ex = write_redcap_export(frames, None, tmp_path, DATE)
    assert ex.records.name == "redcap_records_20250901.csv" and ex.dictionary.name == "redcap_dictionary_20250901.csv"
    assert list(pd.read_csv(ex.dictionary, dtype=str).columns) == DICTIONARY_COLUMNS
    rows = _records(ex.records)
    assert list(rows[0])[:3] == ["record_id", "redcap_repeat_instrument", "redcap_repeat_instance"]
    assert {"eim___1", "eim___4"} <= set(rows[0]) and "eim" not in rows[0]
    assert [r["redcap_repeat_instance"] for r in rows if r["record_id"] == "1" and r["redcap_repeat_instrument"] == "laboratory"] == ["1", "2"]
    assert ex.not_recorded == {}

    got = _extract(profile, ex.records)
    assert set(got) == set(frames)
    for table, te in got.items():
        assert len(te.quarantine) == 0, (table, te.quarantine[["row_number", "field", "value", "message"]].to_dict("records"))
        src = frames[table].copy()
        src.insert(0, "patient_id", patient_ids(KEY, "ahmu", src.pop("mrn")).to_numpy())
        assert set(src.columns) <= set(te.valid.columns), table
        cols = list(src.columns)
        want = _comparable(src, table, cols)
        have = _comparable(te.valid, table, cols)
        pd.testing.assert_frame_equal(have, want, check_dtype=False, obj=table)
        assert (te.valid["center"] == "ahmu").all() and (te.valid["round"] == "A").all()

    # source rows are the records file's rows; a laboratory instance's results share its row
    labs = got["labs"].valid
    a = patient_ids(KEY, "ahmu", pd.Series(["ZY2400101"])).iat[0]
    same_day = labs[(labs["patient_id"] == a) & (labs["sample_date"] == D("2024-01-09"))]
    assert sorted(same_day["test"]) == ["CRP", "FC"]
    assert set(same_day["source_row"]) == {_row_of(rows, "laboratory", record_id="1", lab_date="2024-01-09")}
    pk_row = got["pk_samples"].valid["source_row"].iat[0]
    assert pk_row == _row_of(rows, "pk_sample", pk_date="2024-08-12")
    b_row = got["patients"].valid.set_index("patient_id")["source_row"]
    assert b_row[a] == 2  # the first record's baseline row follows the header
    # smoking 'unknown' (9) is missing, a checkbox option unticked is false
    pats = got["patients"].valid.set_index("patient_id")
    assert pats.loc[a, "smoking"] is None and bool(pats.loc[a, "eim_eye"]) is False and bool(pats.loc[a, "eim_skin"]) is True


def test_identifiers_of_the_export_never_reach_the_extract(tmp_path, profile):
    ex = write_redcap_export(_frames(), None, tmp_path, DATE)
    rows = _records(ex.records)
    names = {r["pt_name"] for r in rows if r["pt_name"]}
    phones = {r["pt_phone"] for r in rows if r["pt_phone"]}
    mrns = {r["mrn"] for r in rows if r["mrn"]}
    assert len(names) == 3 and len(phones) == 3 and len(mrns) == 3  # the export does hold them
    got = _extract(profile, ex.records)
    for table, te in got.items():
        assert not {"mrn", "patient_name", "phone", "pt_name", "pt_phone", "record_id"} & set(te.valid.columns), table
        cells = {str(v) for v in te.valid.astype(str).to_numpy().ravel()} | {str(w) for w in te.warnings}
        assert not cells & (names | phones | mrns), table
    pids = got["patients"].valid["patient_id"]
    assert pids.str.fullmatch(r"P[0-9a-f]{20}").all()


# ------------------------------------------------------------------------------ bad values
def test_unknown_choice_code_and_bad_date_are_quarantined_with_file_row_field_and_value(tmp_path, profile):
    ex = write_redcap_export(_frames(), None, tmp_path, DATE)
    rows = _records(ex.records)
    sex_row = next(i for i, r in enumerate(rows) if r["record_id"] == "2" and r["redcap_repeat_instrument"] == "")
    rows[sex_row]["sex"] = "7"
    dose_row = _row_of(rows, "visit", record_id="2", visit_date="2024-02-10") - 2
    rows[dose_row]["upa_dose"] = "20"
    lab_row = _row_of(rows, "laboratory", record_id="1", lab_date="2024-01-09") - 2
    rows[lab_row]["lab_date"] = "09/01/2024"
    _write_records(ex.records, rows)

    got = _extract(profile, ex.records)
    q = pd.concat([te.quarantine for te in got.values()], ignore_index=True)
    sex = q[(q["table_name"] == "patients") & (q["field"] == "sex")]
    assert len(sex) == 1
    s = sex.iloc[0]
    assert (s["file_name"], s["row_number"], s["value"], s["rule"]) == (ex.records.name, sex_row + 2, "7", "code")
    assert "field sex" in s["message"] and "REDCap field sex (1 = Male, 2 = Female)" in s["message"]
    dose = q[(q["table_name"] == "assessments")]
    assert dose[["row_number", "field", "value", "rule"]].to_dict("records") == [
        {"row_number": dose_row + 2, "field": "upa_dose_mg", "value": "20", "rule": "code"}
    ]
    assert "upa_dose (upa_dose_mg)" in dose["message"].iat[0] and "15 = 15 mg" in dose["message"].iat[0]
    bad = q[q["table_name"] == "labs"]
    # both results of the instance are held back, each naming the instance's row and the REDCap date field
    assert sorted(bad["row_number"]) == [lab_row + 2, lab_row + 2]
    assert set(bad["field"]) == {"sample_date"} and set(bad["value"]) == {"09/01/2024"} and set(bad["rule"]) == {"type"}
    assert "lab_date (sample_date)" in bad["message"].iat[0] and "2023-02-28" in bad["message"].iat[0]
    # the other rows are read
    assert got["patients"].rows_valid == 2 and got["labs"].rows_valid == 4 and got["assessments"].rows_valid == 2
    assert got["medications"].rows_valid == 4 and len(got["medications"].quarantine) == 0
    # the coordinator's delivery report names the records file's rows and the REDCap fields
    html = write_delivery_report(tmp_path / "outbox", "ahmu", ex.records.name, list(got.values()), profile=profile).read_text(
        encoding="utf-8")
    assert f"row {sex_row + 2}, field sex" in html and f"row {lab_row + 2}, field lab_date (sample_date)" in html
    assert "ZY24001" not in html  # no record number in the report


def test_records_without_their_dictionary_are_unreadable(tmp_path, profile):
    ex = write_redcap_export(_frames(), None, tmp_path, DATE)
    ex.dictionary.unlink()
    with pytest.raises(UnreadableFileError, match=r"data dictionary of this export \(redcap_dictionary_20250901.csv\) is missing"):
        _extract(profile, ex.records)


# ------------------------------------------------------------------------ dictionary changes
def test_every_kind_of_dictionary_change_is_detected(profile):
    p = hospital_project()
    assert compare_dictionary(p.dictionary(), profile, CRF) == []

    def kinds(project):
        return {(c.kind, c.field, c.blocking) for c in compare_dictionary(project.dictionary(), profile, CRF)}

    assert kinds(p.renamed("montreal_b", "cd_behaviour")) == {("field_renamed", "montreal_b", True)}
    assert kinds(p.recoded("smoking", {"2": "5"})) == {("choice_recoded", "smoking", True)}
    assert kinds(p.relabelled("sex", "2", "Female (at birth)")) == {("choice_relabelled", "sex", True)}
    assert kinds(p.with_choice("surg_urgency", "3", "Urgent", "emergency")) == {("choice_added", "surg_urgency", True)}
    assert kinds(p.retyped("height", validation="integer")) == {("type_changed", "height", True)}
    assert kinds(p.retyped("hbi_pain", ftype="dropdown")) == {("type_changed", "hbi_pain", True)}
    # display format of a date, by-label choices that still name CRF codes: reported only
    assert kinds(p.retyped("dob", validation="date_dmy")) == {("type_changed", "dob", False)}
    assert kinds(p.recoded("ae_term", {"20": "30"})) == {("choice_recoded", "ae_term", False)}
    assert kinds(p.with_choice("ae_term", "24", "Fever", "fever")) == {("choice_added", "ae_term", False)}
    assert kinds(p.with_choice("ae_term", "24", "Alopecia", "other")) == {("choice_added", "ae_term", True)}
    # a field the profile does not know; a removed field with no twin
    d = p.dictionary()
    extra = d.iloc[[0]].assign(**{"Variable / Field Name": "ethnicity", "Field Type": "text"})
    d2 = pd.concat([d[d["Variable / Field Name"] != "pk_time"], extra], ignore_index=True)
    assert {(c.kind, c.field, c.blocking) for c in compare_dictionary(d2, profile, CRF)} == {
        ("field_added", "ethnicity", False), ("field_removed", "pk_time", True)}
    rename = compare_dictionary(p.renamed("montreal_b", "cd_behaviour").dictionary(), profile, CRF)[0]
    assert rename.new_field == "cd_behaviour" and rename.targets == ("patients.cd_behavior",)
    assert "montreal_b (patients.cd_behavior): renamed to cd_behaviour - not read from this delivery" in rename.message(redcap_spec(profile, CRF))
    assert "(redcap.instruments.baseline.fields.montreal_b of ahmu.yaml) is updated" in rename.message(redcap_spec(profile, CRF))


def test_a_changed_dictionary_refuses_the_affected_fields_and_reads_the_rest(tmp_path, profile):
    frames = _frames()
    changed = hospital_project().renamed("montreal_b", "cd_behaviour").recoded("smoking", {"2": "5", "3": "6"}).recoded("ae_term", {"20": "30"})
    ex = write_redcap_export(frames, changed, tmp_path, DATE)
    assert "cd_behaviour" in _records(ex.records)[0]
    assert [c.kind for c in compare_dictionary(read_dictionary(ex.dictionary), profile, CRF)] == [
        "field_renamed", "choice_recoded", "choice_recoded", "choice_recoded"]
    got = _extract(profile, ex.records)
    notes = [w for te in got.values() for w in te.warnings]
    assert any("REDCap field montreal_b (patients.cd_behavior): renamed to cd_behaviour - not read" in w for w in notes)
    assert any("REDCap field smoking (patients.smoking): choice 'Former' recoded 2 -> 5" in w and "ahmu.yaml" in w for w in notes)
    assert any("ae_term" in w and "reported only" in w for w in notes)
    pats = got["patients"].valid
    assert len(pats) == 3 and len(got["patients"].quarantine) == 0
    assert pats["cd_behavior"].isna().all() and pats["smoking"].isna().all()  # refused: read as empty
    assert sorted(pats["cd_location"]) == ["L1", "L2", "L3"] and sorted(pats["sex"]) == ["F", "F", "M"]
    # by-label terms follow the recoded dictionary; every other table is read
    assert sorted(got["adverse_events"].valid["term"]) == ["herpes_zoster", "reduced_fibrinogen", "respiratory_tract_infection"]
    assert {t: te.rows_valid for t, te in got.items()} == {t: len(df) for t, df in frames.items()}


def test_a_refused_required_field_holds_back_its_table_only(tmp_path, profile):
    frames = _frames()
    ex = write_redcap_export(frames, hospital_project().renamed("surg_proc", "surgery_type"), tmp_path, DATE)
    got = _extract(profile, ex.records)
    assert "surgeries" not in got
    notes = [w for te in got.values() for w in te.warnings]
    assert any(w.startswith("table surgeries not read from this delivery") and "procedure: REDCap field surg_proc renamed to surgery_type" in w
               for w in notes)
    assert {t: te.rows_valid for t, te in got.items()} == {t: len(df) for t, df in frames.items() if t != "surgeries"}


# ------------------------------------------------------------- the multicenter study unchanged
def test_new_crf_tables_exist_empty_in_a_multicenter_warehouse(tmp_path):
    crf = load_crf()
    with wh.connect(tmp_path / "warehouse.duckdb") as con:
        wh.ensure_warehouse(con, crf)
        for t in ("dose_episodes", "pk_samples"):
            for schema in ("staging", "reconciled"):
                assert con.execute(f"SELECT count(*) FROM {schema}.{t}").fetchone()[0] == 0
        cols = {r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'staging' AND table_name = 'pk_samples'").fetchall()}
        assert cols == set(canonical_columns("pk_samples", crf))
        med = {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE schema_name = 'staging' AND table_name = 'medications'").fetchall()}
        assert "last_dose_date" in med


def test_a_multicenter_delivery_without_the_new_fields_still_validates(tmp_path):
    zcmu1 = load_centers()["zcmu1"]
    p = tmp_path / "A_medications_20250401.csv"
    p.write_text("mrn,abstractor_id,drug,start_date,stop_date,stop_reason\nZJ100001,AB1,infliximab,2021-01-05,2022-02-01,intolerance\n",
                 encoding="utf-8")
    (te,) = extract_file(p, zcmu1, key=KEY, delivery_id="e" * 64, crf=CRF)
    assert te.rows_valid == 1 and len(te.quarantine) == 0
    assert pd.isna(te.valid["last_dose_date"].iat[0])
    # the center's profile says its export has no such field (not_collected): no note on every delivery
    assert not any("last_dose_date" in w for w in te.warnings)
    assert np.dtype(te.valid["last_dose_date"].dtype) == np.dtype("datetime64[ns]")
    # a field the profile does not list as not collected is still reported when left out
    p2 = tmp_path / "A_medications_20250402.csv"
    p2.write_text("mrn,abstractor_id,drug,start_date,stop_date\nZJ100001,AB1,infliximab,2021-01-05,\n", encoding="utf-8")
    (te2,) = extract_file(p2, zcmu1, key=KEY, delivery_id="f" * 64, crf=CRF)
    assert any("optional columns not delivered" in w and "stop_reason" in w and "last_dose_date" not in w for w in te2.warnings)


def test_rows_the_profile_cannot_read_are_reported_not_dropped_silently(tmp_path, profile):
    ex = write_redcap_export(_frames(), None, tmp_path, DATE)
    rows = _records(ex.records)
    blank = dict.fromkeys(rows[0], "")
    rows.append({**blank, "record_id": "1", "redcap_repeat_instrument": "quality_of_life", "redcap_repeat_instance": "1"})
    rows.append({**blank, "record_id": "2", "redcap_repeat_instrument": "visit", "redcap_repeat_instance": "9",
                 "visit_complete": "2"})  # marked complete, nothing in it: still empty
    rows.append({**blank, "record_id": "99", "redcap_repeat_instrument": "pk_sample", "redcap_repeat_instance": "1",
                 "pk_date": "2024-08-01", "pk_conc": "10.5"})
    _write_records(ex.records, rows)
    got = _extract(profile, ex.records)
    notes = [w for te in got.values() for w in te.warnings]
    assert any("1 row(s) of instrument 'quality_of_life' were not read" in w for w in notes)
    assert any("1 empty instance(s) of instrument visit skipped" in w for w in notes)
    # an instance of a record without its baseline row: no record number, quarantined (required mrn)
    q = got["pk_samples"].quarantine
    assert q[["row_number", "field", "rule"]].to_dict("records") == [{"row_number": len(rows) + 1, "field": "mrn", "rule": "required"}, {"row_number": len(rows) + 1, "field": "abstractor_id", "rule": "required"}]
    assert got["pk_samples"].rows_valid == 1 and got["assessments"].rows_valid == 3


def test_checkboxes_of_a_form_never_entered_are_missing_not_unticked(tmp_path, profile):
    """REDCap exports an unticked checkbox as 0 whether or not its form was ever opened
    (docs/STUDY_RULES.md#extraction): the extraintestinal form's options are false where
    the form was entered (a value, a tick, or form status 1/2) and missing where it was not."""
    import yaml

    raw = yaml.safe_load(profile.path.read_text(encoding="utf-8"))
    insts = raw["redcap"]["instruments"]
    eim = insts["baseline"]["fields"].pop("eim")
    insts = {"baseline": insts.pop("baseline"), "extraintestinal": {"table": "patients", "fields": {"eim": eim}}, **insts}
    raw["redcap"]["instruments"] = insts
    (tmp_path / "centers").mkdir()
    (tmp_path / "centers" / "ahmu.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    split = load_centers(tmp_path / "centers")["ahmu"]

    ex = write_redcap_export(_frames(), None, tmp_path / "inbox", DATE)
    d = pd.read_csv(ex.dictionary, dtype=str, keep_default_na=False)
    d.loc[d["Variable / Field Name"] == "eim", "Form Name"] = "extraintestinal"
    d.to_csv(ex.dictionary, index=False, lineterminator="\n")
    rows = _records(ex.records)
    status = {"1": "0", "2": "", "3": "2"}  # 1: incomplete, skin ticked; 2: never entered; 3: complete, nothing ticked
    for r in rows:
        r["extraintestinal_complete"] = status[r["record_id"]] if r["redcap_repeat_instrument"] == "" else ""
        if r["redcap_repeat_instrument"] == "" and r["record_id"] == "2":
            r.update({f"eim___{k}": "0" for k in "1234"})  # REDCap's 0s of a form never opened
    _write_records(ex.records, rows)

    got = _extract(split, ex.records)
    te = got["patients"]
    assert len(te.quarantine) == 0 and te.rows_valid == 3
    assert not any("dictionary" in w and "eim" in w for w in te.warnings), te.warnings
    ids = patient_ids(KEY, "ahmu", pd.Series(["ZY2400101", "ZY2400102", "ZY2400103"])).tolist()
    pats = te.valid.set_index("patient_id").loc[ids, ["eim_eye", "eim_skin", "eim_joint", "eim_other"]]
    pats = pats.astype(object).where(pats.notna(), None)
    assert pats.iloc[0].tolist() == [False, True, False, False]  # a tick shows the form was entered: 0 = not ticked
    assert pats.iloc[1].tolist() == [None, None, None, None]  # never entered (no tick, no status): not abstracted
    assert pats.iloc[2].tolist() == [False, False, False, False]  # form status complete: 0 = not ticked
    # the baseline form of record 2 was entered: its own values are read as delivered
    assert te.valid.set_index("patient_id").loc[ids[1], "smoking"] == "never"
