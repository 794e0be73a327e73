"""Trace, label and predict times for growing depth (issue 2's scale target).

Prints, for pre-norm transformers built on the meta device (no weight memory), the seconds spent
tracing, labelling and predicting, and the ratio (label + predict) / trace measured in the same
run. Target: the ratio stays at or below 0.25, so the engine's share of the cost is small.

    python benchmarks/scale.py [--width 4096] [--depths 2,8,32] [--tokens 8] [--tracer fx]
"""
from __future__ import annotations

import argparse
import time

import torch

import ddgraph
from ddgraph.models.zoo import PreNormTransformer


def run(depth: int, width: int, heads: int, vocab: int, tokens: int, tracer: str) -> dict:
    with torch.device("meta"):
        model = PreNormTransformer(depth, width, heads, vocab)
    inputs = (torch.randint(0, vocab, (1, tokens)),)
    t0 = time.perf_counter()
    graph = ddgraph.trace(model, inputs, tracer=tracer)
    t1 = time.perf_counter()
    ddgraph.label(graph)
    t2 = time.perf_counter()
    pred = ddgraph.predict(graph)
    t3 = time.perf_counter()
    return {"depth": depth, "nodes": graph.nx.number_of_nodes(), "weights": len(pred.nodes),
            "trace": t1 - t0, "label": t2 - t1, "predict": t3 - t2, "in_reach": pred.counts()["in-reach"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--depths", default="2,8,32")
    ap.add_argument("--tracer", default="fx", choices=["fx", "export"])
    args = ap.parse_args()
    torch.set_num_threads(2)
    run(1, 64, 4, 100, 4, args.tracer)  # warm-up: first calls pay for lazy initialisation
    print(f"pre-norm transformer, width {args.width}, {args.heads} heads, {args.tokens} tokens, "
          f"meta device, tracer {args.tracer}")
    print(f"{'depth':>5} {'nodes':>6} {'weights':>7} {'trace s':>8} {'label s':>8} {'predict s':>9} "
          f"{'(label+predict)/trace':>22}")
    for depth in (int(d) for d in args.depths.split(",")):
        r = run(depth, args.width, args.heads, args.vocab, args.tokens, args.tracer)
        ratio = (r["label"] + r["predict"]) / r["trace"]
        print(f"{r['depth']:>5} {r['nodes']:>6} {r['weights']:>7} {r['trace']:>8.2f} {r['label']:>8.2f} "
              f"{r['predict']:>9.2f} {ratio:>22.2f}")
    print("target: (label+predict)/trace <= 0.25")


if __name__ == "__main__":
    main()
