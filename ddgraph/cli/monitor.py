"""``ddgraph monitor``: read what a training-time Monitor wrote."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("monitor")
def monitor():
    """The training-time observatory (ddgraph.monitor; docs/MONITOR.md)."""


@monitor.command("report")
@click.argument("logdir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory for the figures (default: LOGDIR/report).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def report(logdir: Path, out_dir: Path | None, fmt: str):
    """Draw LOGDIR's timelines (one figure per tier, flags marked) and list its flags."""
    from rich.table import Table

    from ddgraph._optional import pyplot
    from ddgraph.cli.main import writable_dir
    from ddgraph.errors import MonitorError
    from ddgraph.monitor.report import report as draw
    from ddgraph.output.tables import make_console

    if not logdir.is_dir():
        raise MonitorError(f"{logdir}: no such directory; pass the logdir a Monitor wrote")
    pyplot("ddgraph monitor report")  # a missing plot extra is named before any work
    writable_dir(out_dir if out_dir is not None else logdir / "report", "--out")
    out = draw(logdir, out_dir)
    if fmt == "json":
        click.echo(json.dumps(out, indent=2, default=float))
        return
    console = make_console()
    t = Table(title=f"{logdir}: {len(out['flags'])} flags over steps {out['steps']}", title_justify="left")
    for col in ("step", "kind", "layer", "why"):
        t.add_column(col, overflow="fold")
    for f in out["flags"]:
        t.add_row(str(f["step"]), f["kind"], f["layer"], f["message"])
    console.print(t)
    for path in out["figures"]:
        console.print(f"wrote {path}")
