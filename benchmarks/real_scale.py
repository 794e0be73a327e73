"""Prediction at real scale: trace, label and predict times for GPT-2 XL, LLaMA-2-7B and LLaMA-2-70B.

The models are built from transformers' own classes on the meta device (no memory for weights, no
compute), so this runs on a laptop. Run: ``python benchmarks/real_scale.py [NAME ...]``.
"""
from __future__ import annotations

import resource
import sys
import time
import warnings

import ddgraph
from ddgraph.models import architectures

MODELS = ("gpt2_xl", "llama2_7b", "llama2_70b")


def bench(name: str) -> dict:
    t0 = time.perf_counter()
    model, inputs = getattr(architectures, name)()
    build = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        g = ddgraph.trace(model, inputs)
        trace = time.perf_counter() - t0
        t0 = time.perf_counter()
        ddgraph.label(g)
        label = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = ddgraph.predict(g)
        predict = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    return dict(name=name, params=n_params, nodes=g.nx.number_of_nodes(), rows=len(pred.nodes),
                unknown=len(pred.unknown_ops), build=build, trace=trace, label=label, predict=predict,
                kl=pred.kl_order, tracer=g.tracer,
                rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def main(names) -> None:
    print(f"{'model':12s} {'params':>8s} {'nodes':>6s} {'rows':>5s} {'unk':>4s} {'tracer':>7s} "
          f"{'build s':>8s} {'trace s':>8s} {'label s':>8s} {'predict s':>9s} {'k':>4s} {'max RSS GB':>10s}")
    for name in names:
        r = bench(name)
        print(f"{r['name']:12s} {r['params'] / 1e9:7.2f}B {r['nodes']:6d} {r['rows']:5d} {r['unknown']:4d} "
              f"{r['tracer']:>7s} {r['build']:8.2f} {r['trace']:8.2f} {r['label']:8.2f} {r['predict']:9.2f} "
              f"{r['kl']!s:>4s} {r['rss_gb']:10.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or MODELS)
