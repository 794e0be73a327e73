"""What the adaptive sweep costs: probe time with the default (adaptive) windows over probe time on the
old fixed grid (7 points, 1e-2 to 1e-4), measured in one run on the same traced model.

The first models are already asymptotic on the fixed grid; for them the target is a ratio <= 2 (issue 12).
``--real`` adds transformers models (GPT-2, BERT, ViT), which need smaller t: there the ratio is what
reaching their asymptote costs. Times are process CPU and wall seconds, the fastest of ``--repeat``
alternating runs (a shared machine's load moves single timings by 2x); the trace, labels and
prediction are made once, outside the timing.

    python benchmarks/adaptive_window.py [--samples 20000] [--repeat 3] [--real]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import ddgraph
from ddgraph.api import kernel_directions
from ddgraph.compare.checks import expectations
from ddgraph.probing import measure
from ddgraph.probing.window import K_FIXED_END, lattice

FIXED = [lattice(k) for k in range(K_FIXED_END + 1)]  # the old default grid


def _examples():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    import attention
    import blocks
    import chains

    return {"deep_linear": chains.deep_linear, "deep_relu": chains.deep_relu, "deep_gelu": chains.deep_gelu,
            "residual_mlp": blocks.residual_mlp, "swiglu_mlp": blocks.swiglu_mlp,
            "layernorm_chain": blocks.layernorm_chain, "attention_chain": attention.attention_chain,
            "transformer_block": attention.transformer_block}


def _real():
    from ddgraph.models import hf

    return {f"hf.{name}": getattr(hf, name) for name in ("gpt2", "bert", "vit")}


def timed(fns, repeat: int):
    """The fastest of ``repeat`` alternating runs of each of ``fns`` (wall and process-CPU seconds) and
    its last result; alternating and the minimum keep other processes' load out of the ratio."""
    for fn in fns:
        fn()  # warm-up
    wall, cpu, out = [[] for _ in fns], [[] for _ in fns], [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0, c0 = time.perf_counter(), time.process_time()
            out[i] = fn()
            wall[i].append(time.perf_counter() - t0)
            cpu[i].append(time.process_time() - c0)
    return [(min(w), min(c), o) for w, c, o in zip(wall, cpu, out)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--real", action="store_true", help="also transformers' GPT-2, BERT and ViT (slow)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {**_examples(), **(_real() if args.real else {})}
    print(f"{torch.get_num_threads()} threads, {args.samples} samples, fastest of {args.repeat}")
    print(f"{'model':22s} {'fixed pts':>9s} {'adaptive pts':>12s} {'fixed cpu s':>11s} {'adaptive cpu s':>14s} "
          f"{'ratio cpu':>9s} {'ratio wall':>10s}")
    for name, factory in models.items():
        torch.manual_seed(0)
        model, x = factory()
        pred = ddgraph.predict(model, x)
        common = dict(approach=pred.approach, n_samples=args.samples, progress=False,
                      ln_directions=kernel_directions(pred))
        (fw, fc, fm), (aw, ac, am) = timed([lambda: measure.probe(pred.graph, grid=FIXED, **common),
                                            lambda: measure.probe(pred.graph, expected=expectations(pred), **common)],
                                           args.repeat)
        print(f"{name:22s} {len(fm.grid):9d} {len(am.grid):12d} {fc:11.2f} {ac:14.2f} {ac / fc:9.2f} {aw / fw:10.2f}")


if __name__ == "__main__":
    main()
