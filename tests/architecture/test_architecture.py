"""The dependency rule of docs/ARCHITECTURE.md ("Dependency rule": arrows point down),
checked on the import graph of ``ibd_pipeline`` read with ``ast`` - module-level and
function-local imports alike, so a cycle closed inside a function is still a cycle.

The rule is data (``LAYERS``, ``PURE``, ``DAGSTER_ALLOWED``): a new top-level module or
package must be placed in a layer here, and a test fails naming the file, line and
import that breaks the rule.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ibd_pipeline"

# Layers from the bottom up. A unit (top-level module or subpackage of ibd_pipeline;
# "ibd_pipeline" is the package's own __init__) may import its own modules and any unit
# of a LOWER layer - never a unit of a higher layer, nor another unit of its own layer
# (units of one layer are independent of each other).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("study model", ("study_model",)),
    ("foundation", ("ibd_pipeline", "config", "forking", "supervise")),
    ("basic services", ("pseudonym", "privacy", "spreadsheet")),
    ("clinical and extraction", ("clinical", "ingest", "quality")),
    ("reconciliation", ("reconcile",)),
    ("synthetic deliveries", ("synth",)),
    ("cohort", ("cohort",)),
    ("endpoints", ("endpoints",)),
    ("statistics", ("stats",)),
    ("report", ("report",)),
    ("storage", ("store", "sqlmodels")),
    # outbox_lists: the outbox workbooks of the worklist branch (s4-xlsx), placed here
    # so the rule holds when it lands
    ("files", ("intake", "withdrawal", "status_page", "catalog", "outbox_lists")),
    ("loading", ("loading", "verify", "fingerprint")),
    ("dagster assets", ("defs",)),
    ("definitions", ("definitions",)),
    ("headless runner", ("runner",)),
    ("command line", ("cli",)),
]
# pure packages: pandas in, pandas out - no orchestration, no storage
PURE = ("clinical", "cohort", "endpoints", "stats", "reconcile", "ingest")
PURE_FORBIDDEN = ("dagster", "duckdb")
# the only units that may import dagster (defs/ and its wiring: Definitions, the
# headless runner and the command line that starts it)
DAGSTER_ALLOWED = ("defs", "definitions", "runner", "cli")


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module of the package (dotted), or a third-party top-level name
    internal: bool
    file: str  # path relative to the package's parent directory
    line: int
    local: bool  # inside a function

    def where(self) -> str:
        scope = "function-local " if self.local else ""
        return f"{self.file}:{self.line}: {scope}import of {self.target}"


def modules_of(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """dotted module name -> (file, is a package __init__)."""
    out = {}
    for p in sorted((root / package).rglob("*.py")):
        parts = list(p.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _known(mods, dotted: str) -> str | None:
    """The longest prefix of ``dotted`` that is a module of the package."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in mods:
            return ".".join(parts[:n])
    return None


def _function_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    lines.add(sub.lineno)
    return lines


def import_graph(root: Path, package: str) -> list[Import]:
    """Every import statement of every module of ``package`` under ``root``."""
    mods = modules_of(root, package)
    out: list[Import] = []
    for mod, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        local_lines = _function_lines(tree)
        rel = str(path.relative_to(root))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    frm = ".".join(base + ([node.module] if node.module else []))
                else:
                    frm = node.module or ""
                # "from pkg import sub" imports the module pkg.sub; "from mod import name" imports mod
                targets = [f"{frm}.{a.name}" if f"{frm}.{a.name}" in mods else frm for a in node.names]
            else:
                continue
            for t in dict.fromkeys(targets):
                local = node.lineno in local_lines
                known = _known(mods, t) if t.split(".")[0] == package else None
                if known is not None:
                    if known != mod:
                        out.append(Import(mod, known, True, rel, node.lineno, local))
                elif t.split(".")[0] != package:
                    out.append(Import(mod, t.split(".")[0], False, rel, node.lineno, local))
    return out


