"""``ddgraph monitor report LOGDIR``: the timelines of a monitored run, one figure per tier, flags marked."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from ddgraph._optional import pyplot
from ddgraph.monitor.logs import read_flags, read_rows

#: tier -> (title, [(metric, axis label, log scale)])
PANELS = {
    "stream": ("real-time tier: residual stream at block outputs (Cor 58)",
               [("sigma_min_sq", "sigma_min^2 (active)", True), ("sigma_ratio_sq", "sigma_min^2 / sigma_max^2", True)]),
    "norm": ("real-time tier: LayerNorm kernel (Prop 63)",
             [("kernel_ratio", "u^T C u / tr C  (u = 1/gamma)", True), ("null_dim", "null-space dimension", False)]),
    "factor": ("periodic tier: K-FAC factors (empirical Fisher)",
               [("lambda_max", "lambda_max", True), ("bottom_0", "lambda_min / lambda_max (incl. floor)", True),
                ("continuity", "bottom-eigenvector continuity", False)]),
    "gauge": ("gauge coordinates (Remark 80)", [("drift_ratio", "gauge shift / parameter shift", True)]),
    "train": ("training scalars", [("loss", "loss", True)]),
}
COLOURS = {"task-expansion": "tab:red", "rank-collapse": "tab:purple", "gauge-drift": "tab:orange"}


def series(rows) -> dict:
    """``{tier: {metric: {layer: ([steps], [values])}}}`` of a log's scalar rows."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: ([], []))))
    for r in rows:
        xs, ys = out[r["tier"]][r["metric"]][r["layer"]]
        xs.append(r["step"])
        ys.append(r["value"])
    return out


def report(logdir, out_dir=None) -> dict:
    """Draw ``LOGDIR``'s timelines into ``out_dir`` (default: ``LOGDIR/report``); returns the figure paths,
    the flags and the steps covered."""
    rows, flags = read_rows(logdir), read_flags(logdir)
    plt = pyplot("ddgraph monitor report")
    out_dir = Path(out_dir) if out_dir is not None else Path(logdir) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    data = series(rows)
    figures = []
    for tier, (title, panels) in PANELS.items():
        panels = [p for p in panels if p[0] in data.get(tier, {})]
        if not panels:
            continue
        fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.8 * len(panels)), sharex=True, squeeze=False)
        for ax, (metric, label, log) in zip(axes[:, 0], panels):
            for layer, (xs, ys) in sorted(data[tier][metric].items()):
                pts = [(x, y) for x, y in zip(xs, ys) if y == y and (y > 0 or not log)]
                if pts:
                    ax.plot(*zip(*pts), ".-", ms=3, lw=1, label=layer)
            if log:
                ax.set_yscale("log")
            ax.set_ylabel(label, fontsize=8)
            for f in flags:
                ax.axvline(f["step"], color=COLOURS.get(f["kind"], "k"), lw=0.8, ls="--", alpha=0.7)
        axes[0, 0].set_title(title + ("  (dashed: " + ", ".join(sorted({f["kind"] for f in flags})) + ")"
                                      if flags else ""), fontsize=9)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        if handles and len(handles) <= 16:
            axes[0, 0].legend(fontsize=6, ncol=4)
        axes[-1, 0].set_xlabel("optimiser step")
        fig.tight_layout()
        path = out_dir / f"{tier}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        figures.append(str(path))
    (out_dir / "monitor-figures.json").write_text(json.dumps(figures, indent=2))
    steps = [r["step"] for r in rows]
    return {"logdir": str(logdir), "figures": figures, "flags": flags,
            "steps": [min(steps), max(steps)] if steps else []}
