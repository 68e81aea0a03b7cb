"""Hand-built core frames for the cohort and endpoint tests (shared helper; imported by
test_cohort.py and test_endpoints.py), plus checks of the helper itself.

Every date is given as a day number relative to the patient's UPA start (day 0), so a
test reads like the rule it pins ("a visit on day 84 + 28").
"""

from __future__ import annotations

import pandas as pd

from ibd_pipeline.config import load_crf, load_settings

START = pd.Timestamp("2024-01-10")
HBI_ITEMS = ("hbi_wellbeing", "hbi_pain", "hbi_liquid_stools", "hbi_mass", "hbi_complications")

PATIENT_DEFAULTS = dict(
    sex="M", cd_location="L3", cd_upper_gi=False, cd_behavior="B1", cd_perianal=False, uc_extent=None,
    complex_perianal=False, ileal_pouch=False, pouchitis_chronic_ab_refractory=False,
    psychosocial_comorbidity=False, smoking="never", height_cm=170.0, weight_kg=65.0,
    eim_eye=False, eim_skin=False, eim_joint=False, eim_other=False, pregnant_or_breastfeeding=False,
    serious_infection_at_start=False, malignancy_history=False,
)
BOOL_FIELDS = [k for k, v in PATIENT_DEFAULTS.items() if isinstance(v, bool)]


def settings(**overrides):
    from ibd_pipeline.config import with_overrides

    return with_overrides(load_settings(), overrides) if overrides else load_settings()


def hbi_items(total: int) -> dict:
    """Five HBI items summing to ``total`` (well-being up to 4, pain up to 3, the rest
    as liquid stools)."""
    w = min(total, 4)
    p = min(total - w, 3)
    return dict(hbi_wellbeing=w, hbi_pain=p, hbi_liquid_stools=total - w - p, hbi_mass=0, hbi_complications=0)


