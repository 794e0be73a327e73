"""``ddgraph inspect``: the static structure of a model with real weights (a table and a plot)."""
from __future__ import annotations

import json
import sys

import click


@click.command("inspect")
@click.argument("target")
@click.option("--model", "model_target", default=None,
              help="For a checkpoint FILE: the factory (file.py:factory or package.module:factory) it belongs to.")
@click.option("--rows", "n", type=int, default=512, show_default=True, help="Calibration batch size.")
@click.option("--plot", "plot_file", default=None, type=click.Path(dir_okay=False),
              help="Write the structural-health plot here (PNG).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def inspect(target, model_target, n, plot_file, fmt):
    """Check LayerNorm kernels (Prop 63), RMSNorm's lack of one, and the residual stream's smallest
    singular value across depth (Cor 58) on TARGET (a factory, or a checkpoint with --model)."""
    from rich.table import Table

    from ddgraph.cli.main import writable_file
    from ddgraph.errors import OptionError
    from ddgraph.inspect import inspect as run
    from ddgraph.inspect import plot, resolve
    from ddgraph.output.tables import make_console

    console = make_console()
    if n < 2:  # options first: a bad one costs no trace
        raise OptionError(f"--rows {n}: a covariance needs at least 2 calibration rows (default 512)")
    if plot_file:  # a missing plot extra or a bad path is reported before the run, not after it
        from ddgraph._optional import pyplot

        pyplot("inspect --plot")
        writable_file(plot_file, "--plot")
    model, inputs = resolve(target, model_target)
    ins = run(model, inputs, n=n)
    if not ins.norms and not ins.stream:
        console.print(f"[bold red]nothing to check[/]: {ins.model} has no LayerNorm, RMSNorm or residual add "
                      "to inspect (exit 2)")
        sys.exit(2)
    if fmt == "json":
        click.echo(json.dumps(ins.to_json(), indent=2))
    else:
        t = Table(title=f"{ins.model}: norms on {ins.n_rows} calibration rows", title_justify="left")
        for col in ("module", "kind", "lambda_min/trace", "u^T C u/trace", "|cos(bottom, u)|", "claim", "verdict"):
            t.add_column(col)
        for x in ins.norms:
            t.add_row(x["module"], x["kind"], f"{x['ratio']:.2e}", f"{x['rayleigh']:.2e}", f"{x['cosine']:.4f}",
                      x["claim"], x["verdict"])
        console.print(t)
        s = Table(title="residual stream across depth (Cor 58)", title_justify="left")
        for col in ("depth", "module", "sigma_min", "sigma_max", "active / width"):
            s.add_column(col)
        for x in ins.stream:
            s.add_row(str(x["depth"]), x["module"], f"{x['sigma_min']:.3e}", f"{x['sigma_max']:.3e}",
                      f"{x['active']}/{x['width']}")
        console.print(s)
    if plot_file:
        console.print(f"wrote {plot(ins, plot_file)}")
    sys.exit(0 if ins.ok else 1)
