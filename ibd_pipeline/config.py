"""The project's configuration: the CRF contract, the center profiles, the study
settings and the data directory.

Everything clinical lives in data files of the project (never in ``../shared``):

* ``schemas/crf.yaml``      - the canonical case report form (tables, fields, codes ...)
* ``centers/<id>.yaml``     - one export profile per center (+ ``centers/vocabularies``)
* ``study.yaml``            - every threshold, window and ordering of STUDY.md
* ``published_figures.yaml`` - what the published study reported (the one copy: the
  report's "published vs derived", the synthetic generator's targets and the tests read it)

A project holds one or more **studies**. A study is a folder with the same layout: its
``study.yaml``, its ``centers/`` and its ``published_figures.yaml``. The default study
(the multicenter one) is the repository root itself; every other study is a folder
``studies/<name>/``. The study in use is ``$IBD_STUDY`` (``ibd-pipeline --study NAME``),
else the default; each study has its own data directory (``./data`` for the default,
``./data/studies/<name>`` for the others), so its warehouse, snapshot and Dagster
instance are its own.

Paths can be redirected with environment variables (used by tests and deployments):
``IBD_STUDY``, ``IBD_DATA_DIR`` (default as above), ``IBD_STUDY_SETTINGS``,
``IBD_CENTERS_DIR``, ``IBD_PSEUDONYM_KEY_FILE``.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ROUNDS = ("A", "B", "ADJ")
STUDIES_DIR = PROJECT_ROOT / "studies"
DEFAULT_STUDY = "multicenter_upa"
"""The name of the default study, whose folder is the repository root."""


# ------------------------------------------------------------------- studies
class UnknownStudyError(ValueError):
    """A study name with no study folder (``studies/<name>/study.yaml``)."""


def study_names() -> list[str]:
    """Every study of the project: the default first, then ``studies/*/`` with a study.yaml."""
    others = sorted(p.parent.name for p in STUDIES_DIR.glob("*/study.yaml")) if STUDIES_DIR.is_dir() else []
    return [DEFAULT_STUDY] + [n for n in others if n != DEFAULT_STUDY]


def study_name(name: str | None = None) -> str:
    """The study in use: ``name``, else ``$IBD_STUDY``, else the default; an unknown name
    raises :class:`UnknownStudyError` listing the known ones."""
    n = (name or os.environ.get("IBD_STUDY") or DEFAULT_STUDY).strip()
    if n not in study_names():
        raise UnknownStudyError(
            f"no study {n!r}: a study is a folder studies/<name>/ with a study.yaml "
            f"(known: {', '.join(study_names())})")
    return n


def study_dir(name: str | None = None) -> Path:
    """The folder of a study: the repository root for the default study, else
    ``studies/<name>/`` (holding study.yaml, centers/ and published_figures.yaml)."""
    n = study_name(name)
    return PROJECT_ROOT if n == DEFAULT_STUDY else STUDIES_DIR / n


# --------------------------------------------------------------------------- CRF
@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # string | date | int | float | bool | code
    required: bool = False
    codes: tuple | None = None  # allowed canonical values (resolved codes_from)
    range: tuple | None = None  # inclusive (low, high); None = open end
    phi: str | None = None  # drop | pseudonymize | None
    description: str = ""
    compared: bool = True  # part of the A/B comparison (crf.yaml ``compared: false``: left out)


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]
    fields: dict[str, FieldSpec]
    description: str = ""

    @property
    def kept_fields(self) -> list[str]:
        """Fields that may reach the warehouse (``phi: drop`` removed; ``mrn`` kept here,
        it becomes ``patient_id``)."""
        return [f for f, s in self.fields.items() if s.phi != "drop"]


@dataclass(frozen=True)
class Crf:
    raw: dict
    tables: dict[str, TableSpec]
    drugs: dict[str, dict]
    procedures: dict[str, dict]
    lab_tests: dict[str, dict]
    ae_terms: tuple[str, ...]
    serious_by_definition: tuple[str, ...]

    def table(self, name: str) -> TableSpec:
        return self.tables[name]

    @property
    def data_tables(self) -> list[str]:
        """Tables delivered in rounds A and B (everything but adjudications)."""
        return [t for t in self.tables if t != "adjudications"]

    def canonical_unit(self, test: str) -> str:
        return self.lab_tests[test]["unit"]


