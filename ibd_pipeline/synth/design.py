"""The calibrated cohort design: what every synthetic patient *is*, before any date or value.

A *block* is a designed cohort of 122 screened patients whose counts reproduce the
published multicenter figures (``published_figures.yaml``) when the rules of
STUDY.md are applied exactly (eligibility order, windows, endpoint definitions,
treatment-emergent AEs, Table 1 groupings of ``study.yaml``). The counts are a fixed,
deterministic design; the seed only decides which slot gets which assignment and the
cosmetic choices (drugs within a class, sequences). ``n_patients`` other than 122 is served
by whole blocks plus a random part of one more block, so any size keeps the published
proportions (registry-size runs get realistic density, not exact figures).

Per-patient design keys (one ``dict`` per slot) are documented in :func:`design_block`.

Design notes (where STUDY.md leaves room, the design avoids the ambiguity):

* every included patient has exactly one visit (with clinical subscores *and* endoscopy)
  a few days from each target, never on a window edge; decoy visits are strictly farther;
* discontinuations fall between windows (never inside one), never before the induction
  target (that would be a short exposure), so "stopped before the time point" is
  unambiguous and the patient stays in N as a non-responder;
* remission and response are not nested in the published counts (CD month 6: 38 vs 35):
  remitters without response have a low baseline HBI (5 -> 3/4); UC remitters without
  endoscopic response have a baseline Mayo endoscopic subscore of 1;
* the published flow is internally inconsistent if read as patients: 8 + 1 + 23 + 2 + 10
  excluded = 44, but 122 - 80 = 42. The block keeps 122 screened, 80 included and every
  named exclusion reason; 8 patients are excluded as "other" and carry 10 named "other"
  reasons, two of them having two (``FLOW_NOTE``).
"""

from __future__ import annotations

import numpy as np

from ..config import DEFAULT_STUDY, load_published, published_path

TIMES = ("induction", "month6", "month12")
LAB_TIMES = ("baseline", "induction", "month6", "month12", "month18")
BLOCK_SIZE = 122

FLOW_NOTE = (
    "published flow: 8 + 1 + 23 + 2 + 10 excluded = 44, but 122 - 80 = 42. The design has 8 patients "
    "excluded as 'other' (first reason) carrying 10 named 'other' reasons (STUDY.md: 'Other, each reported "
    "by name'): the serious-infection and the liver/kidney exclusions also stopped UPA early for that event "
    "(second reason: short exposure)"
)

# --------------------------------------------------------------------------- targets
# The published figures the 122-patient block is calibrated to, read from the one copy of
# the published figures (``published_figures.yaml`` beside ``study.yaml``, which the
# report's "published vs derived" also reads), so that product code never reads the
# shared folder and the figures exist once.
def _n_of(pairs: list) -> list[int]:
    """[[n, N], ...] -> [n, ...]"""
    return [int(n) for n, _N in pairs]


def targets_from_published(pub: dict) -> dict:
    """The design targets (counts of the included patients) from the published figures."""
    base, flow = pub["baseline"], pub["flow"]
    prior = {k.removeprefix("prior_"): v for k, v in base.items() if k.startswith("prior_")}
    return {
        "included": dict(flow["by_diagnosis"]),
        # n at [induction, month 6, month 12]; N = every included patient
        "endpoints": {e: {dx: _n_of(v) for dx, v in per.items()} for e, per in pub["endpoints"].items()},
        # n normal at [baseline, induction, month 6, 12, 18]
        "biomarkers": {b: {dx: _n_of(v) for dx, v in per.items()} for b, per in pub["biomarkers"].items()},
        **{k: base[k] for k in ("male", "montreal_age", "cd_location", "cd_behavior", "cd_perianal", "uc_extent",
                                "eim_any", "ibd_surgery_history", "steroid_at_baseline", "concomitant_with_upa")},
        "eim": {k.removeprefix("eim_"): v for k, v in base.items() if k.startswith("eim_") and k != "eim_any"},
        "prior": prior,
        # published baseline means of the included patients (canonical units), by CRF lab code
        "baseline_means": {k.split("_")[0]: v for k, v in base["baseline_means"].items()},
    }


# the multicenter design is calibrated to the multicenter study's published figures, in
# whichever study's process it is imported
PUBLISHED = load_published(published_path(DEFAULT_STUDY))
TARGETS: dict = targets_from_published(PUBLISHED)

# Discontinuations (published: CD 11 = 8 before month 12 + 3 after; UC 2, both before
# month 12). Phase S_a: between the induction and month-6 windows; S_b: between the
# month-6 and month-12 windows; S_c: after the month-12 window.
STOPS = {
    "CD": {
        "S_a": ["inefficacy", "inefficacy", "adverse_event"],
        "S_b": ["inefficacy", "inefficacy", "inefficacy", "surgery", "patient_choice"],
        "S_c": ["inefficacy", "adverse_event", "other"],
    },
    "UC": {"S_a": ["inefficacy"], "S_b": ["adverse_event"]},
}
STOP_PHASE_TIMES = {None: 3, "S_c": 3, "S_b": 2, "S_a": 1}  # number of evaluable clinical time points

