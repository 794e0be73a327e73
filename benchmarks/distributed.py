"""The data-parallel probe: cost per t-point with 1 and 2 local gloo ranks, gloo's all-reduce bandwidth,
the probe's per-layer cost as width grows, and what a 7B or 70B probe would cost on N GPUs.

Measured here, in one run (ranks interleaved, repeated, median):
  * seconds per t-point of ``ddgraph.probe`` on a depth-6 width-256 ReLU MLP, launched with
    ``torchrun --standalone --nproc_per_node N`` for N = 1, 2 (wall and per-rank CPU time);
  * gloo all-reduce bandwidth between 2 local ranks (fp64, 32 MB);
  * the probe's cost per t-point on linear layers of growing width, as an achieved fp64 rate: per row
    a layer costs ``4 d_in d_out`` flops (forward, input gradient) and ``2 (d_in**2 + d_out**2)`` (its
    A and G sums).
Extrapolated (not measured): a LLaMA-2-7B / 70B probe, from the same flop count per token: on this CPU
at the rate measured on the widest layer, and on N GPUs at an assumed sustained fp64 rate
(``--gpu-tflops``) with the factor reduction at an assumed all-reduce bus bandwidth (``--bus-gbs``).

    python benchmarks/distributed.py [--samples 8000] [--repeat 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

import ddgraph
from ddgraph.models.zoo import chain

DEPTH, WIDTH = 6, 256
GRID = [1e-2, 1e-3, 1e-4, 1e-5]
#: LLaMA-2 shapes: (layers, width, ffn, kv width, vocab, parameters)
LLAMA = {"LLaMA-2-7B": (32, 4096, 11008, 4096, 32000, 6.7e9), "LLaMA-2-70B": (80, 8192, 28672, 1024, 32000, 69e9)}


def worker(samples: int, chunk: int, out: str) -> None:
    """One rank: the MLP's probe time per t-point, then (2 ranks) gloo's all-reduce bandwidth."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = chain(DEPTH, "relu", width=WIDTH)
    m = ddgraph.probe(model, torch.randn(4, WIDTH), grid=GRID, n_samples=samples, chunk=chunk, progress=False)
    found = {"wall": m.seconds_per_t, "cpu": m.cpu_seconds_per_t, "factor_mb": m.factor_mb}
    if dist.get_world_size() > 1:
        x = torch.ones(4 * 2**20, dtype=torch.float64)  # 32 MB
        dist.all_reduce(x)
        times = []
        for _ in range(5):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            times.append(time.perf_counter() - t0)
        found["allreduce_gbs"] = x.numel() * 8 / statistics.median(times) / 1e9
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(found))
    dist.destroy_process_group()


def launch(n: int, samples: int, chunk: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), __file__,
           "--worker", "--samples", str(samples), "--chunk", str(chunk), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.read_text())


def layer_flops(d_in: int, d_out: int) -> int:
    """fp64 flops per row of one linear layer in the probe: forward and input gradient, then A and G sums."""
    return 4 * d_in * d_out + 2 * (d_in * d_in + d_out * d_out)


def layer_rates(repeat: int, rows: int) -> list[dict]:
    """The probe's achieved fp64 rate on two-layer ReLU MLPs of growing width (median CPU seconds per t-point)."""
    out = []
    for width in (64, 128, 256, 512, 1024):
        torch.manual_seed(0)
        model = chain(2, "relu", width=width)
        runs = [ddgraph.probe(model, torch.randn(4, width), grid=GRID, n_samples=rows, chunk=rows,
                              progress=False).cpu_seconds_per_t for _ in range(repeat)]
        flops = rows * 2 * layer_flops(width, width)
        out.append({"width": width, "seconds_per_t": statistics.median(runs),
                    "gflops": flops / statistics.median(runs) / 1e9})
    return out


def llama_flops(name: str) -> dict:
    """Per token: the probe's fp64 flops over LLaMA-2's linears, and the bytes of their A and G sums."""
    layers, w, ffn, kv, vocab, _ = LLAMA[name]
    linears = [(w, w), (w, kv), (w, kv), (w, w), (w, ffn), (w, ffn), (ffn, w)] * layers + [(w, vocab)]
    return {"flops": sum(layer_flops(a, b) for a, b in linears),
            "factor_gb": 8 * sum(a * a + b * b for a, b in linears) / 1e9}


