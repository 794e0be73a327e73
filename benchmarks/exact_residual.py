"""What the noise-free residual without cancellation costs: probe time (noise-free MSE) with the
residual integrated along the approach (ddgraph/probing/residual.py) over probe time with the plain fp64
difference f_t - f_0, on the same pinned grid and traced model, in one run; with the G verdicts of each.

Times are process CPU and wall seconds, the fastest of ``--repeat`` alternating runs (see
adaptive_window.py). The integral is only paid for on the chunks whose direct difference keeps fewer
than 26 bits, so a model whose residual stays large costs nothing extra.

    python benchmarks/exact_residual.py [--samples 20000] [--repeat 3] [--json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch

import ddgraph
from ddgraph.compare.checks import diff
from ddgraph.probing import measure, residual
from ddgraph.probing.window import K_FIXED_END, lattice

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adaptive_window import _examples, timed  # noqa: E402

GRID = [lattice(k) for k in range(K_FIXED_END + 1)]  # 1e-2 to 1e-4, 7 points


@contextlib.contextmanager
def _direct():
    """The plain fp64 difference everywhere (the residual before the integral)."""
    before = residual._BITS
    residual._BITS = 0.0
    try:
        yield
    finally:
        residual._BITS = before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout instead of the table")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    examples = _examples()  # puts examples/ on the path
    from attention import linear_attention

    models = {"linear_attention": linear_attention, **examples}
    rows = []
    for name, factory in models.items():
        torch.manual_seed(0)
        model, x = factory()
        pred = ddgraph.predict(model, x, regime="noise-free")

        def run():
            return measure.probe(pred.graph, approach=pred.approach, grid=GRID, n_samples=args.samples,
                                 progress=False)

        def run_direct():
            with _direct():
                return run()

        (ew, ec, em), (dw, dc, dm) = timed([run, run_direct], args.repeat)
        rows.append({"model": name, "exact_cpu_s": ec, "direct_cpu_s": dc, "ratio_cpu": ec / dc,
                     "ratio_wall": ew / dw, "exact_failures": len(diff(pred, em).failures),
                     "direct_failures": len(diff(pred, dm).failures), "notes": em.notes})
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "samples": args.samples, "grid": GRID,
                          "repeat": args.repeat, "models": rows}, indent=1))
        return
    print(f"{torch.get_num_threads()} threads, {args.samples} samples, {len(GRID)} points, fastest of {args.repeat}")
    print(f"{'model':20s} {'exact cpu s':>11s} {'direct cpu s':>12s} {'ratio cpu':>9s} {'ratio wall':>10s} "
          f"{'fail exact':>10s} {'fail direct':>11s}")
    for r in rows:
        print(f"{r['model']:20s} {r['exact_cpu_s']:11.2f} {r['direct_cpu_s']:12.2f} {r['ratio_cpu']:9.2f} "
              f"{r['ratio_wall']:10.2f} {r['exact_failures']:10d} {r['direct_failures']:11d}")


if __name__ == "__main__":
    main()