def _resolve_codes(crf_raw: dict, spec: dict) -> tuple | None:
    if "codes" in spec:
        return tuple(spec["codes"])
    src = spec.get("codes_from")
    if src is None:
        return None
    pool = crf_raw[src]
    return tuple(pool.keys()) if isinstance(pool, dict) else tuple(pool)


# libyaml's C parser when PyYAML was built with it (the same values as yaml.safe_load,
# several times faster: the SQL models' 78 documentation files took 1.3 s to parse at
# every start of a run)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str):
    """YAML text parsed safely (``yaml.safe_load``'s values)."""
    return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader


def read_yaml(path: str | Path):
    """A YAML file parsed safely (``yaml.safe_load``'s values)."""
    return parse_yaml(Path(path).read_text(encoding="utf-8"))


def schemas_dir() -> Path:
    return PROJECT_ROOT / "schemas"


@lru_cache(maxsize=4)
def _load_crf(path: str) -> Crf:
    raw = read_yaml(path)
    tables: dict[str, TableSpec] = {}
    for tname, t in raw["tables"].items():
        fields = {}
        for fname, f in t["fields"].items():
            rng = f.get("range")
            fields[fname] = FieldSpec(
                name=fname,
                type=f["type"],
                required=bool(f.get("required", False)),
                codes=_resolve_codes(raw, f),
                range=tuple(rng) if rng is not None else None,
                phi=f.get("phi"),
                description=f.get("description", ""),
                compared=bool(f.get("compared", True)),
            )
        tables[tname] = TableSpec(tname, tuple(t["key"]), fields, t.get("description", ""))
    return Crf(
        raw=raw,
        tables=tables,
        drugs=raw["drugs"],
        procedures=raw["procedures"],
        lab_tests=raw["lab_tests"],
        ae_terms=tuple(raw["ae_terms"]),
        serious_by_definition=tuple(raw.get("serious_by_definition", [])),
    )


def load_crf(path: str | Path | None = None) -> Crf:
    """The canonical CRF (``schemas/crf.yaml``)."""
    return _load_crf(str(path or schemas_dir() / "crf.yaml"))


# ------------------------------------------------------------------- centers
@dataclass(frozen=True)
class CenterProfile:
    """One center's export profile, with its vocabulary resolved.

    ``header_for(table, field)`` gives the column name the center writes;
    ``code_map(field)`` maps the center's code spellings to canonical codes.
    A REDCap center (``format: redcap``, section ``redcap``: ingest/redcap.py) names its
    REDCap variables and raw choice codes there.
    """

    id: str
    raw: dict
    vocabulary: dict = field(default_factory=dict)
    path: Path | None = None  # the profile file (named in messages that ask for a profile update)
    unit_spellings: dict = field(default_factory=dict)  # its centers folder's units.yaml

    @property
    def unit_aliases(self) -> dict[str, str]:
        """Shared unit spellings -> canonical unit (``centers/units.yaml`` ``aliases``)."""
        return self.unit_spellings.get("aliases") or {}

    @property
    def qualifiers(self) -> tuple[str, ...]:
        """Detection-limit qualifiers a lab value may carry (``units.yaml`` ``qualifiers``)."""
        return tuple(self.unit_spellings.get("qualifiers") or ())

    @property
    def format(self) -> str:
        return self.raw["format"]

    @property
    def encoding(self) -> str | None:
        return self.raw.get("encoding")

    @property
    def file_pattern(self) -> str:
        return self.raw["files"]

    @property
    def date_formats(self) -> list[str]:
        return list(self.raw["dates"])

    @property
    def missing_tokens(self) -> list[str]:
        return list(self.raw.get("missing", [""]))

    @property
    def units(self) -> dict[str, dict[str, float]]:
        """Per lab test: {delivered unit: factor into the canonical unit}."""
        return self.raw.get("units") or {}

    @property
    def sheets(self) -> dict[str, str]:
        """Sheet name -> CRF table (xlsx centers)."""
        return self.raw.get("sheets") or {}

    def sheet_for(self, table: str) -> str | None:
        for sheet, t in self.sheets.items():
            if t == table:
                return sheet
        return None

    def header_for(self, table: str, fname: str) -> str:
        overrides = self.raw.get("header_overrides") or {}
        if fname in overrides:
            return overrides[fname]
        if self.format == "redcap":
            return redcap_headers(self.raw).get((table, fname), fname)
        if self.raw.get("headers", "canonical") == "canonical":
            return fname
        return (self.vocabulary["headers"].get(table) or {}).get(fname, fname)  # a table the vocabulary lacks: CRF names

    def headers(self, table: str, fields: list[str]) -> dict[str, str]:
        """canonical field -> the center's column header."""
        return {f: self.header_for(table, f) for f in fields}

    def code_map(self, fname: str, ftype: str = "code") -> dict[str, Any]:
        """The center's spelling -> canonical value for a coded or boolean field."""
        if self.format == "redcap":
            return redcap_code_map(self.raw, fname, ftype)
        codes = (self.vocabulary or {}).get("codes", {})
        if ftype == "bool":
            return dict(codes.get("bool", {}))
        return dict(codes.get(fname, {}))


