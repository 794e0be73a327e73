"""Optimiser step time of DDCAdam relative to ``torch.optim.AdamW`` on the same model."""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from ddgraph.optim.ddcadam import DDCAdam


def models(width: int = 1024) -> dict:
    """Benchmark models: a ReLU MLP classifier and a LayerNorm MLP classifier."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                        nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    ln = nn.Sequential(nn.Linear(784, width), nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(),
                       nn.Linear(width, width), nn.LayerNorm(width), nn.Linear(width, 10))
    return {f"ReLU MLP 784-{width}x3-10": mlp, f"LayerNorm MLP 784-{width}x3-10": ln}


def step_time(opt, params, repeats: int) -> float:
    """Median wall time of ``opt.step()`` in seconds (gradients fixed, 3 warm-up steps)."""
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    times = []
    for i in range(repeats + 3):
        t0 = time.perf_counter()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def benchmark(width: int = 1024, repeats: int = 20) -> list[dict]:
    """One row per model: step times of AdamW and DDCAdam, their ratio and the gauges in use."""
    rows = []
    for name, model in models(width).items():
        params = list(model.parameters())
        ddc = DDCAdam.from_model(model, torch.randn(2, 784), lr=1e-4)
        t_ddc = step_time(ddc, params, repeats)
        t_adamw = step_time(torch.optim.AdamW(params, lr=1e-4), params, repeats)
        rows.append({"model": name, "params": sum(p.numel() for p in params), "adamw_ms": 1e3 * t_adamw,
                     "ddcadam_ms": 1e3 * t_ddc, "ratio": t_ddc / t_adamw,
                     "gauges": ", ".join(type(s).__name__ for s in ddc.gauges)})
    return rows
