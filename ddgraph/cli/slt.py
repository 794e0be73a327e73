"""``ddgraph slt``: the singular-learning commands (``report``, ``demo``)."""
from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ddgraph.slt import cases


@click.group("slt")
def slt():
    """Singular learning theory from Fisher rates: RLCT, multiplicity, singular fluctuation."""


@slt.command("report")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Where to write the markdown report (default or '-': stdout).")
@click.option("--quick", is_flag=True, help="Fewer k values, fewer Monte Carlo data sets (CI).")
@click.option("--devinterp-python", default=None, type=click.Path(exists=True, dir_okay=False),
              help="An interpreter with devinterp installed, for the SGLD LLC column.")
@click.option("--devinterp-script", default="benchmarks/slt_vs_devinterp.py", show_default=True,
              type=click.Path(dir_okay=False), help="The comparison script it runs.")
@click.option("--devinterp-json", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Saved output of `benchmarks/slt_vs_devinterp.py --json` (instead of running it).")
def report(out, quick, devinterp_python, devinterp_script, devinterp_json):
    """Run every worked case and print the report, or write it to OUT."""
    from ddgraph.cli.main import writable_file
    from ddgraph.slt.report import build, write

    if out not in (None, "-"):
        writable_file(out, "--out", make_parents=True)

    kw = dict(quick=quick, devinterp_python=devinterp_python, devinterp_script=devinterp_script,
              devinterp_json=devinterp_json)
    if out is None or out == "-":
        click.echo(build(**kw), nl=False)
        return
    path = write(out, **kw)
    click.echo(f"wrote {path}")


@slt.command("demo")
def demo():
    """Theorem 2 on the Gaussian dead direction and Theorem 89 on two crossings, as tables."""
    console = Console()
    t = Table(title="Theorem 2: N(theta^k, 1)")
    for col in ("k", "predicted slope", "Fisher slope", "KL slope", "1/(2k)", "verdict"):
        t.add_column(col)
    for r in cases.gaussian_dead_direction():
        t.add_row(str(r["k"]), str(r["predicted_slope"]), str(r["fisher_slope"]),
                  str(r["kl_slope"]), f"{r['lambda']:.4f}", r["verdict"])
    console.print(t)
    t = Table(title="Theorem 89: y = w1^k1 w2^k2")
    for col in ("true (k1, k2)", "read", "lambda", "m", "verdict"):
        t.add_column(col)
    for r in cases.crossings(((1, 2), (2, 2))):
        t.add_row(str(r["true_ks"]), str(r["ks"]), r["lambda"], str(r["m"]), r["verdict"])
    console.print(t)
