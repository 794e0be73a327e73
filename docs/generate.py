"""Regenerate every generated document in docs/ (a maintainers' tool; not part of the installed package).

    python docs/generate.py                  # the committed versions (full runs: many minutes)
    python docs/generate.py --quick          # the quick variants (a minute or two)
    python docs/generate.py --only SLT.md --devinterp-json di.json
    python docs/generate.py --quick --out-dir /tmp/docs

The installed ``ddgraph`` commands print these documents to stdout or write them where ``--out`` says;
this script runs the same builders, in this checkout's ddgraph, and writes into docs/. Which command
each document corresponds to:

    CONFORMANCE.md       ddgraph conformance --quick   (always the quick run: the CI-checked document)
    CONFORMANCE_FULL.md  ddgraph conformance           (no quick variant: --quick leaves it alone)
    ARCHITECTURES.md     ddgraph architectures --real  (run it in the vision environment: torchvision, timm)
    SLT.md               ddgraph slt report            (devinterp column: --devinterp-python/--devinterp-json)
    DDCADAM.md           ddgraph ddcadam report        (one torch thread, as the command's default)

``tests/test_generated_docs.py`` regenerates the quick variants and compares their structure and
verdicts with the committed files.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # this checkout's ddgraph, whatever else is installed


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def conformance(quick: bool, **_) -> str:
    from ddgraph.conformance.runner import render, run

    return render(run(quick=quick), quick=quick)


def architectures(quick: bool, **_) -> str:
    from ddgraph.cli.architectures import build

    return build(quick=quick, real=not quick, log=_log)


def slt(quick: bool, devinterp_python: str | None = None, devinterp_json: str | None = None, **_) -> str:
    from ddgraph.slt.report import build

    return build(quick=quick, devinterp_python=devinterp_python, devinterp_json=devinterp_json,
                 devinterp_script=str(ROOT / "benchmarks" / "slt_vs_devinterp.py"), progress=False)


def ddcadam(quick: bool, **_) -> str:
    import torch

    from ddgraph.optim.report import build

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # `ddgraph ddcadam report`'s default --threads
    try:
        return build(quick=quick)
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Doc:
    name: str                                  # file name in docs/
    build: Callable[..., str]                  # build(quick, **options) -> markdown
    quick_only: bool = False                   # the committed file is the quick run (CONFORMANCE.md)
    has_quick: bool = True                     # False: only a full run exists (CONFORMANCE_FULL.md)
    failed: Callable[[str], bool] = lambda text: False   # the document reports an engine failure

    def mode(self, quick: bool) -> bool | None:
        """The ``quick`` argument this document is built with, or None if it has no variant in this mode."""
        if self.quick_only:
            return True
        if quick and not self.has_quick:
            return None
        return quick


def _conformance_failed(text: str) -> bool:
    return "\nEngine failures: none.\n" not in text


GENERATED = (
    Doc("CONFORMANCE.md", conformance, quick_only=True, failed=_conformance_failed),
    Doc("CONFORMANCE_FULL.md", conformance, has_quick=False, failed=_conformance_failed),
    Doc("ARCHITECTURES.md", architectures, has_quick=False, failed=lambda text: "| FAIL |" in text),
    Doc("SLT.md", slt),
    Doc("DDCADAM.md", ddcadam),
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the quick variants (CONFORMANCE_FULL.md has none)")
    p.add_argument("--out-dir", type=Path, default=DOCS, help="where to write (default: this checkout's docs/)")
    p.add_argument("--only", action="append", default=[], help="a document, e.g. SLT.md (repeatable)")
    p.add_argument("--devinterp-python", help="an interpreter with devinterp, for SLT.md's devinterp column")
    p.add_argument("--devinterp-json", help="saved `benchmarks/slt_vs_devinterp.py --json` output, for SLT.md")
    a = p.parse_args(argv)
    unknown = set(a.only) - {d.name for d in GENERATED} - {d.name.removesuffix(".md") for d in GENERATED}
    if unknown:
        p.error(f"unknown document(s): {', '.join(sorted(unknown))}")
    docs = [d for d in GENERATED if not a.only or d.name in a.only or d.name.removesuffix(".md") in a.only]
    if not a.quick and not (a.devinterp_python or a.devinterp_json) and any(d.name == "SLT.md" for d in docs):
        _log("note: without --devinterp-python or --devinterp-json, SLT.md's devinterp column says 'not run'")
    a.out_dir.mkdir(parents=True, exist_ok=True)
    status = 0
    for doc in docs:
        quick = doc.mode(a.quick)
        if quick is None:
            print(f"{doc.name:20s} skipped: no quick variant")
            continue
        t0 = time.perf_counter()
        text = doc.build(quick, devinterp_python=a.devinterp_python, devinterp_json=a.devinterp_json)
        out = a.out_dir / doc.name
        out.write_text(text)
        print(f"{doc.name:20s} {time.perf_counter() - t0:7.1f} s  -> {out}", flush=True)
        if doc.failed(text):
            _log(f"{doc.name}: an engine FAIL (see the document)")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
