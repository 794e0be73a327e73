"""Probe cost, measured in one run: per t-point vs a bare forward+backward, vs curvlinops' K-FAC,
and peak memory as the sample count grows tenfold.

Model: a depth-6, width-64 ReLU MLP in fp64 on 20,000 Gaussian samples, 2 threads (issue 3).
Targets: probe time per t-point / bare forward+backward <= 1.3; probe K-FAC time / curvlinops'
KFACLinearOperator (empirical Fisher) <= 0.75; peak memory flat in the sample count.

curvlinops is a benchmark-only dependency. Install it without letting pip replace torch:
    pip install --no-deps curvlinops-for-pytorch backpack-for-pytorch einops linear_operator \\
        unfoldNd einconv opt-einsum

    python benchmarks/probe_overhead.py [--samples 20000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

import ddgraph
from ddgraph.models.zoo import chain

DEPTH, WIDTH = 6, 64


def timed(fn, repeat: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``fn`` (CPU time is robust to other processes' load)."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def bare_pass(model, x, y):
    def step():
        model.zero_grad(set_to_none=True)
        loss = 0.5 * ((model(x) - y) ** 2).sum() / x.shape[0]
        loss.backward()
    return step


def curvlinops_kfac(model, x, y):
    try:
        from curvlinops import KFACLinearOperator
    except ImportError:
        return None
    params = [p for p in model.parameters() if p.requires_grad]

    def step():
        op = KFACLinearOperator(model, nn.MSELoss(reduction="sum"), params, [(x, y)], fisher_type="empirical",
                                check_deterministic=False, num_data=x.shape[0], num_per_example_loss_terms=1)
        op.compute_kronecker_factors()
    return step


def peak_rss_mb(n: int, cache_mb: float) -> float:
    """Peak resident memory of a fresh process probing the model with ``n`` samples."""
    code = (
        "import resource, torch, ddgraph; from ddgraph.models.zoo import chain; torch.manual_seed(0); "
        f"ddgraph.probe(chain({DEPTH}, 'relu', width={WIDTH}), torch.randn(4, {WIDTH}), n_samples={n}, "
        f"chunk=4096, cache_mb={cache_mb}, progress=False, grid=[1e-2, 1e-3, 1e-4]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    n = args.samples
    model = chain(DEPTH, "relu", width=WIDTH).double()
    x = torch.randn(n, WIDTH, dtype=torch.float64)
    y = torch.randn(n, WIDTH, dtype=torch.float64)

    bare = timed(bare_pass(model, x, y), args.repeat)
    grid = [10.0 ** (-2 - k / 2) for k in range(args.repeat + 2)]
    meas = ddgraph.probe(chain(DEPTH, "relu", width=WIDTH), x[:4].float(), n_samples=n, chunk=n,
                         grid=grid, progress=False)
    probe = (meas.seconds_per_t, meas.cpu_seconds_per_t)
    kfac = curvlinops_kfac(model, x, y)
    ref = timed(kfac, args.repeat) if kfac else None
    mem = {m: {c: peak_rss_mb(m, c) for c in (0, 256)} for m in (n, 10 * n)}

    result = {"bare_forward_backward_s": bare, "probe_per_t_s": probe, "curvlinops_kfac_s": ref,
              "probe_over_bare": [p / b for p, b in zip(probe, bare)],
              "probe_over_curvlinops": [p / r for p, r in zip(probe, ref)] if ref else None,
              "peak_rss_mb": {str(k): v for k, v in mem.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"ReLU MLP depth {DEPTH}, width {WIDTH}, fp64, {n} samples, {torch.get_num_threads()} threads")
    print(f"{'':31s}{'wall s':>8} {'cpu s':>8}   ratio wall / cpu")
    print(f"bare forward+backward          {bare[0]:8.4f} {bare[1]:8.4f}")
    print(f"probe, one t-point             {probe[0]:8.4f} {probe[1]:8.4f}   "
          f"{probe[0] / bare[0]:5.2f} / {probe[1] / bare[1]:5.2f}  vs bare (target <= 1.3)")
    if ref:
        print(f"curvlinops KFAC (empirical)    {ref[0]:8.4f} {ref[1]:8.4f}   "
              f"{probe[0] / ref[0]:5.2f} / {probe[1] / ref[1]:5.2f}  probe vs curvlinops (target <= 0.75)")
    else:
        print("curvlinops not installed: see the module docstring for the install line")
    for m, row in mem.items():
        print(f"peak RSS, {m:>7} samples       no cache {row[0]:7.0f} MB   256 MB cache {row[256]:7.0f} MB")
    growth = mem[10 * n][0] / mem[n][0]
    print(f"peak memory x{growth:.2f} for x10 samples without the cache (target: flat)")


if __name__ == "__main__":
    main()
