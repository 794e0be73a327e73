"""Figures: per-node log-log fits with the predicted slope, and the ladder against depth."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ddgraph._optional import pyplot
from ddgraph.compare.checks import Diff
from ddgraph.output.tables import fmt_rate


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)


def node_figure(d: Diff, node: str, path: Path) -> None:
    """Log-log points of A_dd and G_dd for one node, the fitted line and the predicted slope."""
    plt = pyplot("plotting (diff --plot)")
    grid = np.array(d.measurement.grid)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, factor in zip(axes, ("A", "G")):
        check = next(c for c in d.primary if c.node == node and c.factor == factor and c.direction == 1)
        y = np.array(d.measurement.weights[node].series[factor]["dd"][1], dtype=float)
        ok = y > 0
        ax.loglog(grid[ok], y[ok], "o", label="measured")
        lo, hi = check.fit.window
        used = ok & (grid >= lo) & (grid <= hi)  # the fit's window: lines are drawn over it only
        if math.isfinite(check.fit.slope) and used.sum() >= 2:
            ts, t0, y0 = grid[used], grid[used][0], y[used][0]
            ax.loglog(ts, y0 * (ts / t0) ** check.fit.slope, "-",
                      label=f"fit {check.fit.slope:.3f} ± {check.fit.se:.1e} on [{lo:.0e}, {hi:.0e}]")
            p = check.predicted
            if isinstance(p, (int, float)) and math.isfinite(p):
                ax.loglog(ts, y0 * (ts / t0) ** p, "--", label=f"predicted {fmt_rate(p)}")
        ax.set_title(f"{factor}_dd  [{check.verdict}]")
        ax.set_xlabel("t")
        ax.legend(fontsize=8)
    fig.suptitle(f"{d.prediction.model}: {check.param}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ladder_figure(d: Diff, path: Path) -> None:
    """Predicted and measured A and G rates against the weight's position in the graph."""
    plt = pyplot("plotting (diff --plot)")
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(d.prediction.nodes) + 3), 3.8))
    names = [n.param for n in d.prediction.nodes]
    x = np.arange(len(names))
    for factor, colour in (("A", "tab:blue"), ("G", "tab:orange")):
        checks = {c.node: c for c in d.primary if c.factor == factor and c.direction == 1}
        pred = [checks[n.node].predicted for n in d.prediction.nodes]
        meas = [checks[n.node].fit.slope for n in d.prediction.nodes]
        pv = [p if isinstance(p, (int, float)) and math.isfinite(p) else np.nan for p in pred]
        ax.plot(x, pv, "s--", color=colour, alpha=0.5, label=f"{factor} predicted")
        ax.plot(x, meas, "o", color=colour, label=f"{factor} measured")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("rate (slope of log observable vs log t)")
    ax.set_title(f"{d.prediction.model}: rate ladder")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(d: Diff, directory: str | Path) -> list[Path]:
    """All figures of a diff into ``directory``; returns their paths."""
    pyplot("plotting (diff --plot)")  # before creating the directory
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "ladder.png"]
    ladder_figure(d, paths[0])
    rows = [n for n in d.prediction.nodes if n.node in d.measurement.weights]
    shared = {n.param for n in rows if sum(m.param == n.param for m in rows) > 1}
    for n in rows:  # a weight used twice has a row, and a figure, per use: named by its node too
        p = out / (f"node_{_safe(n.param)}.{_safe(n.node)}.png" if n.param in shared else f"node_{_safe(n.param)}.png")
        node_figure(d, n.node, p)
        paths.append(p)
    manifest = out / MANIFEST
    manifest.write_text(json.dumps({"model": d.prediction.model, "figures": [p.name for p in paths]}, indent=1) + "\n")
    return paths


#: The list of the figures the last ``write_plots`` into a directory wrote (other files there are not this run's).
MANIFEST = "ddgraph-figures.json"