def extrapolate(tokens: float, cpu_gflops: float, gpu_tflops: float, bus_gbs: float) -> list[dict]:
    """Seconds per t-point of a LLaMA-2 probe on this CPU and on N GPUs (extrapolated, see the module doc)."""
    rows = []
    for name in LLAMA:
        u = llama_flops(name)
        rows.append({"model": name, "device": "this CPU (1 process)", "factor_gb": u["factor_gb"],
                     "per_t_s": tokens * u["flops"] / (cpu_gflops * 1e9), "reduce_s": 0.0})
        for n in (1, 8, 64, 512):
            compute = tokens * u["flops"] / (gpu_tflops * 1e12) / n
            comm = 0 if n == 1 else 2 * (n - 1) / n * u["factor_gb"] / bus_gbs
            rows.append({"model": name, "device": f"{n} GPU(s)", "factor_gb": u["factor_gb"],
                         "owned_gb_per_gpu": u["factor_gb"] / n, "compute_s": compute, "reduce_s": comm,
                         "per_t_s": compute + comm})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=8000)
    p.add_argument("--chunk", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rows", type=int, default=4000, help="rows of the per-layer cost fit")
    p.add_argument("--tokens", type=float, default=1e6, help="tokens per t-point of the extrapolated LLaMA probe")
    p.add_argument("--gpu-tflops", type=float, default=30.0, help="assumed sustained fp64 TFLOP/s of one GPU")
    p.add_argument("--bus-gbs", type=float, default=200.0, help="assumed all-reduce bus bandwidth, GB/s")
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.samples, args.chunk, args.out)
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"ddgraph-distributed-{os.getpid()}.json"
    runs: dict[int, list] = {1: [], 2: []}
    for _ in range(args.repeat):  # interleaved: both counts see the same machine load
        for n in runs:
            runs[n].append(launch(n, args.samples, args.chunk, out))
    out.unlink(missing_ok=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu")} for n, rs in runs.items()}
    torch.set_num_threads(1)
    rates = layer_rates(args.repeat, args.rows)
    cpu_gflops = rates[-1]["gflops"]  # the widest layer: closest to real-scale matmuls
    result = {
        "model": f"depth-{DEPTH} width-{WIDTH} ReLU MLP, {args.samples} samples, chunk {args.chunk}",
        "seconds_per_t": {str(n): v for n, v in med.items()},
        "ratio_wall_2_over_1": med[2]["wall"] / med[1]["wall"],
        "ratio_cpu_per_rank_2_over_1": med[2]["cpu"] / med[1]["cpu"],
        "factor_mb": runs[1][0]["factor_mb"],
        "gloo_allreduce_gbs": statistics.median(r["allreduce_gbs"] for r in runs[2]),
        "per_layer": rates,
        "extrapolated": {"tokens_per_t": args.tokens, "cpu_gflops_measured": cpu_gflops,
                         "gpu_tflops_assumed": args.gpu_tflops, "bus_gbs_assumed": args.bus_gbs,
                         "rows": extrapolate(args.tokens, cpu_gflops, args.gpu_tflops, args.bus_gbs)},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(result["model"])
    for n, v in med.items():
        print(f"  {n} rank(s): {v['wall']:.3f} s wall, {v['cpu']:.3f} s CPU per rank, per t-point")
    print(f"  2 ranks / 1 rank: wall {result['ratio_wall_2_over_1']:.2f}x, "
          f"CPU per rank {result['ratio_cpu_per_rank_2_over_1']:.2f}x")
    print(f"  factor sums {result['factor_mb']:.1f} MB; gloo all-reduce {result['gloo_allreduce_gbs']:.2f} GB/s")
    print(f"per-layer cost ({args.rows} rows, 2-layer ReLU MLP, 1 thread): " + ", ".join(
        f"width {r['width']} {r['seconds_per_t'] * 1e3:.1f} ms ({r['gflops']:.1f} GFLOP/s)" for r in rates))
    print(f"extrapolated ({args.tokens:.0e} tokens per t-point; CPU at {cpu_gflops:.1f} GFLOP/s measured, GPU at "
          f"{args.gpu_tflops:g} TFLOP/s fp64 and {args.bus_gbs:g} GB/s all-reduce assumed):")
    for r in result["extrapolated"]["rows"]:
        owned = f", {r['owned_gb_per_gpu']:.1f} GB per GPU when owned" if "owned_gb_per_gpu" in r else ""
        print(f"  {r['model']:12s} {r['device']:21s} {r['per_t_s']:10.1f} s per t-point (reduce "
              f"{r['reduce_s']:.1f} s); factors {r['factor_gb']:.0f} GB{owned}")


if __name__ == "__main__":
    main()
