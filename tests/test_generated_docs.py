"""Every generated document in docs/ regenerates, in quick mode, with the committed structure and verdicts.

``docs/generate.py`` writes these files; here each one is rebuilt with its quick builder and compared with
the committed file on what does not depend on floating-point detail: the headings, every table's header
row, the row keys (first column) and every cell as text with its decimals masked. Integers stay (predicted
rates, k, lambda and m, counts of nodes and verdicts); in columns that hold measurements (``MEASURED``)
every number is masked. Prose between tables is not compared. Measured numbers move with BLAS, thread
count and sample size; verdicts and predictions must not.

Committed files that are full runs are compared on what a quick run reproduces:

- CONFORMANCE_FULL.md (20,000 samples, 7-point grids) against the quick conformance run: the same claims in
  the same order with the same predictions and verdicts.
- ARCHITECTURES.md is not regenerated here: it runs the whole third-party zoo through diff with default
  settings (tens of minutes) in the vision environment (torchvision and timm). It is checked for coverage
  instead: a row for every zoo model, each of which ran.
- SLT.md: the quick run has k <= 3 (not 6) and grid dimensions <= 3 (not 5), so its rows must be a subset
  of the committed ones; the devinterp columns come from devinterp's SGLD sampler run under another
  interpreter (devinterp is not a ddgraph dependency) and are left out.
- DDCADAM.md: every number is a measurement, and the step-time rows are named by the benchmark width
  (1024 full, 256 quick), so keys are compared with numbers masked too.

Quick regeneration, in-process on an otherwise idle 2-core machine: conformance 14 s (a session fixture
shared with tests/test_conformance.py), ARCHITECTURES 15 s, DDCADAM 13 s, SLT 8 s; this module ~55 s. A
loaded shared machine made them 2-4x slower. Each test records its time as ``regeneration_seconds``.
"""
from __future__ import annotations

import importlib.util
import re
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ddgraph.conformance.runner import render

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("ddgraph_docs_generate", DOCS / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


GEN = _generator()

#: Columns whose numbers are measurements (every number masked); elsewhere only decimals are masked, so
#: predicted rates, k, lambda, m and counts of nodes and verdicts are compared exactly. "*": every column.
MEASURED = {
    "conformance": ("measured", "where they differ, and why"),
    "slt": ("measured Fisher slope", "measured KL slope", "transversal slope", "spectrum (rank kinds)",
            "eigenvalue slopes", "nu (Monte Carlo)", "MC - quadrature", "ddgraph s", "ddgraph measured"),
}

#: How each committed document is compared with its quick regeneration (see the module docstring).
SPEC = {
    "CONFORMANCE.md": {"measured": MEASURED["conformance"]},
    "CONFORMANCE_FULL.md": {"measured": MEASURED["conformance"]},
    "SLT.md": {"measured": MEASURED["slt"], "subset_rows": True,
               "ignore_columns": ("devinterp LLC (± sd over chains)", "devinterp s")},
    "DDCADAM.md": {"measured": "*", "mask_keys": True},
}

_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_DECIMAL = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][-+]?\d+)?")
_RUN = re.compile(r"#(?:, #)+")


def mask(cell: str, every_number: bool = True) -> str:
    """A cell with its numbers (or only its decimals) replaced by '#', and a list of them by one '#'."""
    return _RUN.sub("#", (_NUMBER if every_number else _DECIMAL).sub("#", cell.strip()))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def structure(text: str, measured=(), skip_headings=(), ignore_columns=(), mask_keys=False, subset_rows=False):
    """(headings, tables): tables as (heading, header, rows); a row is (key, masked cells)."""
    headings, tables, heading, skipping, table = [], [], "", False, None
    for line in text.splitlines():
        if line.startswith("#"):
            heading, table = line.strip(), None
            skipping = heading in skip_headings
            if not skipping:
                headings.append(heading)
            continue
        if skipping:
            continue
        if not line.startswith("|"):
            table = None
            continue
        cells = _cells(line)
        if table is None:
            table = (heading, cells, [])
            tables.append(table)
        elif set("".join(cells)) <= set("-: "):
            continue  # the |---|---| separator
        else:
            header = table[1] + [""] * max(0, len(cells) - len(table[1]))
            key = mask(cells[0]) if mask_keys else cells[0]
            table[2].append((key, tuple(mask(c, measured == "*" or h in measured)
                                        for h, c in zip(header[1:], cells[1:]) if h not in ignore_columns)))
    return headings, tables


@pytest.fixture(scope="module")
def regenerated(conformance_quick):
    """Quick regeneration of each document, built once per module: name -> (text, seconds)."""
    cache = {}

    def get(name):
        if name not in cache:
            doc = next(d for d in GEN.GENERATED if d.name == name)
            t0 = time.perf_counter()
            if doc.build is GEN.conformance:  # the quick conformance run is shared with test_conformance
                text = render(conformance_quick, quick=True)
            else:
                text = doc.build(quick=True)
            cache[name] = (text, time.perf_counter() - t0)
        return cache[name]

    return get


NOT_REGENERATED = {"ARCHITECTURES.md"}  # see the module docstring


def test_every_generated_doc_is_covered():
    assert {d.name for d in GEN.GENERATED} == set(SPEC) | NOT_REGENERATED
    generated = {p.name for p in DOCS.glob("*.md") if "Generated by `" in "".join(p.read_text().splitlines()[:5])}
    assert generated == set(SPEC) | NOT_REGENERATED, "a generated doc in docs/ that docs/generate.py does not write"


def test_architectures_doc_has_every_zoo_model():
    from ddgraph.models.catalogue import REAL_SCALE, ZOO

    text = (DOCS / "ARCHITECTURES.md").read_text()
    rows = {_cells(line)[0]: _cells(line) for line in text.splitlines() if line.startswith("| ")}
    assert {e.name for e in ZOO} <= set(rows), "docs/ARCHITECTURES.md lacks zoo models: regenerate it"
    assert {e.name for e in REAL_SCALE} <= set(rows)
    assert not [name for name, cells in rows.items() if "error" in cells or "not built" in cells], \
        "docs/ARCHITECTURES.md was generated without a model's library: run it in the vision environment"


@pytest.mark.parametrize("name", list(SPEC))
def test_generated_doc_matches_committed(name, regenerated, record_property):
    text, seconds = regenerated(name)
    if not name.startswith("CONFORMANCE"):  # the conformance run is the shared fixture's (its setup time)
        record_property("regeneration_seconds", round(seconds, 1))
    opts = SPEC[name]
    new_h, new_t = structure(text, **opts)
    old_h, old_t = structure((DOCS / name).read_text(), **opts)
    stale = f"docs/{name} is stale: run `python docs/generate.py --only {name}`"
    assert new_h == old_h, stale
    assert [(h, head) for h, head, _ in new_t] == [(h, head) for h, head, _ in old_t], stale
    for (heading, header, new_rows), (_, _, old_rows) in zip(new_t, old_t):
        where = f"{stale}; table {header[:3]} under {heading!r}"
        if opts.get("subset_rows"):
            missing = Counter(new_rows) - Counter(old_rows)
            assert not missing, f"{where}: rows the committed file lacks: {list(missing)}"
        else:
            assert [k for k, _ in new_rows] == [k for k, _ in old_rows], f"{where}: row keys differ"
            for new, old in zip(new_rows, old_rows):
                assert new == old, f"{where}: row {new[0]!r} differs"