# What outcomes depend on (a realistic demo: the published associations can be
# recovered, roughly, from the observed covariates). The latent responsiveness g of an
# included patient is a linear predictor of the published multicenter Table 2
# (multivariable logistic model: odds ratios per year of age and for prior anti-integrin,
# prior anti-IL-12/23 or anti-IL-23 and IBD surgery history) plus logistic noise; the
# designed remission / response states go to the patients of highest g (exact counts).
# Discontinuation is more likely with baseline albumin <= 35 g/L (the single-center CD
# study's Cox HR 3.05) and, for inefficacy or surgery, with low g. Both read from the
# published figures.
OUTCOME_ODDS_RATIOS = {v["covariate"]: float(v["or"]) for v in PUBLISHED["predictors"].values()}
ALBUMIN_LOW_STOP_HR = float(PUBLISHED["single_center_cd"]["cox_multivariable"]["albumin_le_35"]["hr"])
ALBUMIN_LOW_SHARE = 0.15  # included patients designed with baseline albumin <= 35 g/L
# scale of g's logistic noise: the time-point noise N(0, 0.5) the states add makes the
# total latent variance that of a standard logistic (pi^2 / 3)
LATENT_SCALE = float(np.sqrt(max(np.pi**2 / 3 - 0.25, 0.1) * 3) / np.pi)
# inefficacy / surgery stoppers are drawn with weight exp(-STOP_G_WEIGHT * g): the
# non-responders stop, without letting g swamp the albumin effect
STOP_G_WEIGHT = 0.75

# Treatment-emergent AE term sets of the AE patients (published: CD 12 patients, UC 4;
# patients per term acne 5/2, infection 2/1, neutropenia 2/1, anemia 3/1, CK 1/0,
# dyslipidemia 5/4). The first CD set and the first UC set belong to the patients who
# stopped for an adverse event (their term ``AE_STOP_TERM`` led to discontinuation).
AE_SETS = {
    "CD": [
        ("infection",),  # S_a adverse-event stop
        ("acne",),  # S_c adverse-event stop
        ("acne", "dyslipidemia"),
        ("acne", "dyslipidemia"),
        ("acne", "anemia"),
        ("acne",),
        ("infection", "neutropenia"),
        ("neutropenia",),
        ("anemia", "dyslipidemia"),
        ("anemia",),
        ("ck_elevation", "dyslipidemia"),
        ("dyslipidemia",),
    ],
    "UC": [
        ("dyslipidemia", "acne", "infection"),  # S_b adverse-event stop
        ("dyslipidemia", "acne"),
        ("dyslipidemia", "neutropenia"),
        ("dyslipidemia", "anemia"),
    ],
}
AE_STOP_TERM = {("CD", "S_a"): "infection", ("CD", "S_c"): "acne", ("UC", "S_b"): "infection"}

# The excluded slots of one block: (category, detail, diagnosis). Categories follow the
# eligibility order of STUDY.md; every patient has exactly the one designed reason.
EXCLUDED: list[tuple[str, str, str]] = (
    [
        ("not_dtt", "same_class", "CD"),
        ("not_dtt", "il_pathway", "CD"),
        ("not_dtt", "intolerance", "CD"),
        ("not_dtt", "one_resection", "CD"),
        ("not_dtt", "non_advanced", "CD"),
        ("not_dtt", "same_class", "UC"),
        ("not_dtt", "intolerance", "UC"),
        ("not_dtt", "elective", "UC"),
        ("under_18", "child_resection", "CD"),
    ]
    + [("insufficient_data", "no_baseline", "CD")] * 7
    + [("insufficient_data", "no_baseline", "UC")] * 5
    + [("insufficient_data", "no_followup", "CD")] * 7
    + [("insufficient_data", "no_followup", "UC")] * 4
    + [
        ("concomitant_biologic", "overlap", "CD"),
        ("concomitant_biologic", "added", "UC"),
        ("other", "ibdu", "IBDU"),
        ("other", "pregnancy_or_breastfeeding", "UC"),
        ("other", "serious_infection", "CD"),
        ("other", "malignancy", "UC"),
        ("other", "liver_or_kidney", "CD"),
        ("other", "prior_total_colectomy", "UC"),
        ("other", "short_exposure", "CD"),
        ("other", "short_exposure", "UC"),
    ]
)

# Advanced-therapy mechanisms (crf.yaml classes; anti-IL-12/23 and anti-IL-23 are one
# mechanism by default, study.yaml dtt.mechanism_groups) and their drugs by diagnosis.
MECH_DRUGS = {
    "anti_tnf": {
        "CD": (["infliximab", "adalimumab"], [0.6, 0.4]),
        "UC": (["infliximab", "adalimumab", "golimumab"], [0.6, 0.25, 0.15]),
    },
    "il": {"CD": (["ustekinumab", "risankizumab"], [0.8, 0.2]), "UC": (["ustekinumab", "mirikizumab"], [0.6, 0.4])},
    "integrin": {"CD": (["vedolizumab"], [1.0]), "UC": (["vedolizumab"], [1.0])},
    "jak": {"CD": (["filgotinib", "tofacitinib"], [0.5, 0.5]), "UC": (["tofacitinib", "filgotinib"], [0.8, 0.2])},
    "il17a": {"CD": (["secukinumab"], [1.0]), "UC": (["secukinumab"], [1.0])},
}
SECOND_DRUG = {
    "infliximab": "adalimumab",
    "adalimumab": "infliximab",
    "golimumab": "infliximab",
    "ustekinumab": "risankizumab",
    "mirikizumab": "ustekinumab",
    "risankizumab": "ustekinumab",
}
FAILURE = ("primary_nonresponse", "secondary_loss_of_response")