def centers_dir(study: str | None = None) -> Path:
    """The center profiles of a study (default: the one in use): ``$IBD_CENTERS_DIR``
    (for the study in use), else the study's ``centers/``."""
    env = os.environ.get("IBD_CENTERS_DIR")
    return Path(env) if env and study is None else study_dir(study) / "centers"


def _shared_file(root: Path, relative: str) -> Path:
    """A file of a study's centers folder, else the project's (the shared unit spellings
    and vocabularies: a study's folder holds only what differs)."""
    own = root / relative
    return own if own.exists() else PROJECT_ROOT / "centers" / relative


@lru_cache(maxsize=4)
def _load_centers(path: str) -> dict[str, CenterProfile]:
    root = Path(path)
    units = read_yaml(_shared_file(root, "units.yaml")) or {}
    out = {}
    for f in sorted(root.glob("*.yaml")):
        raw = read_yaml(f)
        if not isinstance(raw, dict) or "format" not in raw:
            continue  # units.yaml and other shared files
        vocab = {}
        if raw.get("vocabulary"):
            vocab = read_yaml(_shared_file(root, f"vocabularies/{raw['vocabulary']}.yaml"))
        cid = raw.get("id", f.stem)
        out[cid] = CenterProfile(id=cid, raw=raw, vocabulary=vocab, path=f, unit_spellings=units)
    return out


# REDCap centers (format: redcap). The profile's ``redcap.instruments.<form>.fields`` maps
# REDCap variables onto CRF fields; ingest/redcap.py reads the export with it. These
# helpers give the generic profile interface (headers, code maps) its REDCap answers.
def redcap_choices(text) -> list[tuple[str, str]]:
    """REDCap's "Choices, Calculations, OR Slider Labels" cell as (raw code, label) pairs:
    ``"1, Male | 2, Female"`` -> ``[("1", "Male"), ("2", "Female")]``."""
    out = []
    for part in str(text or "").split("|"):
        if not part.strip():
            continue
        code, _, label = part.partition(",")
        out.append((code.strip(), " ".join(label.split())))
    return out


def redcap_label_code(label: str) -> str:
    """A choice label as a CRF code (profile ``codes: by_label``): lower case, every run of
    other characters one '_' (``"Certolizumab pegol"`` -> ``certolizumab_pegol``)."""
    import re

    return re.sub(r"[^0-9a-z]+", "_", str(label).casefold()).strip("_")


def _redcap_mapped(raw: dict):
    """(instrument, variable, entry) of every field of a REDCap profile."""
    for inst, spec in ((raw.get("redcap") or {}).get("instruments") or {}).items():
        for var, entry in (spec.get("fields") or {}).items():
            yield inst, spec, str(var), entry or {}


