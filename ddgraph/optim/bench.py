"""Optimiser step time of DDCAdam relative to ``torch.optim.AdamW`` on the same model.

The two optimisers step identical copies of a model alternately (interleaved, so a noisy machine slows
both alike) and the ratio is of their median step times.
"""
from __future__ import annotations

import copy
import statistics
import time
import warnings

import torch
from torch import nn

from ddgraph.errors import OptionError
from ddgraph.optim.ddcadam import DDCAdam
from ddgraph.optim.discover import GaugeDroppedWarning
from ddgraph.optim.gauges import ReLURescaleGauge


def models(width: int = 1024) -> dict:
    """Benchmark models: a ReLU MLP classifier and a LayerNorm MLP classifier."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                        nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    ln = nn.Sequential(nn.Linear(784, width), nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(),
                       nn.Linear(width, width), nn.LayerNorm(width), nn.Linear(width, 10))
    return {f"ReLU MLP 784-{width}x3-10": mlp, f"LayerNorm MLP 784-{width}x3-10": ln}


def gauged_mlp(fraction: float, n_params: int = 1_000_000, d_in: int = 784, d_mid: int = 200):
    """A ReLU MLP of about ``n_params`` parameters and the per-channel ReLU gauge of its first pair,
    sized so the gauge acts on ``fraction`` of the parameters (the rest: a plain linear head).

    ``Linear(d_in, h) - ReLU - Linear(h, d_mid) [- Linear(d_mid, q)]``: the gauge holds the first
    layer and the second weight; the head (``q`` outputs, absent when ``q`` would be 0) is ungauged.
    """
    if not 0 < fraction <= 1:
        raise OptionError(f"gauged fraction must lie in (0, 1], got {fraction}")
    h = max(1, round(fraction * n_params / (d_in + 1 + d_mid)))
    q = max(0, round((n_params - h * (d_in + 1 + d_mid) - d_mid) / (d_mid + 1)))
    torch.manual_seed(0)
    layers = [nn.Linear(d_in, h), nn.ReLU(), nn.Linear(h, d_mid)] + ([nn.Linear(d_mid, q)] if q else [])
    model = nn.Sequential(*layers)
    return model, ReLURescaleGauge(model[0].weight, model[2].weight, model[0].bias)


def interleaved_step_times(make_a, make_b, model, repeats: int) -> dict:
    """Median ``step()`` wall and process-CPU seconds of two optimisers on copies of ``model`` (fixed
    gradients), stepped alternately after 3 warm-up steps each. ``make_*(module) -> optimizer``.

    Returns ``{"wall": (a, b), "cpu": (a, b)}``; CPU time does not count waiting for a busy machine.
    """
    runs = []
    for make in (make_a, make_b):
        m = copy.deepcopy(model)
        gen = torch.Generator().manual_seed(0)
        for p in m.parameters():
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype) * 1e-3
        runs.append(make(m))
    wall, cpu = ([], []), ([], [])
    for i in range(repeats + 3):
        for j, opt in enumerate(runs):
            t0, c0 = time.perf_counter(), time.process_time()
            opt.step()
            if i >= 3:
                wall[j].append(time.perf_counter() - t0)
                cpu[j].append(time.process_time() - c0)
    return {"wall": tuple(map(statistics.median, wall)), "cpu": tuple(map(statistics.median, cpu))}


def _row(name, model, make_ddc, repeats, **extra) -> dict:
    t = interleaved_step_times(lambda m: torch.optim.AdamW(m.parameters(), lr=1e-4), make_ddc, model, repeats)
    (w_adamw, w_ddc), (c_adamw, c_ddc) = t["wall"], t["cpu"]
    return {"model": name, "params": sum(p.numel() for p in model.parameters()), "adamw_ms": 1e3 * w_adamw,
            "ddcadam_ms": 1e3 * w_ddc, "ratio": w_ddc / w_adamw, "adamw_cpu_ms": 1e3 * c_adamw,
            "ddcadam_cpu_ms": 1e3 * c_ddc, "cpu_ratio": c_ddc / c_adamw, **extra}


def benchmark(width: int = 1024, repeats: int = 20) -> list[dict]:
    """One row per model: step times of AdamW and DDCAdam, their ratio and the gauges in use."""
    rows = []
    for name, model in models(width).items():
        with warnings.catch_warnings():  # the CE head claims a layer the ReLU / LN gauge also wants: expected here
            warnings.simplefilter("ignore", GaugeDroppedWarning)
            gauges = DDCAdam.from_model(model, torch.randn(2, 784), lr=1e-4).gauges

            def make(m):
                return DDCAdam.from_model(m, torch.randn(2, 784), lr=1e-4)
            rows.append(_row(name, model, make, repeats, gauges=", ".join(type(s).__name__ for s in gauges)))
    return rows


def gauged_fraction(fractions=(0.1, 0.5, 0.9, 1.0), n_params: int = 1_000_000, repeats: int = 20) -> list[dict]:
    """The worst case by construction: one row per gauged fraction of a ReLU MLP (:func:`gauged_mlp`)."""
    rows = []
    for f in fractions:
        model, spec = gauged_mlp(f, n_params)
        held = {id(p) for p in spec.params}
        share = sum(p.numel() for p in model.parameters() if id(p) in held) / sum(p.numel() for p in model.parameters())

        def make(m):
            return DDCAdam(m.parameters(), gauges=[ReLURescaleGauge(m[0].weight, m[2].weight, m[0].bias)], lr=1e-4)
        rows.append(_row(f"ReLU MLP, {share:.1%} gauged", model, make, repeats, gauged=share,
                         gauges="ReLURescaleGauge (per channel)"))
    return rows
