"""Print DDCAdam's optimiser step time relative to torch.optim.AdamW (target: <= 2x).

Usage: python benchmarks/optim_step.py [--width 1024] [--repeats 20] [--threads N]
"""
import argparse

import torch
from rich.console import Console
from rich.table import Table

from ddgraph.optim.bench import benchmark


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    table = Table(title=f"optimizer.step() time, fp32, {torch.get_num_threads()} thread(s)")
    for col in ("model", "params", "AdamW ms", "DDCAdam ms", "ratio", "gauges"):
        table.add_column(col)
    for r in benchmark(args.width, args.repeats):
        table.add_row(r["model"], f"{r['params']:,}", f"{r['adamw_ms']:.2f}", f"{r['ddcadam_ms']:.2f}",
                      f"{r['ratio']:.2f}x", r["gauges"])
    Console().print(table)


if __name__ == "__main__":
    main()