def unit_of(module: str, package: str = PACKAGE) -> str:
    parts = module.split(".")
    return package if len(parts) == 1 else parts[1]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each as a list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def cycle_violations(imports: list[Import], key=lambda m: m) -> list[str]:
    """One message per import cycle, listing the imports that close it. ``key`` maps a
    module to the node of the graph (the module itself, or its unit)."""
    edges: dict[str, set[str]] = {}
    by_edge: dict[tuple[str, str], list[Import]] = {}
    for i in imports:
        if not i.internal:
            continue
        a, b = key(i.source), key(i.target)
        if a != b:
            edges.setdefault(a, set()).add(b)
            by_edge.setdefault((a, b), []).append(i)
    msgs = []
    for comp in _cycles(edges):
        members = set(comp)
        lines = [
            f"    {i.where()}"
            for (a, b), imps in sorted(by_edge.items())
            if a in members and b in members
            for i in imps
        ]
        msgs.append(f"import cycle between {', '.join(comp)}:\n" + "\n".join(lines))
    return msgs


def layer_violations(imports: list[Import], layers=LAYERS, package: str = PACKAGE) -> list[str]:
    rank = {u: n for n, (_, units) in enumerate(layers) for u in units}
    names = {u: name for name, units in layers for u in units}
    msgs = []
    units = {unit_of(i.source, package) for i in imports} | {
        unit_of(i.target, package) for i in imports if i.internal
    }
    for u in sorted(units - set(rank)):
        msgs.append(f"{package}.{u} is in no layer: place it in LAYERS of tests/architecture/test_architecture.py")
    for i in imports:
        if not i.internal:
            continue
        a, b = unit_of(i.source, package), unit_of(i.target, package)
        if a == b or a not in rank or b not in rank:
            continue
        if rank[b] > rank[a]:
            msgs.append(f"{i.where()}: {a} (layer {names[a]!r}) imports upward into {b} (layer {names[b]!r})")
        elif rank[b] == rank[a]:
            msgs.append(f"{i.where()}: {a} and {b} share the layer {names[a]!r} and must not import each other")
    return msgs


def third_party_violations(
    imports: list[Import], package: str = PACKAGE, pure=PURE, dagster_allowed=DAGSTER_ALLOWED
) -> list[str]:
    msgs = []
    for i in imports:
        if i.internal:
            continue
        u = unit_of(i.source, package)
        is_dagster = i.target == "dagster" or i.target.startswith("dagster_")
        if u in pure and (is_dagster or i.target in PURE_FORBIDDEN):
            msgs.append(f"{i.where()}: the pure package {u} must not import {i.target}")
        elif is_dagster and u not in dagster_allowed:
            msgs.append(f"{i.where()}: only {', '.join(dagster_allowed)} may import dagster, not {u}")
    return msgs


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return import_graph(ROOT, PACKAGE)


def test_no_import_cycle_between_modules(imports):
    problems = cycle_violations(imports)
    assert not problems, "\n".join(problems)


def test_no_import_cycle_between_subpackages(imports):
    problems = cycle_violations(imports, key=unit_of)
    assert not problems, "\n".join(problems)


def test_imports_point_down_the_layers(imports):
    problems = layer_violations(imports)
    assert not problems, "\n".join(problems)


def test_pure_packages_never_import_dagster_or_duckdb_and_only_defs_wiring_imports_dagster(imports):
    problems = third_party_violations(imports)
    assert not problems, "\n".join(problems)


def test_the_graph_sees_the_packages_real_imports(imports):
    """The reader finds the edges the layering is about (a reader that finds nothing
    would make every rule above pass)."""
    edges = {(i.source, i.target) for i in imports if i.internal}
    assert ("ibd_pipeline.cohort.eligibility", "ibd_pipeline.clinical.labs") in edges
    assert ("ibd_pipeline.defs.cohort", "ibd_pipeline.cohort") in edges  # from .. import cohort
    assert ("ibd_pipeline.ingest.extract", "ibd_pipeline.ingest.frames") in edges  # from .frames import
    assert any(i.local for i in imports), "no function-local import found"
    assert {i.target for i in imports if not i.internal and unit_of(i.source) == "defs"} >= {"dagster"}