# Endpoint flags of each designed state: (sf remission, response[, endo remission, endo response])
CD_CLIN = {"BH": (True, True), "RO": (True, False), "PO": (False, True), "NE": (False, False), "NR": (False, False)}
CD_ENDO = {"ER": (True, True), "EP": (False, True), "EN": (False, False), "NR": (False, False)}
UC_STATE = {
    "S1": (True, True, True, True),  # Mayo endo 0
    "S2": (True, True, False, True),  # endo 3 -> 1
    "S3": (True, True, False, False),  # endo 1 -> 1 (baseline endo subscore 1)
    "S4": (False, True, False, False),  # response without remission
    "S5": (False, False, False, False),
    "NR": (False, False, False, False),
}


# ---------------------------------------------------------------- small helpers
def _choice(rng, items, p=None):
    if p is None:
        return items[int(rng.random() * len(items))]
    return items[min(int(np.searchsorted(np.cumsum(p), rng.random() * sum(p), side="right")), len(items) - 1)]


def _subset(rng, pool, k, must=()):
    """``k`` members of ``pool`` containing every ``must`` member (which must fit)."""
    must = [m for m in must if m in pool]
    if len(must) > k:
        raise ValueError("design constraint cannot be met")
    rest = [p for p in pool if p not in set(must)]
    rng.shuffle(rest)
    return set(must) | set(rest[: k - len(must)])


def _fewest_first(rng, ids, counts):
    """Memberships with exact counts, each next member the one with fewest so far."""
    member = {i: [] for i in ids}
    for name, k in sorted(counts.items(), key=lambda kv: -kv[1]):
        load = np.array([len(member[i]) for i in ids], dtype=float) + rng.random(len(ids))
        for j in np.argsort(load, kind="stable")[:k]:
            member[ids[j]].append(name)
    return member


def _advanced_sequence(rng, diag, mechs, failed):
    """Chronological advanced-therapy episodes [(drug, stop_reason)] for mechanisms
    ``mechs`` of which ``failed`` failed (primary non-response / loss of response)."""
    order = [m for m in mechs if m == "anti_tnf"] + [m for m in rng.permutation([m for m in mechs if m != "anti_tnf"])]
    seq = []
    for m in order:
        names, p = MECH_DRUGS[m][diag]
        drug = _choice(rng, names, p)
        if drug in SECOND_DRUG and rng.random() < (0.3 if m == "anti_tnf" else 0.15):
            seq.append((drug, _choice(rng, ["secondary_loss_of_response", "intolerance"], [0.6, 0.4])))
            drug = SECOND_DRUG[drug]
        if m in failed:
            seq.append((drug, _choice(rng, list(FAILURE), [0.4, 0.6])))
        else:
            seq.append((drug, _choice(rng, ["intolerance", "other", "elective"], [0.6, 0.2, 0.2])))
    return seq


def _base_slot(diag, category, detail=""):
    return {
        "category": category,
        "detail": detail,
        "diagnosis": diag,
        "included": category == "included",
        "stop_phase": None,
        "stop_reason": None,
        "clin": None,
        "endo": None,
        "steroid_var": (),
        "cd_low": False,
        "uc_e0": 3,
        "uc_need7": False,
        "crp": None,
        "fc": None,
        "g": 0.0,
        "alb_low": False,
        "mechanisms": (),
        "male": True,
        "montreal": None,
        "age": 40,
        "dx_age": 30,
        "cd_location": None,
        "cd_upper_gi": None,
        "cd_behavior": None,
        "cd_perianal": None,
        "complex_perianal": False,
        "uc_extent": None,
        "eim": (False, False, False, False),
        "psychosocial": False,
        "ileal_pouch": False,
        "pouchitis": False,
        "pregnant": False,
        "serious_infection": False,
        "malignancy": False,
        "lab_excl": None,
        "advanced": [],
        "conv": {},
        "surgeries": [],
        "nonibd_surgery": False,
        "ae_terms": (),
        "ae_stop_term": None,
        "post_switch": False,
        "conc_biologic": None,
        "insufficient": None,
        "other_reasons": (detail,) if category == "other" else (),
        "dtt": (),
        "rutgeerts": False,
    }


def _montreal_ages(rng, group):
    """(age at UPA start, age at diagnosis) in completed years for a CD Montreal age group
    (published CD age median 34 [29-41.8], disease duration median 7 [5-10.8])."""
    if group == "A1":
        dx = int(rng.integers(12, 17))
        dur = int(rng.integers(9, 19))
    elif group == "A3":
        dx = int(rng.integers(41, 48))
        dur = int(rng.integers(1, 6))
    else:
        age = int(np.clip(round(rng.normal(33, 5)), 22, 44))
        lo = max(2, age - 40)
        hi = max(lo, min(13, age - 17))
        dur = int(rng.integers(lo, hi + 1))
        return age, age - dur
    return dx + dur, dx


def _uc_ages(rng):
    age = int(np.clip(round(rng.normal(49.9, 14.2)), 21, 82))
    dur = int(np.clip(round(np.exp(rng.normal(np.log(6), 0.75))), 1, min(30, age - 14)))
    return age, age - dur


def _random_cd_phenotype(rng, s):
    s["cd_location"] = _choice(rng, ["L1", "L2", "L3", "L4"], [0.25, 0.2, 0.5, 0.05])
    s["cd_upper_gi"] = bool(s["cd_location"] == "L4" or rng.random() < 0.08)
    s["cd_behavior"] = _choice(rng, ["B1", "B2", "B3"], [0.3, 0.4, 0.3])
    s["cd_perianal"] = bool(rng.random() < 0.6)


