"""Cohort: IOIBD DTT criteria, eligibility and the patient flow (docs/STUDY_RULES.md#workflow
step 5, "DTT-IBD per the IOIBD consensus", "Inclusion and exclusion")."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from .. import cohort
from ..store.reads import core_frames
from .keys import analytics_key, core_key
from .resources import StudyResource
from .tables import md_image, md_table, publish, read, save_figure, table_checks, table_spec

CORE_INPUTS = [core_key(t) for t in ("patients", "medications", "surgeries", "assessments", "labs")]


def uses_dtt(settings: dict) -> bool:
    """The study's population rule is the IOIBD DTT consensus (``population.rule``,
    default ``ioibd_dtt``); a ``criteria`` study has no DTT table."""
    return (settings.get("population") or {}).get("rule", "ioibd_dtt") == "ioibd_dtt"


def build_cohort_tables(settings: dict):
    """The cohort tables asset of the study: ``dtt_criteria`` then ``eligibility`` for a
    DTT study, ``eligibility`` alone for a study whose population is its eligibility
    criteria."""
    dtt_rule = uses_dtt(settings)
    names = ["dtt_criteria", "eligibility"] if dtt_rule else ["eligibility"]
    specs = [table_spec("dtt_criteria", CORE_INPUTS, "cohort")] if dtt_rule else []
    specs.append(table_spec("eligibility", ([analytics_key("dtt_criteria")] if dtt_rule else []) + CORE_INPUTS, "cohort"))

    @dg.multi_asset(specs=specs, check_specs=table_checks(names), name="cohort_tables")
    def cohort_tables(study: StudyResource, warehouse: DuckDBResource):
        """Per screened patient, each of the five IOIBD criteria with its evidence (failed
        mechanisms, bowel resections) and `is_dtt` (DTT studies); then inclusion with the
        first exclusion reason in the study's order and every reason for auditing."""
        settings, crf = study.settings(), study.crf()
        results, checks = [], []
        with warehouse.get_connection() as con:
            f = core_frames(con, ("patients", "medications", "surgeries", "assessments", "labs"), lab_tests=cohort.lab_tests(settings, crf))
            dtt = None
            if dtt_rule:
                dtt = cohort.dtt_criteria(f["patients"], f["medications"], f["surgeries"], f["assessments"], settings, crf)
                r, c = publish(con, "dtt_criteria", dtt, extra_meta={"is_dtt": int(dtt["is_dtt"].sum()) if len(dtt) else 0})
                results.append(r)
                checks += c
            elig = cohort.eligibility(f["patients"], dtt, f["medications"], f["assessments"], f["labs"], f["surgeries"], settings, crf)
            by_reason = elig.groupby(elig["exclusion_reason"].fillna("included")).size().reset_index(name="n")
            r, c = publish(con, "eligibility", elig, extra_meta={
                "included": int(elig["included"].sum()) if len(elig) else 0,
                "by_reason": md_table(by_reason.rename(columns={"exclusion_reason": "reason"})),
            })
            results.append(r)
            checks += c
        yield from results
        yield from checks

    return cohort_tables


@dg.multi_asset(
    specs=[table_spec("patient_flow", [analytics_key("eligibility")], "cohort")],
    check_specs=table_checks(["patient_flow"]),
    name="patient_flow",
)
def patient_flow(study: StudyResource, warehouse: DuckDBResource):
    """Screened, each exclusion with its count, included, split UC/CD - overall and per
    center - and the STROBE/RECORD flow diagram (PNG and SVG under reports/figures)."""
    settings = study.settings()
    with warehouse.get_connection() as con:
        elig = read(con, "analytics.eligibility")
        flow = cohort.patient_flow(elig, settings)
        png, svg = cohort.flow_diagram(flow)
        path = save_figure(study.paths(), "patient_flow", png, svg)
        overall = flow[flow["center"] == "all"]
        result, checks = publish(con, "patient_flow", flow, extra_meta={
            "flow": md_table(overall),
            "diagram": md_image(png, "patient flow"),
            "diagram_path": dg.MetadataValue.path(str(path)),
        })
    yield result
    yield from checks


def build_cohort_assets(settings: dict) -> list:
    """The cohort assets of the study (its population rule decides the DTT table)."""
    return [build_cohort_tables(settings), patient_flow]
