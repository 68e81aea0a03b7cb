"""The study report (docs/STUDY_RULES.md#statistics): one self-contained HTML file."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from .. import report
from .keys import REPORT
from .resources import StudyResource
from .tables import md_image



def build_report_asset(upstream: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(key=REPORT, deps=upstream, kinds={"html"}, group_name="report")
    def study_report(study: StudyResource, warehouse: DuckDBResource):
        """`reports/study_report.html`: the settings it ran with, data provenance (deliveries
        and their hashes, agreement per center), patient flow, Table 1, endpoints by UC/CD
        across time points with Wilson CIs, biomarker trajectories, Kaplan-Meier curves with
        numbers at risk, Cox and logistic forest plots, ROC curve, center forest plot,
        safety tables, data quality, and the published figures beside the derived ones.
        Per-center cells under 5 patients are flagged; only pseudonymous data is used."""
        from ..fingerprint import code_and_config
        from ..report.figures import FigureCache

        reports = study.paths().reports
        out = reports / "study_report.html"
        # figures whose inputs did not change are not drawn again (the code and library
        # versions are part of every figure's key)
        cache = FigureCache(reports / "figures" / "cache", code_and_config())
        with warehouse.get_connection() as con:
            res = report.build_report(con, out, study.settings(), figure_cache=cache)
        meta = {k: v for k, v in res.key_numbers.items() if isinstance(v, (int, float, str)) and v is not None}
        meta["path"] = dg.MetadataValue.path(str(res.path))
        meta["sections"] = dg.MetadataValue.json(list(res.sections))
        meta["not_available"] = dg.MetadataValue.json({k: list(v) if isinstance(v, (list, tuple)) else str(v) for k, v in res.unavailable.items()})
        for name in ("flow", "roc"):
            png = res.figures.get(name)
            if png:
                meta[f"figure_{name}"] = md_image(png, name)
        km = next((k for k in res.figures if k.startswith("km")), None)
        if km:
            meta["figure_km"] = md_image(res.figures[km], km)
        return dg.MaterializeResult(metadata=meta)

    return study_report