# ------------------------------------------------------------------ included
def outcome_covariates(slot: dict) -> dict[str, float]:
    """The designed baseline covariates of OUTCOME_ODDS_RATIOS for one slot (as the
    pipeline derives them: age at UPA start, any prior episode of the class, any
    IBD-related surgery before UPA)."""
    mechs = slot.get("mechanisms") or ()
    return {"age": float(slot["age"]), "prior_anti_integrin": float("integrin" in mechs),
            "prior_anti_il12_23_or_il23": float("il" in mechs), "surgery_history": float(bool(slot["surgeries"]))}


def _linear_predictor(S) -> np.ndarray:
    """log-odds of OUTCOME_ODDS_RATIOS for each slot, centred on the diagnosis's mean."""
    X = np.array([[outcome_covariates(s)[k] for k in OUTCOME_ODDS_RATIOS] for s in S], dtype=float)
    lp = X @ np.log(np.array(list(OUTCOME_ODDS_RATIOS.values())))
    return lp - lp.mean()


def _included_slots(rng, S, dx):
    """The designed outcomes of the included patients of one diagnosis, whose covariates
    are designed: baseline albumin <= 35 g/L (``alb_low``), the latent responsiveness g
    (the Table 2 linear predictor plus logistic noise), and the designed stops (STUDY.md
    "Failures and gaps"), each drawn with weight ALBUMIN_LOW_STOP_HR ** alb_low, times
    exp(-STOP_G_WEIGHT g) for inefficacy and surgery; those stoppers respond worse
    afterwards (g - 3). ev_by_t[t] = patients still on UPA at the t-th clinical time point."""
    n = len(S)
    ids = list(range(n))
    alb = _subset(rng, ids, int(round(ALBUMIN_LOW_SHARE * n)))
    for i in ids:
        S[i]["alb_low"] = i in alb
    g = _linear_predictor(S) + rng.logistic(0.0, LATENT_SCALE, size=n)
    w_alb = np.array([ALBUMIN_LOW_STOP_HR if S[i]["alb_low"] else 1.0 for i in ids])
    free = np.ones(n, bool)
    for phase, reasons in STOPS[dx].items():
        for r in reasons:
            w = w_alb * (np.exp(-STOP_G_WEIGHT * (g - g.max())) if r in ("inefficacy", "surgery") else 1.0) * free
            i = int(rng.choice(n, p=w / w.sum()))
            S[i]["stop_phase"], S[i]["stop_reason"] = phase, r
            free[i] = False
    for i in ids:
        if S[i]["stop_reason"] in ("inefficacy", "surgery"):
            g[i] -= 3.0
        S[i]["g"] = float(g[i])
    ev_by_t = [[i for i in ids if STOP_PHASE_TIMES[S[i]["stop_phase"]] > t] for t in range(3)]
    return ids, g, ev_by_t


def _design_cd(rng, n):
    """The included CD patients (STUDY.md "Endpoints", CD)."""
    T = TARGETS
    S = [_base_slot("CD", "included") for _ in range(n)]
    _design_covariates_cd(rng, S)
    ids, g, ev_by_t = _included_slots(rng, S, "CD")
    clin = {i: ["NR"] * 3 for i in ids}
    endo = {i: ["NR"] * 3 for i in ids}
    counts = []
    for t in range(3):
        R = T["endpoints"]["sf_clinical_remission"]["CD"][t]
        P = T["endpoints"]["clinical_response"]["CD"][t]
        RO = max(R - P, 0) + 1
        BH, PO = R - RO, P - (R - RO)
        counts.append((RO, BH, PO))
    n_low = max(c[0] for c in counts)
    always = [i for i in ids if STOP_PHASE_TIMES[S[i]["stop_phase"]] == 3]
    low = _subset(rng, always, n_low)
    for i in low:
        S[i]["cd_low"] = True
    for t in range(3):
        RO, BH, PO = counts[t]
        ev = ev_by_t[t]
        noisy = {i: g[i] + rng.normal(0, 0.5) for i in ev}
        ro = sorted([i for i in ev if i in low], key=lambda i: -noisy[i])[:RO]
        rest = sorted([i for i in ev if i not in ro], key=lambda i: -noisy[i])
        bh = rest[:BH]
        po = [i for i in rest[BH:] if i not in low][:PO]
        if len(ro) != RO or len(bh) != BH or len(po) != PO:
            raise RuntimeError("CD clinical design infeasible")
        for i in ev:
            clin[i][t] = "BH" if i in bh else "RO" if i in ro else "PO" if i in po else "NE"
        if t > 0 and po:  # one response-only patient realised as HBI <= 4 while on steroids
            S[po[0]]["steroid_var"] = S[po[0]]["steroid_var"] + (TIMES[t],)
        ER = T["endpoints"]["endoscopic_remission"]["CD"][t]
        EP = T["endpoints"]["endoscopic_response"]["CD"][t] - ER
        order = sorted(ev, key=lambda i: -(g[i] + rng.normal(0, 0.7)))
        for j, i in enumerate(order):
            endo[i][t] = "ER" if j < ER else "EP" if j < ER + EP else "EN"
    for i in ids:
        S[i]["clin"], S[i]["endo"] = tuple(clin[i]), tuple(endo[i])
    _design_labs(rng, S, g, "CD")
    _design_common(rng, S, "CD")
    return S


