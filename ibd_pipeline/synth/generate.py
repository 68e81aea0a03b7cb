"""``generate_deliveries``: round A and B files of every center + the ground truth."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import load_centers, load_crf, load_settings
from ._util import day_of, largest_remainder, rng_for
from .cohort import realize
from .design import BLOCK_SIZE, FLOW_NOTE, design_cohort, designed_endpoints
from .invalid import build_invalid, insert_rows, row_location
from .names import chinese_names, mobile_numbers, record_numbers
from .roundb import make_round_b
from .truth import write_truth_json, write_truth_tables
from .units import convert_labs
from .writers import BackgroundWriters, CenterFormatter, file_name, sheet_names, write_csv, write_xlsx

# Default split of the screened patients over the centers (published: 122 over three
# hospitals; 50/40/32). A center without a default weight gets 40.
DEFAULT_WEIGHTS = {"zcmu1": 50, "zju2": 40, "hzfph": 32}
ABSTRACTOR_PREFIX = {"zcmu1": "ZC", "zju2": "ZJ", "hzfph": "HF"}
TABLE_ORDER_KEYS = {
    "patients": [],
    "medications": ["start_date", "drug"],
    "surgeries": ["surgery_date"],
    "assessments": ["visit_date"],
    "labs": ["sample_date", "test"],
    "adverse_events": ["onset_date"],
}


def abstractor_ids(center: str) -> dict[str, str]:
    p = ABSTRACTOR_PREFIX.get(center, center[:2].upper())
    return {"A": f"{p}-A1", "B": f"{p}-B2"}


def _ordered(df: pd.DataFrame, table: str, rank: np.ndarray) -> pd.DataFrame:
    """Rows grouped by patient (record-number order), then by date."""
    keys = [rank[df["pidx"].to_numpy()]]
    for c in TABLE_ORDER_KEYS[table]:
        v = df[c].to_numpy()
        if v.dtype == object:
            v = pd.factorize(v, sort=True)[0]
        keys.append(v)
    order = np.lexsort(keys[::-1])
    return df.iloc[order].reset_index(drop=True)


def generate_deliveries(
    out: Path,
    n_patients: int = 122,
    seed: int = 20250401,
    discrepancy_share: float | dict[str, float] = 0.015,
    delivery_date: str = "20250401",
    truth_dir: Path | None = None,
    centers: list[str] | None = None,
) -> Path:
    """Write round A and round B files of every center into out/<center>/ (out is an inbox root),
    exactly as each center profile says; write the ground truth to truth_dir (default
    out.parent / 'ground_truth') and return the truth directory.

    With the defaults (122 patients, study.yaml as shipped) the cohort reproduces the
    published figures (see :mod:`.design`); other sizes are whole calibrated blocks plus
    part of one more. ``discrepancy_share`` is the share of compared field values in which
    round B differs from round A (a dict gives it per center; missing centers 0.015).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    laps: dict[str, float] = {}
    last = [t0]

    def lap(name: str) -> None:
        now = time.perf_counter()
        laps[name] = round(laps.get(name, 0.0) + now - last[0], 2)
        last[0] = now

    out = Path(out)
    truth_dir = Path(truth_dir) if truth_dir is not None else out.parent / "ground_truth"
    crf = load_crf()
    profiles = load_centers()
    settings = load_settings()
    yyyymmdd = str(delivery_date).replace("-", "")
    if centers is None:
        centers = [c for c in DEFAULT_WEIGHTS if c in profiles] + [c for c in profiles if c not in DEFAULT_WEIGHTS]
    unknown = [c for c in centers if c not in profiles]
    if unknown:
        raise KeyError(f"no center profile for {unknown}")
    n_patients = int(n_patients)
    split = largest_remainder(n_patients, {c: DEFAULT_WEIGHTS.get(c, 40) for c in centers})

    # ---------------------------------------------------------------- cohort
    slots = design_cohort(lambda b: rng_for(seed, "design", b), n_patients)
    lap("design")
    rng = rng_for(seed, "centers")
    perm = rng.permutation(n_patients)
    center_of = np.empty(n_patients, dtype=object)
    k = 0
    for c in centers:
        center_of[perm[k : k + split[c]]] = c
        k += split[c]
    mrn_of = np.empty(n_patients, dtype=object)
    rank = np.zeros(n_patients, dtype=np.int64)
    for c in centers:
        idx = np.flatnonzero(center_of == c)
        mrns = record_numbers(rng_for(seed, "mrn", c), c, len(idx))
        mrn_of[idx] = mrns
        rank[idx[np.argsort(mrns.astype(str), kind="stable")]] = np.arange(len(idx))
    prng = rng_for(seed, "phi")
    names = chinese_names(prng, n_patients)
    phones = mobile_numbers(prng, n_patients)
    tables, ctx = realize(slots, seed, settings)
    lap("cohort")
    # the tables this study's centers deliver (the CRF's tables of the single-center study,
    # dose_episodes and pk_samples, are not part of it: no file, no sheet, no truth)
    delivered = [t for t in crf.data_tables if t in tables]

    canonical_units = {t: v["unit"] for t, v in crf.lab_tests.items()}
    created = datetime.strptime(yyyymmdd, "%Y%m%d")
    invalid_records: list[dict] = []
    disc_frames = []
    meta_centers = {}
    background = BackgroundWriters()
    try:
        for c in centers:
            prof = profiles[c]
            ids = abstractor_ids(c)
            pidx_c = set(np.flatnonzero(center_of == c).tolist())
            A = {}
            for t, df in tables.items():
                sub = df[df["pidx"].isin(pidx_c)]
                A[t] = _ordered(sub, t, rank)
            A["labs"] = convert_labs(A["labs"], prof, canonical_units, rng_for(seed, "units", c))
            share = discrepancy_share.get(c, 0.015) if isinstance(discrepancy_share, dict) else float(discrepancy_share)
            B, disc, compared = make_round_b(c, A, share, rng_for(seed, "roundb", c), mrn_of, None, last_day=day_of(created.date()))
            B = {t: _ordered(df, t, rank) for t, df in B.items()}
            lap("round_b")
            disc_frames.append(disc)
            for R in (A, B):
                R["patients"] = R["patients"].assign(
                    patient_name=names[R["patients"]["pidx"].to_numpy()], phone=phones[R["patients"]["pidx"].to_numpy()]
                )
            # formatted cells of both rounds; invalid rows into round A
            cells = {}
            files = {"A": [], "B": []}
            for rnd, R in (("A", A), ("B", B)):
                fmt = CenterFormatter(prof, crf, rng_for(seed, "format", c, rnd))
                cells[rnd] = {t: fmt.table(t, R[t], ids[rnd], mrn_of) for t in delivered}
                if rnd == "A":
                    n_c = len(pidx_c)
                    per_kind = max(1, int(round(n_c / 1000))) if n_c else 0
                    inv = (
                        build_invalid(c, A, fmt, ids["A"], mrn_of, rng_for(seed, "invalid", c), per_kind) if n_c else []
                    )
                    extra_by_table = {t: (cl, recs) for t, cl, recs in inv}
                    irng = rng_for(seed, "invalid-insert", c)
                    for t in delivered:
                        extra, recs = extra_by_table.get(t, (None, []))
                        dups = per_kind if t in ("labs", "patients") and n_c else 0
                        if extra is None and not dups:
                            continue
                        before = cells["A"][t]
                        new, epos, dpos = insert_rows(before, extra, dups, irng)
                        cells["A"][t] = new
                        fname = file_name(prof, "A", t, yyyymmdd)
                        for r, pos in zip(recs, epos):
                            loc = row_location(prof, t, len(new), int(pos), fname)
                            mrn = r.get("mrn") or mrn_of[r["pidx"]]
                            invalid_records.append(
                                {
                                    "center": c,
                                    "round": "A",
                                    "table": t,
                                    **loc,
                                    "field": r["field"],
                                    "rule": r["rule"],
                                    "mrn": str(mrn),
                                }
                            )
                        hm = prof.header_for(t, "mrn")
                        for pos in dpos:
                            loc = row_location(prof, t, len(new), int(pos), fname)
                            invalid_records.append(
                                {
                                    "center": c,
                                    "round": "A",
                                    "table": t,
                                    **loc,
                                    "field": None,
                                    "rule": "unique_key",
                                    "mrn": str(new[hm].iat[int(pos)]),
                                }
                            )
                # write
                cdir = out / c
                cdir.mkdir(parents=True, exist_ok=True)
                if prof.format == "xlsx":
                    path = cdir / file_name(prof, rnd, "", yyyymmdd)
                    sheets = [
                        (sheet_names(prof, t, len(cells[rnd][t])), cells[rnd][t], fmt.date_headers(t))
                        for t in delivered
                    ]
                    background.submit(write_xlsx, (path, sheets, created), rows=sum(len(x[1]) for x in sheets))
                    files[rnd].append(path.name)
                else:
                    for t in delivered:
                        path = cdir / file_name(prof, rnd, t, yyyymmdd)
                        write_csv(path, cells[rnd][t], prof.encoding)
                        files[rnd].append(path.name)
            lap("format_and_write")
            # truth of this center
            truth_tables = {}
            for t in delivered:
                df = A[t].copy()
                df["mrn"] = mrn_of[df["pidx"].to_numpy()]
                df["abstractor_id"] = ids["A"]
                truth_tables[t] = df
            phi = pd.DataFrame(
                {
                    "mrn": mrn_of[A["patients"]["pidx"].to_numpy()],
                    "patient_name": A["patients"]["patient_name"].to_numpy(),
                    "phone": A["patients"]["phone"].to_numpy(),
                }
            )
            write_truth_tables(truth_dir, c, truth_tables, phi)
            lap("truth_tables")
            meta_centers[c] = {
                "n_patients": len(pidx_c),
                "mrns": [str(m) for m in mrn_of[A["patients"]["pidx"].to_numpy()]],
                "abstractor_ids": ids,
                "files": files,
                "format": prof.format,
                "compared_values": int(compared),
                "discrepancy_share": share,
                "n_discrepancies": int(len(disc)),
            }

        # ---------------------------------------------------------------- truth
        inv_cols = ["center", "round", "table", "file_name", "sheet", "row_number", "field", "rule", "mrn"]
        invalid = pd.DataFrame(invalid_records, columns=inv_cols)
        disc_all = pd.concat(disc_frames, ignore_index=True) if disc_frames else pd.DataFrame()
        patients_meta = {c: {} for c in centers}
        for i, s in enumerate(slots):
            c = center_of[i]
            patients_meta[c][str(mrn_of[i])] = {
                "diagnosis": s["diagnosis"],
                "category": s["category"],
                "included": s["included"],
                "exclusion_reason": None if s["included"] else s["category"],
                "other_reason": s["detail"] if s["category"] == "other" else None,
                "other_reasons": list(s["other_reasons"]),
                "detail": s["detail"] or None,
                "dtt_criteria": list(s["dtt"]),
                "stop_phase": s["stop_phase"],
                "stop_reason": s["stop_reason"],
                "endpoints": designed_endpoints(s),
                "crp_normal": list(s["crp"]) if s["crp"] else None,
                "fc_normal": list(s["fc"]) if s["fc"] else None,
                "ae_terms": list(s["ae_terms"]),
                "block": s.get("block"),
            }
        meta = {
            "generator": "ibd_pipeline.synth",
            "seed": int(seed),
            "n_patients": n_patients,
            "delivery_date": yyyymmdd,
            "block_size": BLOCK_SIZE,
            "flow_note": FLOW_NOTE,
            "record_key": "key fields other than mrn joined by '|' (ISO dates, canonical codes); 'patient' for patients",
            "one_sided_record": "field '*', value 'present' on the side that has the record, 'absent' on the other",
            "centers": meta_centers,
            "patients": patients_meta,
            "timing_seconds": laps,
        }
        write_truth_json(truth_dir, meta, invalid, disc_all)
        lap("truth_json")
        background.join()
        lap("wait_for_xlsx_writers")
        laps["total_wall"] = round(time.perf_counter() - t0, 2)
        laps["main_process_cpu"] = round(time.process_time() - c0, 2)

        (truth_dir / "timing.json").write_text(json.dumps(laps, indent=1), encoding="utf-8")
    except BaseException:
        background.terminate()
        raise
    return truth_dir
