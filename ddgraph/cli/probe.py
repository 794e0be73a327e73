"""``ddgraph probe`` and ``ddgraph diff``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
import torch
from rich import box
from rich.table import Table

from ddgraph.cli.main import _run, approach_options, console, load_run, writable_dir
from ddgraph.compare.checks import TOL
from ddgraph.errors import OptionError
from ddgraph.output.tables import fmt_rate
from ddgraph.prediction import IN_REACH
from ddgraph.probing.distributed import is_lead

VERDICT_STYLE = {"pass": "green", "fail": "bold red", "inside-bracket": "yellow", "not-asymptotic": "magenta",
                 "floor": "cyan", "no-rule": "red", "unfittable": "bold red"}


def probe_options(f):
    opts = [
        click.option("--samples", "n_samples", type=int, default=20000, show_default=True),
        click.option("--grid", default=None, help="Pin the t values: 'a,b,c' or 'geom:HI:LO:N' (default: an adaptive "
                     "sweep, 1e-2 to 1e-4 and on toward smaller t until every rate settles; each row reports its window)."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seeds the sample and torch's generator before the model is built."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bar."),
        click.option("--chunk", type=int, default=8192, show_default=True,
                     help="Samples per chunk: the unit of memory and of the work shared over ranks."),
        click.option("--device", default=None, help="Where the probe runs, e.g. cpu or cuda (default: where the "
                     "model is); under torchrun, cuda is each rank's GPU."),
        click.option("--factor-memory", "factor_budget", type=float, default=None,
                     help="MB of K-FAC factors one process may hold: ranks then own the factors of a subset of layers."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def parse_grid(text):
    """``a,b,c`` or ``geom:HI:LO:N`` as distinct t values in (0, 1); an :class:`OptionError` otherwise."""
    from ddgraph.probing.measure import check_grid

    if not text:
        return None
    try:
        if text.startswith("geom:"):
            parts = text.split(":")
            if len(parts) != 4:
                raise ValueError
            hi, lo, n = float(parts[1]), float(parts[2]), int(parts[3])
            values = list(np.geomspace(hi, lo, n)) if n > 0 and hi > 0 and lo > 0 else [hi, lo][:max(n, 0)]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise OptionError(f"--grid {text!r}: expected numbers 'a,b,c' (e.g. 1e-2,1e-3,1e-4) or "
                          "'geom:HI:LO:N' (e.g. geom:1e-2:1e-4:7)") from None
    try:
        return list(check_grid(values))
    except OptionError as exc:
        raise OptionError(f"--grid {text!r}: {str(exc).removeprefix('grid: ')}") from None


def _check(target, n_samples, grid, seed, no_progress, chunk, device, factor_budget, **kw):
    from ddgraph.api import check
    from ddgraph.probing import distributed
    from ddgraph.probing.measure import check_samples

    grid = parse_grid(grid)  # options first: a bad one costs no trace
    try:
        check_samples(n_samples)
    except OptionError:
        raise OptionError(f"--samples {n_samples}: need at least 1 sample (default 20000)") from None
    if chunk < 1:
        raise OptionError(f"--chunk {chunk}: need at least 1 sample per chunk (default 8192)")
    if factor_budget is not None and not factor_budget > 0:
        raise OptionError(f"--factor-memory {factor_budget:g}: need a positive number of MB (e.g. 512)")
    device = _device(device)
    torch.manual_seed(seed)  # a factory that draws its weights from torch's generator builds the same model
    model, inputs, approach, ext, tracer = load_run(target, **kw)
    device = distributed.join(device, model)  # under torchrun: join the process group
    return check(model, inputs, approach=approach, rules=ext.load_rules(), tracer=tracer, plugins=ext.plugins,
                 grid=grid, n_samples=n_samples, progress=not no_progress, seed=seed, chunk=chunk,
                 device=device, factor_budget=factor_budget)


def _device(name):
    """``--device`` checked before any work (:func:`ddgraph.probing.distributed.check_device`)."""
    from ddgraph.probing.distributed import check_device

    try:
        check_device(name)
    except OptionError as exc:
        raise OptionError(f"--{exc}") from None
    return name


def _fmt_fit(fit):
    if fit.status == "floor" and fit.slope == float("inf"):
        return "zero"
    if fit.slope != fit.slope:
        return "-"
    return f"{fit.slope:.3f} ± {fit.se:.1e}"


def fmt_window(fit) -> str:
    """The t window a fit used, with its point count (``-`` when there was none)."""
    lo, hi = fit.window
    if lo != lo or hi != hi or not fit.n_points:
        return "-"
    return f"{lo:.0e}..{hi:.0e} ({fit.n_points})"


def _sweep(m) -> str:
    how = "adaptive" if m.adaptive else "pinned"
    return f"t in [{m.grid[-1]:.0e}, {m.grid[0]:.0e}], {len(m.grid)} points, {how}"


def diff_table(d) -> Table:
    ap = d.prediction.approach
    t = Table(title=f"{d.prediction.model}: predicted vs measured ({ap.loss}, "
                    f"{ap.regime if ap.loss == 'mse' else ap.fisher + ' Fisher'}; n={d.measurement.n_samples}, "
                    f"{_sweep(d.measurement)})",
              box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("#", "parameter", "kind", "factor", "predicted", "measured ± se", "window (points)", "verdict", "note"):
        t.add_column(col, overflow="fold")
    kinds = {n.node: n.kind for n in d.prediction.nodes}
    order = {n.node: i for i, n in enumerate(d.prediction.nodes, 1)}
    for c in d.primary:
        dirn = f"{c.factor}" if d.prediction.approach.n_dead == 1 else f"{c.factor}{c.direction}"
        note = c.fit.reason if c.verdict not in ("pass",) else ""
        if c.tol != 0.05:
            note = (note + f" (band ±{c.tol})").strip()
        if c.regime:  # the rates depend on the eps regime: say which one the window was judged in
            note = (note + f" (eps regime: {c.regime})").strip()
        t.add_row(str(order[c.node]), c.param, kinds[c.node], dirn, fmt_rate(c.predicted), _fmt_fit(c.fit),
                  fmt_window(c.fit),
                  f"[{VERDICT_STYLE.get(c.verdict, '')}]{c.verdict}[/]", note)
    return t


def _print_extras(d):
    for ln in d.ln:
        console.print(f"{ln['primitive']} {ln['module'] or ln['node']}: {ln['claim']}: max lambda_min/trace "
                      f"{ln['max_ratio']:.1e}, 1/gamma's Rayleigh quotient/trace {ln['max_rayleigh']:.1e}, "
                      f"min |cos| {ln['min_cosine']:.4f} -> "
                      f"[{VERDICT_STYLE[ln['verdict']]}]{ln['verdict']}[/]")
    for s in d.streams:
        console.print(f"stream {s['module'] or s['node']}: {s['claim']}: predicted {fmt_rate(s['predicted'])}, "
                      f"measured {fmt_rate(s['measured'])} -> [{VERDICT_STYLE.get(s['verdict'], '')}]{s['verdict']}[/]")
    for t, where in d.measurement.nan.items():
        console.print(f"[bold red]non-finite values[/] at t={t:g}, first at node {where}")
    for s in d.measurement.skipped:
        console.print(f"not measured: {s}")
    for n in d.measurement.moved:
        console.print(f"[bold red]engine bug[/]: the bulk of {n}'s input was predicted constant in t but moved")
    for note in d.measurement.notes:
        console.print(f"[yellow]note[/]: {note}")
    summary = ", ".join(f"{k} {v}" for k, v in d.summary().items())
    fails = d.failures
    console.print(f"{len(d.primary)} checks: {summary}. " + (
        "every in-reach node passes." if d.ok else
        f"[bold red]{len(fails)} in-reach check(s) did not pass:[/] " +
        ", ".join(f"{c.param} {c.factor} ({c.verdict})" for c in fails[:8])))
    for o in d.prediction.overridden:
        console.print(f"[yellow]rule override[/]: {o}")
    by_band: dict[float, list[str]] = {}
    for r, b in sorted(d.bands.items()):
        by_band.setdefault(b, []).append(Path(r).stem)
    widened = [f"±{b:g} for nodes behind {', '.join(names)}" for b, names in sorted(by_band.items())]
    console.print(f"tolerances: ±{TOL:g}" + "".join(f", {w}" for w in widened) + " (finite-t correction)"
                  + f"; probe time per t-point {d.measurement.seconds_per_t:.2f} s")


@click.command()
@click.argument("target")
@approach_options
@probe_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), help="Write log-log and ladder figures here.")
def diff(target, fmt, plot_dir, **kw):
    """Predict TARGET's ladder, measure it on the model, and say node by node whether it held.

    Exit status 0 when every in-reach node passes, 1 when one does not, 2 when nothing was checked.
    """
    if plot_dir:  # a missing plot extra is reported before the sweep, not after it
        from ddgraph._optional import pyplot

        _run(lambda: pyplot("diff --plot"))
        writable_dir(plot_dir, "--plot")
    d = _run(lambda: _check(target, **kw))
    if not is_lead():  # under torchrun rank 0 prints and writes; the other ranks exit as it does
        sys.exit(_status(d))
    if fmt == "json":
        click.echo(json.dumps(d.to_json(), indent=2, default=str))
    else:
        console.print(diff_table(d))
        _print_extras(d)
    if plot_dir:
        from ddgraph.output.plots import MANIFEST, write_plots

        before = {p.name for p in Path(plot_dir).glob("*.png")}
        paths = write_plots(d, plot_dir)
        names = {p.name for p in paths}
        console.print(f"wrote {len(paths)} figures to {plot_dir} (listed in {MANIFEST})")
        if before & names:
            console.print(f"[yellow]note[/]: replaced {len(before & names)} figure(s) already in {plot_dir}")
        if before - names:
            rest = sorted(before - names)
            console.print(f"[yellow]note[/]: {plot_dir} also holds {len(rest)} figure(s) this run did not write "
                          f"(another model or run): {', '.join(rest[:6])}{' ...' if len(rest) > 6 else ''}")
    if _status(d) == 2:
        console.print("[bold red]nothing to check[/]: no weight is in reach of the rules and there is no "
                      "normaliser or stream check, so no prediction was tested (exit 2)")
    sys.exit(_status(d))


def _status(d) -> int:
    """The exit status of ``diff``: 0 every in-reach node passes, 1 one does not, 2 nothing was checked."""
    if not any(c.status == IN_REACH for c in d.primary) and not d.ln and not d.streams:
        return 2
    return 0 if d.ok else 1


@click.command()
@click.argument("target")
@approach_options
@probe_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def probe(target, fmt, **kw):
    """Measure TARGET's K-FAC rates at its canonical singular configuration (no verdicts)."""
    d = _run(lambda: _check(target, **kw))
    if not is_lead():  # under torchrun rank 0 prints
        return
    rows = [{"param": c.param, "factor": c.factor, "direction": c.direction, "observable": c.observable,
             **c.fit.as_dict()} for c in d.checks]
    if fmt == "json":
        click.echo(json.dumps({"model": d.prediction.model, "grid": list(d.measurement.grid),
                               "adaptive": d.measurement.adaptive, "n_samples": d.measurement.n_samples,
                               "fits": rows}, indent=2))
        return
    t = Table(title=f"{d.prediction.model}: measured rates ({_sweep(d.measurement)})", box=box.SIMPLE_HEAD,
              title_justify="left")
    for col in ("parameter", "factor", "dead entry", "window (points)", "Schur complement", "lambda_min (active)",
                "status"):
        t.add_column(col)
    for c in d.primary:
        same = {x.observable: x.fit for x in d.checks if (x.node, x.factor, x.direction) == (c.node, c.factor, c.direction)}
        t.add_row(c.param, c.factor, _fmt_fit(same["dd"]), fmt_window(same["dd"]), _fmt_fit(same["schur"]),
                  _fmt_fit(same["lmin"]),
                  same["dd"].status)
    console.print(t)
    for note in d.measurement.notes:
        console.print(f"[yellow]note[/]: {note}")


commands = [probe, diff]