def _design_uc(rng, n):
    """The included UC patients (STUDY.md "Endpoints", UC: adapted Mayo)."""
    T = TARGETS
    S = [_base_slot("UC", "included") for _ in range(n)]
    _design_covariates_uc(rng, S)
    ids, g, ev_by_t = _included_slots(rng, S, "UC")
    plan = []
    for t in range(3):
        R = T["endpoints"]["sf_clinical_remission"]["UC"][t]
        P = T["endpoints"]["clinical_response"]["UC"][t]
        ER = T["endpoints"]["endoscopic_remission"]["UC"][t]
        EP = T["endpoints"]["endoscopic_response"]["UC"][t]
        s2 = min(EP - ER, R - ER)
        s3 = R - ER - s2
        s4 = P - R
        if min(s2, s3, s4) < 0 or EP - ER - s2 != 0:
            raise RuntimeError("UC endpoint targets outside the design's state space")
        plan.append((ER, s2, s3, s4))
    always = [i for i in ids if STOP_PHASE_TIMES[S[i]["stop_phase"]] == 3]
    low = _subset(rng, always, max(p[2] for p in plan))  # baseline Mayo endoscopic subscore 1
    st = {i: ["NR"] * 3 for i in ids}
    for t in range(3):
        s1n, s2n, s3n, s4n = plan[t]
        ev = ev_by_t[t]
        noisy = {i: g[i] + rng.normal(0, 0.5) for i in ev}
        s3 = sorted([i for i in ev if i in low], key=lambda i: -noisy[i])[:s3n]
        rest = sorted([i for i in ev if i not in s3], key=lambda i: -noisy[i])
        s1 = rest[:s1n]
        rest = rest[s1n:]
        s2 = [i for i in rest if i not in low][:s2n]
        rest = [i for i in rest if i not in s2]
        s4 = rest[:s4n]
        if len(s3) != s3n or len(s2) != s2n or len(s4) != s4n:
            raise RuntimeError("UC design infeasible")
        for i in ev:
            st[i][t] = "S1" if i in s1 else "S2" if i in s2 else "S3" if i in s3 else "S4" if i in s4 else "S5"
    for i in ids:
        S[i]["clin"] = tuple(st[i])
        S[i]["uc_e0"] = 1 if i in low else 3 if "S2" in st[i] else (3 if rng.random() < 0.7 else 2)
        S[i]["uc_need7"] = "S4" in st[i]
    _design_labs(rng, S, g, "UC")
    _design_common(rng, S, "UC")
    return S


def _design_labs(rng, S, g, diag):
    """CRP < 8 mg/L and FC < 150 ug/g at the five lab time points, exact counts."""
    n = len(S)
    flags = {"crp": np.zeros((n, 5), bool), "fc": np.zeros((n, 5), bool)}
    for key, name in (("crp", "crp_normal"), ("fc", "fc_normal")):
        for t in range(5):
            k = TARGETS["biomarkers"][name][diag][t]
            score = rng.normal(size=n) if t == 0 else g + rng.normal(0, 1.0, size=n)
            flags[key][np.argsort(-score, kind="stable")[:k], t] = True
    for i, s in enumerate(S):
        s["crp"] = tuple(bool(x) for x in flags["crp"][i])
        s["fc"] = tuple(bool(x) for x in flags["fc"][i])


def _assign_list(rng, S, key, counts, ids=None):
    ids = list(range(len(S))) if ids is None else list(ids)
    values = [v for v, c in counts.items() for _ in range(c)]
    if len(values) != len(ids):
        raise ValueError(f"{key}: counts {len(values)} != patients {len(ids)}")
    perm = rng.permutation(len(ids))
    for j, v in zip(perm, values):
        S[ids[j]][key] = v


def _design_eims(rng, S, diag):
    T = TARGETS
    ids = list(range(len(S)))
    anyset = sorted(_subset(rng, ids, T["eim_any"][diag]))
    counts = {k: T["eim"][k][diag] for k in ("eye", "skin", "joint", "other")}
    member = _fewest_first(rng, anyset, counts)
    for i in ids:
        m = member.get(i, [])
        S[i]["eim"] = tuple(k in m for k in ("eye", "skin", "joint", "other"))


def _design_mechanisms(rng, S, diag):
    """Prior advanced-therapy mechanisms with exact Table 1 counts and the DTT route."""
    P = TARGETS["prior"]
    counts = {
        "anti_tnf": P["anti_tnf"][diag],
        "il": P["anti_il12_23_or_il23"][diag],
        "integrin": P["anti_integrin"][diag],
        "jak": P["jak"][diag],
        "il17a": P["anti_il17a"][diag],
    }
    ids = list(range(len(S)))
    member = _fewest_first(rng, ids, {k: v for k, v in counts.items() if v})
    multi = [i for i in ids if len(member[i]) >= 2]
    c5 = int(rng.choice(multi)) if multi else None  # one patient DTT by psychosocial comorbidity only
    singles = []
    for i in ids:
        mechs = member[i]
        if i == c5:
            failed = {mechs[0]} if "anti_tnf" not in mechs else {"anti_tnf"}
            S[i]["psychosocial"] = True
            S[i]["dtt"] = ("psychosocial",)
        elif len(mechs) >= 2:
            failed = set(mechs)
            if len(mechs) >= 3 and rng.random() < 0.4:
                failed.discard(mechs[int(rng.integers(1, len(mechs)))])
            S[i]["dtt"] = ("failed_mechanisms",)
        else:
            failed = set(mechs) if rng.random() < 0.7 else set()
            singles.append(i)
        S[i]["advanced"] = _advanced_sequence(rng, diag, mechs, failed)
        S[i]["mechanisms"] = tuple(mechs)
    return singles