class Study:
    """A small hand-built study: ``patient`` / ``med`` / ``surgery`` / ``visit`` / ``lab`` /
    ``ae`` add rows; the properties give core-shaped, typed frames."""

    def __init__(self):
        self._patients: list[dict] = []
        self._meds: list[dict] = []
        self._surg: list[dict] = []
        self._visits: list[dict] = []
        self._labs: list[dict] = []
        self._aes: list[dict] = []
        self._start: dict[str, pd.Timestamp] = {}

    def d(self, pid: str, day: int | None):
        return None if day is None else self._start[pid] + pd.Timedelta(days=day)

    # ----------------------------------------------------------------- rows
    def patient(self, pid, diagnosis="CD", age=30, center="zcmu1", stop_day=None, stop_reason=None,
                followup_day=400, start=START, birth_date=None, diagnosis_years=5, **fields):
        self._start[pid] = start
        born = birth_date if birth_date is not None else start - pd.DateOffset(years=age) - pd.Timedelta(days=10)
        row = dict(PATIENT_DEFAULTS)
        if diagnosis == "UC":
            row.update(cd_location=None, cd_behavior=None, cd_perianal=None, cd_upper_gi=None, uc_extent="E3")
        row.update(
            patient_id=pid, center=center, diagnosis=diagnosis, birth_date=pd.Timestamp(born),
            diagnosis_date=start - pd.DateOffset(years=diagnosis_years),
            upa_start_date=start, upa_stop_date=self.d(pid, stop_day),
            upa_stop_reason=stop_reason or ("other" if stop_day is not None else None),
            last_followup_date=self.d(pid, followup_day),
        )
        row.update(fields)
        self._patients.append(row)
        return pid

    def med(self, pid, drug, start_day, stop_day=None, stop_reason=None):
        self._meds.append(dict(patient_id=pid, drug=drug, start_date=self.d(pid, start_day),
                               stop_date=self.d(pid, stop_day), stop_reason=stop_reason))

    def surgery(self, pid, procedure, day, ibd_related=True):
        self._surg.append(dict(patient_id=pid, surgery_date=self.d(pid, day), procedure=procedure,
                               ibd_related=ibd_related))

    def visit(self, pid, day, hbi=None, **scores):
        row = dict(patient_id=pid, visit_date=self.d(pid, day))
        if hbi is not None:
            row.update(hbi_items(hbi))
        row.update(scores)
        self._visits.append(row)

    def lab(self, pid, test, day, value, qualifier=None, unit=None):
        self._labs.append(dict(patient_id=pid, sample_date=self.d(pid, day), test=test, value=float(value),
                               qualifier=qualifier, unit=unit or load_crf().canonical_unit(test)))

    def ae(self, pid, term, day, serious=False, led_to_discontinuation=False):
        self._aes.append(dict(patient_id=pid, onset_date=self.d(pid, day), term=term, serious=serious,
                              led_to_discontinuation=led_to_discontinuation))

    # ------------------------------------------------------- ready patients
    def dtt_cd(self, pid, baseline_hbi=9, baseline_ses=12, post=True, **kw):
        """A CD patient who is DTT (two failed mechanisms) with a baseline HBI, a baseline
        SES-CD and (``post``) one post-baseline visit: included under default settings."""
        self.patient(pid, diagnosis="CD", **kw)
        self.med(pid, "infliximab", -900, -600, "secondary_loss_of_response")
        self.med(pid, "vedolizumab", -500, -100, "primary_nonresponse")
        if baseline_hbi is not None:
            self.visit(pid, -7, hbi=baseline_hbi)
        if baseline_ses is not None:
            self.visit(pid, -20, ses_cd=baseline_ses)
        if post:
            self.visit(pid, 30, hbi=baseline_hbi if baseline_hbi is not None else 6)
        return pid

    def dtt_uc(self, pid, baseline=(3, 2, 3), post=True, **kw):
        """A UC patient who is DTT with a baseline adapted Mayo (stool, bleeding, endo)."""
        self.patient(pid, diagnosis="UC", **kw)
        self.med(pid, "adalimumab", -900, -600, "primary_nonresponse")
        self.med(pid, "tofacitinib", -500, -100, "secondary_loss_of_response")
        s, b, e = baseline
        self.visit(pid, -5, mayo_stool=s, mayo_bleeding=b)
        if e is not None:
            self.visit(pid, -30, mayo_endo=e)
        if post:
            self.visit(pid, 30, mayo_stool=s, mayo_bleeding=b)
        return pid

    # --------------------------------------------------------------- frames
    @property
    def patients(self) -> pd.DataFrame:
        df = pd.DataFrame(self._patients)
        for c in ("birth_date", "diagnosis_date", "upa_start_date", "upa_stop_date", "last_followup_date"):
            df[c] = pd.to_datetime(df[c])
        for c in BOOL_FIELDS:
            df[c] = df[c].astype("boolean")
        for c in ("height_cm", "weight_kg"):
            df[c] = df[c].astype(float)
        return df

    @property
    def medications(self) -> pd.DataFrame:
        cols = ["patient_id", "drug", "start_date", "stop_date", "stop_reason"]
        df = pd.DataFrame(self._meds, columns=cols)
        for c in ("start_date", "stop_date"):
            df[c] = pd.to_datetime(df[c])
        return self._with_center(df)

    @property
    def surgeries(self) -> pd.DataFrame:
        df = pd.DataFrame(self._surg, columns=["patient_id", "surgery_date", "procedure", "ibd_related"])
        df["surgery_date"] = pd.to_datetime(df["surgery_date"])
        df["ibd_related"] = df["ibd_related"].astype("boolean")
        return self._with_center(df)

    @property
    def assessments(self) -> pd.DataFrame:
        ints = [*HBI_ITEMS, "mayo_stool", "mayo_bleeding", "mayo_pga", "mayo_endo", "ses_cd", "upa_dose_mg"]
        df = pd.DataFrame(self._visits, columns=["patient_id", "visit_date", *ints, "rutgeerts"])
        df["visit_date"] = pd.to_datetime(df["visit_date"])
        for c in ints:
            df[c] = df[c].astype("Int64")
        df["rutgeerts"] = df["rutgeerts"].astype(object).where(df["rutgeerts"].notna(), None)
        return self._with_center(df)

    @property
    def labs(self) -> pd.DataFrame:
        df = pd.DataFrame(self._labs, columns=["patient_id", "sample_date", "test", "value", "qualifier", "unit"])
        df["sample_date"] = pd.to_datetime(df["sample_date"])
        df["value"] = df["value"].astype(float)
        return self._with_center(df)

    @property
    def adverse_events(self) -> pd.DataFrame:
        df = pd.DataFrame(self._aes, columns=["patient_id", "onset_date", "term", "serious", "led_to_discontinuation"])
        df["onset_date"] = pd.to_datetime(df["onset_date"])
        for c in ("serious", "led_to_discontinuation"):
            df[c] = df[c].astype("boolean")
        return self._with_center(df)

    def _with_center(self, df: pd.DataFrame) -> pd.DataFrame:
        centers = {p["patient_id"]: p["center"] for p in self._patients}
        df.insert(0, "center", df["patient_id"].map(centers).astype(object))
        return df

    # --------------------------------------------------------------- calls
    def dtt(self, s=None):
        from ibd_pipeline.cohort import dtt_criteria

        return dtt_criteria(self.patients, self.medications, self.surgeries, self.assessments,
                            s or settings(), load_crf())

    def eligibility(self, s=None):
        from ibd_pipeline.cohort import eligibility

        s = s or settings()
        return eligibility(self.patients, self.dtt(s), self.medications, self.assessments, self.labs,
                           self.surgeries, s, load_crf())

    def endpoints(self, s=None):
        from ibd_pipeline.endpoints import endpoints

        return endpoints(self.patients, self.medications, self.surgeries, self.assessments, self.labs,
                         s or settings(), load_crf())


def row(df: pd.DataFrame, **match) -> pd.Series:
    """The single row of ``df`` matching every column=value."""
    sel = df
    for k, v in match.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, f"{len(sel)} rows match {match}"
    return sel.iloc[0]


# ------------------------------------------------------------- helper checks
def test_helper_builds_core_shaped_typed_frames():
    st = Study()
    st.dtt_cd("P1")
    st.lab("P1", "CRP", -3, 5, "<")
    p, a = st.patients, st.assessments
    assert p["upa_start_date"].dtype == "datetime64[ns]"
    assert p["complex_perianal"].dtype == "boolean"
    assert a["hbi_pain"].dtype == "Int64"
    assert set(st.labs["unit"]) == {"mg/L"}
    assert (st.medications["center"] == "zcmu1").all()


def test_helper_ages_are_completed_years():
    from ibd_pipeline.clinical.records import completed_years

    st = Study()
    st.patient("A", age=17)
    st.patient("B", birth_date=START - pd.DateOffset(years=18))  # 18th birthday on day 0
    st.patient("C", birth_date=START - pd.DateOffset(years=18) + pd.Timedelta(days=1))  # day 1
    p = st.patients
    assert completed_years(p["birth_date"], p["upa_start_date"]).tolist() == [17, 18, 17]