def redcap_headers(raw: dict) -> dict[tuple[str, str], str]:
    """(CRF table, CRF field) -> the REDCap column that holds it (checkbox options as
    ``<variable>___<code>``; fields taken from the record's baseline row, like ``mrn``,
    under the baseline variable)."""
    out: dict[tuple[str, str], str] = {}
    record: dict[str, str] = {}
    for _inst, spec, var, e in _redcap_mapped(raw):
        if e.get("crf"):
            out.setdefault((spec["table"], e["crf"]), var)
            if not spec.get("repeating"):
                record[e["crf"]] = var
        for code, crf_field in (e.get("options") or {}).items():
            out.setdefault((spec["table"], crf_field), f"{var}___{code}")
    for _inst, spec in ((raw.get("redcap") or {}).get("instruments") or {}).items():
        for f in spec.get("from_record") or []:
            if f in record:
                out.setdefault((spec["table"], f), record[f])
    return out


def redcap_code_map(raw: dict, fname: str, ftype: str = "code") -> dict[str, Any]:
    """REDCap raw choice code -> canonical value of the CRF field ``fname`` (from the
    profile's expected choices: ``codes`` given, ``by_label``, or the raw code itself);
    yes/no fields give {"1": True, "0": False}."""
    out: dict[str, Any] = {}
    for _inst, _spec, _var, e in _redcap_mapped(raw):
        if e.get("crf") != fname:
            continue
        if e.get("type") in ("yesno", "truefalse"):
            out.update({"1": True, "0": False})
            continue
        codes = e.get("codes")
        for code, label in redcap_choices(e.get("choices")):
            if codes == "by_label":
                out[code] = (e.get("label_codes") or {}).get(label, redcap_label_code(label))
            elif isinstance(codes, dict):
                if code in {str(k) for k in codes}:
                    out[code] = {str(k): v for k, v in codes.items()}[code]
            else:
                out[code] = code
    return out


def load_centers(path: str | Path | None = None) -> dict[str, CenterProfile]:
    """Every center profile under ``centers/``, keyed by center id."""
    return _load_centers(str(path or centers_dir()))


def center_ids() -> list[str]:
    return list(load_centers().keys())


# ------------------------------------------------------------------ settings
def settings_path(study: str | None = None) -> Path:
    """The settings of a study (default: the one in use): ``$IBD_STUDY_SETTINGS`` (for the
    study in use), else the study's ``study.yaml``."""
    env = os.environ.get("IBD_STUDY_SETTINGS")
    return Path(env) if env and study is None else study_dir(study) / "study.yaml"


@lru_cache(maxsize=8)
def _load_yaml(path: str, mtime: float):
    return read_yaml(path)


@lru_cache(maxsize=8)
def _load_settings(path: str, mtime: float) -> dict:
    """The settings file, validated once per version against the typed study model
    (:mod:`ibd_pipeline.study_model`: a typo or a wrong type is one clear error naming
    the file and the key)."""
    from .study_model import validate_settings

    data = _load_yaml(path, mtime)
    validate_settings(data, path)
    return data


def load_study_model(path: str | Path | None = None):
    """The study settings as the typed model (:class:`ibd_pipeline.study_model.StudySettings`)."""
    from .study_model import validate_settings

    p = Path(path) if path else settings_path()
    return validate_settings(_load_yaml(str(p), p.stat().st_mtime), str(p))


def load_settings(path: str | Path | None = None) -> dict:
    """The study settings (``study.yaml``). Returns a fresh copy callers may modify."""
    p = Path(path) if path else settings_path()
    return copy.deepcopy(_load_settings(str(p), p.stat().st_mtime))


def published_path(study: str | None = None) -> Path:
    """The published figures: ``published_figures.yaml`` beside the study settings, or the
    project's (a settings file redirected by ``IBD_STUDY_SETTINGS`` to a folder without
    one - a what-if copy of ``study.yaml`` - compares with its study's figures)."""
    beside = settings_path(study).with_name("published_figures.yaml")
    return beside if beside.exists() else study_dir(study) / "published_figures.yaml"


def load_published(path: str | Path | None = None) -> dict:
    """The published study's figures (default: :func:`published_path`). A fresh copy."""
    p = Path(path) if path else published_path()
    return copy.deepcopy(_load_yaml(str(p), p.stat().st_mtime)) or {}