def _design_covariates_cd(rng, S):
    """CD Table 1 characteristics with exact counts (published_figures.yaml `baseline`)."""
    T = TARGETS
    n = len(S)
    ids = list(range(n))
    for i in _subset(rng, ids, n - T["male"]["CD"]):
        S[i]["male"] = False
    _assign_list(rng, S, "montreal", T["montreal_age"])
    for s in S:
        s["age"], s["dx_age"] = _montreal_ages(rng, s["montreal"])
    _assign_list(rng, S, "cd_location", T["cd_location"])
    _assign_list(rng, S, "cd_behavior", T["cd_behavior"])
    for s in S:
        s["cd_upper_gi"] = bool(s["cd_location"] == "L4" or rng.random() < 0.08)
    singles = _design_mechanisms(rng, S, "CD")
    # DTT of single-mechanism patients: complex perianal disease (criterion 4) or
    # recurrence after >= 2 bowel resections with active disease (criterion 2).
    c4 = [i for j, i in enumerate(singles) if j % 2 == 0]
    c2 = [i for j, i in enumerate(singles) if j % 2 == 1]
    perianal = _subset(rng, ids, T["cd_perianal"], must=c4)
    for i in ids:
        S[i]["cd_perianal"] = i in perianal
    for i in perianal:
        if i in c4 or rng.random() < 0.3:
            S[i]["complex_perianal"] = True
    for i in c4:
        S[i]["dtt"] = ("complex_perianal",)
    for i in c2:
        S[i]["dtt"] = ("resections",)
    surg = _subset(rng, ids, T["ibd_surgery_history"]["CD"], must=c2)
    for i in ids:
        s = S[i]
        procs = []
        if i in surg:
            if i in c2:
                procs += ["ileocecal_resection", "small_bowel_resection"]
            elif s["cd_behavior"] in ("B2", "B3") and rng.random() < 0.6:
                procs += [
                    _choice(
                        rng, ["ileocecal_resection", "small_bowel_resection", "segmental_colectomy"], [0.6, 0.25, 0.15]
                    )
                ]
                if rng.random() < 0.15:
                    procs.append(
                        "small_bowel_resection" if procs[0] != "small_bowel_resection" else "ileocecal_resection"
                    )
            if s["cd_perianal"] and (not procs or rng.random() < 0.5):
                procs += [
                    _choice(
                        rng,
                        ["seton_placement", "perianal_fistula_surgery", "perianal_abscess_drainage"],
                        [0.4, 0.35, 0.25],
                    )
                ]
            if not procs:
                procs = [_choice(rng, ["ileocecal_resection", "stricturoplasty"], [0.7, 0.3])]
        s["surgeries"] = procs
        s["rutgeerts"] = any(p in ("ileocecal_resection", "small_bowel_resection") for p in procs)
        s["nonibd_surgery"] = bool(rng.random() < 0.08)
    _design_eims(rng, S, "CD")
    _design_conventional(rng, S, "CD")


def _design_covariates_uc(rng, S):
    T = TARGETS
    n = len(S)
    ids = list(range(n))
    for i in _subset(rng, ids, n - T["male"]["UC"]):
        S[i]["male"] = False
    for s in S:
        s["age"], s["dx_age"] = _uc_ages(rng)
    _assign_list(rng, S, "uc_extent", T["uc_extent"])
    _design_mechanisms(rng, S, "UC")
    surg = _subset(rng, ids, T["ibd_surgery_history"]["UC"])
    for i in ids:
        S[i]["surgeries"] = (
            [_choice(rng, ["segmental_colectomy", "perianal_abscess_drainage", "other"], [0.3, 0.3, 0.4])]
            if i in surg
            else []
        )
        S[i]["nonibd_surgery"] = bool(rng.random() < 0.08)
    _design_eims(rng, S, "UC")
    _design_conventional(rng, S, "UC")


def _design_conventional(rng, S, diag):
    """Conventional drug history with exact Table 1 counts (study.yaml baseline.prior_drug_groups):
    immunosuppressants (thiopurine, methotrexate, calcineurin, tripterygium), glucocorticoids
    (systemic + budesonide; steroid at baseline = a systemic episode covering day 0, some
    started on day 0 so not 'prior'), EEN, aminosalicylates, concomitant thalidomide/mesalazine."""
    T = TARGETS
    P = T["prior"]
    ids = list(range(len(S)))
    conv = {i: {} for i in ids}
    imm = _subset(rng, ids, P["immunosuppressant"][diag])
    mtx = _subset(rng, sorted(imm), P["methotrexate"][diag])
    tacro = _subset(rng, sorted(imm), P["tacrolimus"][diag])
    trip = _subset(rng, sorted(imm - tacro), P["tripterygium"][diag])
    for i in imm:
        c = conv[i]
        c["mtx"], c["tacro"], c["trip"] = i in mtx, i in tacro, i in trip
        c["thiopurine"] = (not (c["mtx"] or c["tacro"] or c["trip"])) or rng.random() < 0.5
        c["cyclo"] = diag == "UC" and rng.random() < 0.25
    # glucocorticoids
    bl = T["steroid_at_baseline"][diag]
    gc = P["glucocorticoid"][diag]
    day0 = max(bl - gc, 0) + 2
    before = bl - day0
    only = gc - before
    bl_set = _subset(rng, ids, bl)
    day0_set = _subset(rng, sorted(bl_set), day0)
    only_set = _subset(rng, [i for i in ids if i not in bl_set], only)
    for i in ids:
        conv[i]["steroid_bl"] = ("day0" if i in day0_set else "before") if i in bl_set else None
        conv[i]["gc_prior"] = (
            ("systemic" if rng.random() < 0.6 else "topical")
            if i in only_set
            else ("systemic" if (i in bl_set and i not in day0_set and rng.random() < 0.3) else None)
        )
    for i in _subset(rng, ids, P["een"][diag]):
        conv[i]["een"] = True
    asa = _subset(rng, ids, P["aminosalicylate"][diag])
    conc_m = _subset(rng, sorted(asa), T["concomitant_with_upa"]["mesalazine"][diag])
    for i in asa:
        conv[i]["asa"] = "conc" if i in conc_m else "prior"
    conc_t = _subset(rng, ids, T["concomitant_with_upa"]["thalidomide"][diag])
    for i in ids:
        if i in conc_t:
            conv[i]["thal"] = "conc"
        elif diag == "CD" and rng.random() < 0.15:
            conv[i]["thal"] = "prior"
        S[i]["conv"] = conv[i]


