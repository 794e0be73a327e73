"""``ddgraph conformance``: run every graph-level claim of the paper and print (or ``--out``) the document."""
from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("conformance")
@click.option("--quick", is_flag=True, help="CI setting: fewer samples, four grid points (the committed document).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the document (default or '-': stdout). The repository's docs/CONFORMANCE.md "
                   "(--quick) and docs/CONFORMANCE_FULL.md are written by docs/generate.py.")
@click.option("--only", multiple=True, help="Run only claims whose id starts with this (repeatable).")
@click.option("--verbose", "-v", is_flag=True, help="Print each claim's verdict and time as it runs.")
def conformance(quick: bool, out: Path | None, only: tuple[str, ...], verbose: bool) -> None:
    """Run the paper's claims against ddgraph's prediction and its probe; exit 1 on an engine FAIL."""
    from ddgraph.conformance.registry import FAIL
    from ddgraph.conformance.runner import render, run

    def report(c, o, secs):
        click.echo(f"{c.id:28s} {o.verdict:18s} {secs:6.1f}s", err=True)

    from ddgraph.cli.main import writable_file
    from ddgraph.errors import OptionError

    if out is not None and str(out) != "-":
        writable_file(out, "--out", make_parents=True)
    if only:  # options first: a filter that selects nothing is not a passing run
        from ddgraph.conformance.registry import CLAIMS

        unknown = [o for o in only if not any(c.id.startswith(o) for c in CLAIMS)]
        if unknown:
            raise OptionError(f"--only {', '.join(unknown)}: no claim id starts with it (ids look like "
                              f"{', '.join(c.id for c in CLAIMS[:3])}, ...)")
    results = run(quick=quick, only=list(only) or None, progress=report if verbose else None)
    text = render(results, quick=quick)
    if out is None or str(out) == "-":
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        click.echo(f"wrote {out} ({len(results)} claims)", err=True)
    if any(o.verdict == FAIL for _, o in results):
        sys.exit(1)