# ---------------------------------------------------------- the checker on a toy package
def _write(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def test_checker_names_each_offending_import(tmp_path):
    """A toy package breaking every rule once: the messages name file, line and import."""
    _write(tmp_path, "toy/__init__.py", "")
    _write(tmp_path, "toy/config.py", "")
    _write(tmp_path, "toy/clinical/__init__.py", "")
    _write(tmp_path, "toy/clinical/a.py", "def f():\n    from toy.cohort import x\n    return x\n")
    _write(tmp_path, "toy/cohort/__init__.py", "")
    _write(tmp_path, "toy/cohort/x.py", "from ..clinical import a\nimport duckdb\n")
    _write(tmp_path, "toy/stats.py", "import dagster as dg\n")
    _write(tmp_path, "toy/extra.py", "from toy import config\n")
    layers = [("foundation", ("toy", "config")), ("clinical", ("clinical",)), ("cohort", ("cohort",)),
              ("statistics", ("stats",))]
    imps = import_graph(tmp_path, "toy")

    cycles = cycle_violations(imps)
    assert len(cycles) == 1
    assert "toy.clinical.a, toy.cohort.x" in cycles[0]
    assert "toy/clinical/a.py:2: function-local import of toy.cohort.x" in cycles[0]
    assert "toy/cohort/x.py:1: import of toy.clinical.a" in cycles[0]
    assert cycle_violations(imps, key=lambda m: unit_of(m, "toy"))[0].startswith("import cycle between clinical, cohort")

    layer = layer_violations(imps, layers, "toy")
    assert "toy.extra is in no layer: place it in LAYERS of tests/architecture/test_architecture.py" in layer
    assert any(
        m.startswith("toy/clinical/a.py:2: function-local import of toy.cohort.x: clinical (layer 'clinical') "
                     "imports upward into cohort") for m in layer
    )
    assert not any("toy/cohort/x.py:1" in m for m in layer)  # downward is allowed

    third = third_party_violations(imps, "toy", pure=("clinical", "cohort", "stats"), dagster_allowed=("defs",))
    assert third == [
        "toy/cohort/x.py:2: import of duckdb: the pure package cohort must not import duckdb",
        "toy/stats.py:1: import of dagster: the pure package stats must not import dagster",
    ]
    third = third_party_violations(imps, "toy", pure=(), dagster_allowed=("defs",))
    assert third == ["toy/stats.py:1: import of dagster: only defs may import dagster, not stats"]



def sql_calls(path: Path, root: Path = ROOT) -> list[str]:
    """``<x>.execute(...)`` / ``.executemany`` / ``.sql(...)`` calls in a module: SQL run on a connection."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.relative_to(root)}:{n.lineno}: .{n.func.attr}(...)"
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("execute", "executemany", "sql")
    ]


def test_the_dagster_layer_and_the_catalog_read_the_warehouse_only_through_the_store():
    """defs/ wires assets to pure code and the store (docs/ARCHITECTURE.md): no query of
    its own, so every SQL read and write of the layers above lives in store/."""
    modules = sorted((ROOT / PACKAGE / "defs").glob("*.py")) + [ROOT / PACKAGE / "catalog.py"]
    problems = [c for m in modules for c in sql_calls(m)]
    assert not problems, "\n".join(problems)


def test_the_sql_call_finder_names_each_query(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f(con):\n    con.execute('SELECT 1')\n    return con.sql('SELECT 2')\n", encoding="utf-8")
    assert sql_calls(f, tmp_path) == ["m.py:2: .execute(...)", "m.py:3: .sql(...)"]


def test_building_the_definitions_loads_no_heavy_library(tmp_path):
    """Start-up (issue 14: heavy libraries imported where they are used): the Dagster
    definitions, the CLI and a run with nothing to do load no statistics, plotting or
    quality library; the asset that needs one imports it."""
    import subprocess
    import sys

    code = ("import sys, ibd_pipeline.definitions as d, ibd_pipeline.cli, ibd_pipeline.report; "
            f"d.build_definitions({str(tmp_path / 'data')!r}); "
            "print(sorted(m for m in ('sklearn', 'lifelines', 'statsmodels', 'scipy', 'matplotlib', "
            "'great_expectations', 'boruta', 'firthmodels') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]