def _design_common(rng, S, diag):
    """AE term sets, post-stop switches, intercurrent details common to included patients."""
    ids = list(range(len(S)))
    sets = list(AE_SETS[diag])
    # AE stoppers first
    stoppers = {(s["stop_phase"]): i for i, s in enumerate(S) if s["stop_reason"] == "adverse_event"}
    used = set()
    j = 0
    for (d, phase), term in AE_STOP_TERM.items():
        if d != diag:
            continue
        i = stoppers[phase]
        S[i]["ae_terms"], S[i]["ae_stop_term"] = sets[j], term
        used.add(i)
        j += 1
    rest = [i for i in ids if i not in used]
    rng.shuffle(rest)
    for setv, i in zip(sets[j:], rest):
        S[i]["ae_terms"] = setv
    for s in S:
        s["post_switch"] = s["stop_reason"] in ("inefficacy", "surgery")
        if not s["dtt"]:
            s["dtt"] = ("failed_mechanisms",)


# ------------------------------------------------------------------- excluded
def _design_excluded(rng, category, detail, diag):
    """One excluded patient whose *first* eligibility failure is ``category`` (STUDY.md
    "Inclusion and exclusion") and who meets every earlier criterion."""
    s = _base_slot(diag, category, detail)
    s["g"] = float(rng.normal())
    s["male"] = bool(rng.random() < 0.6)
    if diag == "CD":
        _random_cd_phenotype(rng, s)
        s["age"], s["dx_age"] = _montreal_ages(rng, _choice(rng, ["A1", "A2", "A3"], [0.15, 0.65, 0.2]))
        s["clin"] = tuple(_choice(rng, ["BH", "PO", "NE"], [0.4, 0.2, 0.4]) for _ in TIMES)
        s["endo"] = tuple(_choice(rng, ["ER", "EP", "EN"], [0.3, 0.3, 0.4]) for _ in TIMES)
    elif diag == "UC":
        s["uc_extent"] = _choice(rng, ["E1", "E2", "E3"], [0.2, 0.35, 0.45])
        s["age"], s["dx_age"] = _uc_ages(rng)
        s["clin"] = tuple(_choice(rng, ["S1", "S2", "S4", "S5"], [0.35, 0.15, 0.1, 0.4]) for _ in TIMES)
        s["uc_e0"], s["uc_need7"] = 3, True
    else:
        s["age"], s["dx_age"] = _uc_ages(rng)
    c = {}
    if rng.random() < 0.5:
        c["asa"] = "prior"
    if rng.random() < 0.4:
        c["thiopurine"] = True
    if rng.random() < 0.4:
        c["gc_prior"] = "systemic"
    if rng.random() < 0.3:
        c["steroid_bl"] = "before"
    if diag == "CD" and rng.random() < 0.3:
        c["een"] = True
    s["conv"] = c
    second = {
        "CD": ["ustekinumab", "vedolizumab", "risankizumab"],
        "UC": ["vedolizumab", "ustekinumab", "tofacitinib"],
        "IBDU": ["vedolizumab", "ustekinumab"],
    }[diag]
    standard = [
        (_choice(rng, ["infliximab", "adalimumab"]), _choice(rng, list(FAILURE))),
        (_choice(rng, second), _choice(rng, list(FAILURE))),
    ]
    s["advanced"] = standard
    s["dtt"] = ("failed_mechanisms",)
    if category == "not_dtt":
        s["dtt"] = ()
        s["advanced"] = {
            ("same_class", "CD"): [("infliximab", "primary_nonresponse"), ("adalimumab", "secondary_loss_of_response")],
            ("same_class", "UC"): [("infliximab", "secondary_loss_of_response"), ("golimumab", "primary_nonresponse")],
            ("il_pathway", "CD"): [
                ("adalimumab", "intolerance"),
                ("ustekinumab", "secondary_loss_of_response"),
                ("risankizumab", "primary_nonresponse"),
            ],
            ("intolerance", "CD"): [("infliximab", "secondary_loss_of_response"), ("vedolizumab", "intolerance")],
            ("intolerance", "UC"): [("infliximab", "primary_nonresponse"), ("tofacitinib", "intolerance")],
            ("one_resection", "CD"): [("infliximab", "primary_nonresponse")],
            ("non_advanced", "CD"): [("infliximab", "secondary_loss_of_response")],
            ("elective", "UC"): [("vedolizumab", "secondary_loss_of_response"), ("infliximab", "elective")],
        }[(detail, diag)]
        if detail == "one_resection":
            s["surgeries"] = ["ileocecal_resection"]
            s["clin"] = ("NE", "NE", "NE")
            s["cd_low"] = False
        if detail == "non_advanced":
            c["thiopurine"] = "failed"
        if diag == "CD":
            s["complex_perianal"] = False
    elif category == "under_18":
        s["age"], s["dx_age"] = 16, 13
        s["montreal"] = "A1"
        s["advanced"] = [("infliximab", "secondary_loss_of_response"), ("adalimumab", "intolerance")]
        s["surgeries"] = ["ileocecal_resection"]
        s["rutgeerts"] = True
        s["dtt"] = ("resections",)
        s["clin"] = ("BH", "BH", "BH")
    elif category == "insufficient_data":
        s["insufficient"] = detail
    elif category == "concomitant_biologic":
        s["conc_biologic"] = ("vedolizumab", "overlap") if detail == "overlap" else ("ustekinumab", "added")
        s["advanced"] = (
            [("infliximab", "primary_nonresponse"), ("ustekinumab", "secondary_loss_of_response")]
            if detail == "overlap"
            else [("infliximab", "secondary_loss_of_response"), ("vedolizumab", "primary_nonresponse")]
        )
    elif category == "other":
        if detail == "pregnancy_or_breastfeeding":
            s["male"] = False
            s["age"], s["dx_age"] = int(rng.integers(25, 36)), int(rng.integers(18, 24))
            s["pregnant"] = True
        elif detail == "serious_infection":
            s["serious_infection"] = True
            # stopped early for that infection: a second named other reason (short exposure)
            s["stop_phase"], s["stop_reason"], s["ae_stop_term"] = "short", "adverse_event", "infection"
            s["other_reasons"] = ("serious_infection", "short_exposure")
        elif detail == "malignancy":
            s["malignancy"] = True
        elif detail == "liver_or_kidney":
            s["lab_excl"] = _choice(rng, ["ALT", "AST", "EGFR"])
            s["stop_phase"], s["stop_reason"] = "short", "adverse_event"
            s["ae_stop_term"] = "other" if s["lab_excl"] == "EGFR" else "liver_enzyme_elevation"
            s["other_reasons"] = ("liver_or_kidney", "short_exposure")
        elif detail == "prior_total_colectomy":
            s["advanced"] = [("infliximab", "secondary_loss_of_response")]
            s["surgeries"] = ["total_proctocolectomy", "ipaa"]
            s["ileal_pouch"] = s["pouchitis"] = True
            s["dtt"] = ("pouchitis",)
        elif detail == "short_exposure":
            if diag == "CD":
                s["stop_phase"], s["stop_reason"] = "short", _choice(rng, ["adverse_event", "patient_choice"])
            else:
                s["stop_phase"] = "recent"
    if diag == "CD" and s["dtt"] == ("failed_mechanisms",) and s["complex_perianal"]:
        s["dtt"] = ("failed_mechanisms", "complex_perianal")
    if diag == "CD" and category != "not_dtt" and s["cd_perianal"] and rng.random() < 0.25:
        s["complex_perianal"] = True
    return s


