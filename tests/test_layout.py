"""The package layout: imports point one way, core needs no torch, no module hides a public function."""
import ast
from pathlib import Path

import ddgraph

PKG = Path(ddgraph.__file__).parent


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_core_imports_neither_torch_nor_the_later_stages():
    for f in (PKG / "core").glob("*.py"):
        mods = _imports(f)
        assert not {m for m in mods if m == "torch" or m.startswith("torch.")}, f"{f.name} imports torch"
        later = {m for m in mods if m.startswith("ddgraph.") and not m.startswith(("ddgraph.core", "ddgraph.errors"))}
        assert not later, f"{f.name} imports {later}: the core depends on nothing but itself"


def test_the_frontend_does_not_reach_into_probe_compare_output_or_cli():
    for f in (PKG / "frontend").rglob("*.py"):
        bad = {m for m in _imports(f) if m.startswith(("ddgraph.probing", "ddgraph.compare", "ddgraph.output",
                                                        "ddgraph.cli", "ddgraph.api"))}
        assert not bad, f"{f.relative_to(PKG)} imports {bad}"


def test_public_functions_are_not_shadowed_by_modules():
    import importlib

    for name in ddgraph.__all__:
        assert not (PKG / f"{name}.py").exists() and not (PKG / name).is_dir(), \
            f"ddgraph/{name} would shadow the public ddgraph.{name}"
    for mod in ("ddgraph.frontend.labelling", "ddgraph.frontend.tracing", "ddgraph.compare.checks",
                "ddgraph.probing.measure"):
        importlib.import_module(mod)
    assert callable(ddgraph.label) and callable(ddgraph.trace) and callable(ddgraph.diff) and callable(ddgraph.probe)


def test_only_primitives_and_patterns_compare_primitive_names():
    """A stage reads what a primitive declares; a name compared elsewhere is knowledge in the wrong place."""
    import re

    names = "|".join(p.name for p in ddgraph.core.primitives.BUILTIN)
    compare = re.compile(rf"""\[["']primitive["']\]\s*(==|!=|in)\s*\(?["']({names})["']|"""
                         rf"""get\(["']primitive["']\)\s*(==|!=)\s*["']({names})["']""")
    allowed = ("core/primitives.py", "frontend/patterns/")
    for f in PKG.rglob("*.py"):
        rel = str(f.relative_to(PKG))
        if rel.startswith(allowed):
            continue
        hits = [line for line in f.read_text().splitlines() if compare.search(line)]
        assert not hits, f"{rel} compares primitive names: {hits[:2]}"
