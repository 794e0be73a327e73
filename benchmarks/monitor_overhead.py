"""Print the training-step time with ddgraph.monitor attached relative to the same loop without it
(target: overhead_ratio = monitored / plain <= 1.10 at the default cadence), and the memory growth.

Both loops run in this process on identical copies of the model, interleaved block by block (a block is
one periodic-tier period, so it holds its share of every tier), and the ratio is the median over blocks.
``overhead_ratio`` compares CPU time (process time; with ``--threads 1`` it is the work done, whatever else
the machine runs); ``wall_ratio`` compares wall time, which a shared machine makes noisy.
Memory: Python allocations (tracemalloc) over two more monitored periods, measured after each;
it should not grow with the number of steps.

Usage: python benchmarks/monitor_overhead.py [--model transformer|mlp] [--blocks 8] [--threads N] [--json]
"""
import argparse
import copy
import json
import statistics
import tempfile
import time
import tracemalloc

import torch
from torch import nn

from ddgraph.models.zoo import PreNormTransformer
from ddgraph.monitor import Cadence, Monitor


def build(name: str):
    """A model, a batch maker and a loss: a small GPT-style transformer or a wide MLP classifier."""
    gen = torch.Generator().manual_seed(0)
    if name == "transformer":
        model = PreNormTransformer(depth=4, width=64, heads=4, vocab=256)

        def batch():
            ids = torch.randint(0, 256, (16, 64), generator=gen)
            return (ids,), ids.roll(-1, 1)

        def loss(out, y):
            return nn.functional.cross_entropy(out.reshape(-1, 256), y.reshape(-1))
    else:
        model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))

        def batch():
            return (torch.randn(256, 256, generator=gen),), torch.randint(0, 10, (256,), generator=gen)

        def loss(out, y):
            return nn.functional.cross_entropy(out, y)
    return model, batch, loss


def steps(model, opt, batch, loss, n):
    """Wall and CPU seconds of ``n`` training steps."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        x, y = batch()
        opt.zero_grad()
        loss(model(*x), y).backward()
        opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def measure(name: str, blocks: int, tensorboard: bool) -> dict:
    torch.manual_seed(0)
    plain, batch, loss = build(name)
    watched = copy.deepcopy(plain)
    opt_p, opt_w = torch.optim.AdamW(plain.parameters(), 1e-3), torch.optim.AdamW(watched.parameters(), 1e-3)
    cadence = Cadence()
    period = cadence.factor_every
    with tempfile.TemporaryDirectory() as logdir:
        mon = Monitor(watched, opt_w, logdir=logdir, tensorboard=tensorboard)
        steps(plain, opt_p, batch, loss, 5)  # warm-up, both
        steps(watched, opt_w, batch, loss, 5)
        mon.steps = 0  # align the monitored block with the cadence
        mon._arm()
        times_p, times_w = [], []
        for _ in range(blocks):
            times_p.append(steps(plain, opt_p, batch, loss, period))
            times_w.append(steps(watched, opt_w, batch, loss, period))
        tracemalloc.start()  # after the timing: tracing allocations would slow the monitored loop more
        mem = []
        for _ in range(2):
            steps(watched, opt_w, batch, loss, period)
            mem.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        mon.close()
    cpu = [w[1] / p[1] for w, p in zip(times_w, times_p)]
    wall = [w[0] / p[0] for w, p in zip(times_w, times_p)]
    return {"model": name, "threads": torch.get_num_threads(), "steps_per_block": period, "blocks": blocks,
            "plain_ms_per_step": 1e3 * statistics.median(p[1] for p in times_p) / period,
            "monitored_ms_per_step": 1e3 * statistics.median(w[1] for w in times_w) / period,
            "overhead_ratio": statistics.median(cpu), "cpu_ratios": cpu,
            "wall_ratio": statistics.median(wall), "wall_ratios": wall,
            "memory_growth_bytes": mem[1] - mem[0], "memory_steps_between": period, "tensorboard": tensorboard,
            "cadence": {"stream_every": cadence.stream_every, "factor_every": cadence.factor_every,
                        "factor_batch_every": cadence.factor_batch_every}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["transformer", "mlp"], default="transformer")
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: CPU time is then the work)")
    ap.add_argument("--no-tensorboard", action="store_true", help="CSV only (TensorBoard is on when installed)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import tensorboard  # noqa: F401
        tb = not args.no_tensorboard
    except ModuleNotFoundError:
        tb = False
    out = measure(args.model, max(args.blocks, 2), tb)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['model']}: {out['plain_ms_per_step']:.2f} CPU ms/step plain, {out['monitored_ms_per_step']:.2f} monitored; "
          f"overhead_ratio {out['overhead_ratio']:.3f} (target <= 1.10); memory growth "
          f"{out['memory_growth_bytes']} bytes over {out['memory_steps_between']} steps")


if __name__ == "__main__":
    main()