# ---------------------------------------------------------------------- block
def design_block(rng: np.random.Generator) -> list[dict]:
    """One calibrated block of 122 screened patients (a list of slot dicts, shuffled).

    Keys of a slot: ``category`` (included, not_dtt, under_18, insufficient_data,
    concomitant_biologic, other), ``detail`` (the named other reason, the kind of
    insufficiency ...), ``diagnosis``; ``stop_phase``/``stop_reason`` (discontinuation
    design); ``clin``/``endo`` (designed endpoint state per clinical time point);
    ``crp``/``fc`` (normal at each lab time point); Table 1 characteristics (``male``,
    ``montreal``, ``age``, ``dx_age``, Montreal codes, ``eim``), drug history
    (``advanced`` = [(drug, stop_reason)], ``conv`` flags), ``surgeries`` before UPA,
    ``ae_terms``, ``dtt`` (the IOIBD criteria designed to hold); ``mechanisms`` (prior
    advanced mechanisms), ``g`` (latent responsiveness, OUTCOME_ODDS_RATIOS) and
    ``alb_low`` (baseline albumin <= 35 g/L designed).
    """
    slots = _design_cd(rng, TARGETS["included"]["CD"]) + _design_uc(rng, TARGETS["included"]["UC"])
    slots += [_design_excluded(rng, c, d, dg) for c, d, dg in EXCLUDED]
    assert len(slots) == BLOCK_SIZE
    order = rng.permutation(len(slots))
    return [slots[i] for i in order]


def design_cohort(seed_rng_factory, n_patients: int) -> list[dict]:
    """``n_patients`` slots: whole calibrated blocks plus a random part of one more.

    ``seed_rng_factory(b)`` gives the random stream of block ``b``.
    """
    out: list[dict] = []
    b = 0
    while len(out) < n_patients:
        rng = seed_rng_factory(b)
        block = design_block(rng)
        need = n_patients - len(out)
        if need < BLOCK_SIZE:
            block = [block[i] for i in sorted(rng.choice(BLOCK_SIZE, size=need, replace=False))]
        for s in block:
            s["block"] = b
        out += block
        b += 1
    return out


def designed_endpoints(slot: dict) -> dict | None:
    """The endpoint flags the design intends for an included patient, per time point."""
    if not slot["included"]:
        return None
    out = {}
    for t, name in enumerate(TIMES):
        if slot["diagnosis"] == "CD":
            rem, resp = CD_CLIN[slot["clin"][t]]
            erem, eresp = CD_ENDO[slot["endo"][t]]
        else:
            rem, resp, erem, eresp = UC_STATE[slot["clin"][t]]
        out[name] = {
            "sf_clinical_remission": rem,
            "clinical_response": resp,
            "endoscopic_remission": erem,
            "endoscopic_response": eresp,
            "non_responder": slot["clin"][t] == "NR",
        }
    return out