def with_overrides(settings: dict, overrides: dict) -> dict:
    """A copy of ``settings`` with nested ``overrides`` merged in (for tests, what-ifs);
    an empty mapping replaces the setting (e.g. ``{"dtt": {"mechanism_groups": {}}}``)."""
    out = copy.deepcopy(settings)

    def merge(dst, src):
        for k, v in src.items():
            if isinstance(v, dict) and v and isinstance(dst.get(k), dict):  # {} replaces
                merge(dst[k], v)
            else:
                dst[k] = copy.deepcopy(v)

    merge(out, overrides)
    return out


# ------------------------------------------------------------ data directory
@dataclass(frozen=True)
class DataPaths:
    """Everything generated lives under one data directory (git-ignored)."""

    root: Path

    def inbox(self, center: str) -> Path:
        return self.root / "inbox" / center

    def archive(self, center: str) -> Path:
        return self.root / "archive" / center

    def outbox(self, center: str) -> Path:
        return self.root / "outbox" / center

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def snapshot(self) -> Path:
        return self.root / "analytics.duckdb"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def ground_truth(self) -> Path:
        return self.root / "ground_truth"

    def ensure(self, centers: list[str] | None = None) -> "DataPaths":
        for c in centers if centers is not None else center_ids():
            for p in (self.inbox(c), self.archive(c), self.outbox(c)):
                p.mkdir(parents=True, exist_ok=True)
        self.reports.mkdir(parents=True, exist_ok=True)
        return self


def default_data_dir(name: str | None = None) -> Path:
    """A study's own data directory when none is given: ``./data`` for the default study,
    ``./data/studies/<name>`` for the others."""
    n = study_name(name)
    return Path.cwd() / "data" if n == DEFAULT_STUDY else Path.cwd() / "data" / "studies" / n


def data_paths(root: str | Path | None = None) -> DataPaths:
    """The data directory: ``root``, else ``$IBD_DATA_DIR``, else the study's default
    (:func:`default_data_dir`)."""
    r = root or os.environ.get("IBD_DATA_DIR") or default_data_dir()
    return DataPaths(Path(r).resolve())


# ----------------------------------------------------------- pseudonym key
class MissingKeyError(RuntimeError):
    pass


def pseudonym_key_path(paths: DataPaths | None = None) -> Path:
    env = os.environ.get("IBD_PSEUDONYM_KEY_FILE")
    if env:
        return Path(env)
    return (paths or data_paths()).secrets / "pseudonym.key"


KEY_MIN_BYTES = 16


def read_pseudonym_key(paths: DataPaths | None = None) -> bytes:
    """The secret key of the keyed hash that replaces ``mrn``. Never stored in the
    warehouse or git; read from ``IBD_PSEUDONYM_KEY_FILE``. A missing, unreadable or
    short key raises MissingKeyError with one sentence naming cause and fix (issue 18)."""
    p = pseudonym_key_path(paths)
    restore = (
        "restore the study's key file from its backup (a new key would give every patient a new id); "
        "for a new study only: `ibd-pipeline init-key`"
    )
    if not p.exists():
        raise MissingKeyError(
            f"the pseudonymization key file {p} does not exist, so no delivery can be read: {restore} "
            "(or point IBD_PSEUDONYM_KEY_FILE at it; the demo creates one)"
        )
    try:
        key = p.read_bytes().strip()
    except OSError as exc:
        raise MissingKeyError(
            f"the pseudonymization key file {p} cannot be read ({type(exc).__name__}): give the pipeline's user read "
            "permission on it (chmod 600, owned by that user)"
        ) from None
    if len(key) < KEY_MIN_BYTES:
        raise MissingKeyError(
            f"the pseudonymization key in {p} is {len(key)} bytes, shorter than {KEY_MIN_BYTES} (damaged or truncated): {restore}"
        )
    return key


def ensure_pseudonym_key(paths: DataPaths | None = None) -> Path:
    """Create a random key file (mode 600) if none exists; return its path."""
    p = pseudonym_key_path(paths)
    if not p.exists():
        import secrets

        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(secrets.token_hex(32) + "\n")
        os.chmod(p, 0o600)
    return p
