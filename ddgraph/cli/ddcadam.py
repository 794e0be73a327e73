"""``ddcadam`` command group: regenerate the DDCAdam measurements document."""
from __future__ import annotations

from pathlib import Path

import click


@click.group("ddcadam")
def ddcadam():
    """DDCAdam, the gauge-equivariant Adam (paper §11.1)."""


@ddcadam.command("report")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Markdown file to write (default or '-': stdout).")
@click.option("--quick", is_flag=True, help="Small sizes for CI (about a minute); numbers indicative.")
@click.option("--threads", type=int, default=1, show_default=True, help="torch threads to use.")
def report(out: Path, quick: bool, threads: int):
    """Measure equivariance, drift, the cell-A readout and step time; print the document or write OUT."""
    import torch

    from ddgraph.cli.main import writable_file
    from ddgraph.errors import OptionError
    from ddgraph.optim.report import build

    if threads < 1:
        raise OptionError(f"--threads {threads}: need at least 1 thread")
    if out is not None and str(out) != "-":
        writable_file(out, "--out", make_parents=True)

    torch.set_num_threads(threads)
    text = build(quick=quick)
    if out is None or str(out) == "-":
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    click.echo(f"wrote {out}")
