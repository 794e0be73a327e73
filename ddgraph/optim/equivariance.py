"""Remark 84's numerical check: gauge-related starts, synchronised gradients, same orbit to round-off?

Two copies of a small model start at ``theta`` and ``g . theta``. Each step both see the same mini-batch
and compute their own gradient (so round-off in the forward pass is part of the test). The residuals:

* ``fixed``: ``|g^-1 . theta_B(t) - theta_A(t)| / |theta_A(t)|`` over all parameters, the equivariance
  identity ``U(g . theta) = g . U(theta)`` with the *same* group element throughout;
* ``orbit``: the largest relative gap between the two runs' quotient (gauge-invariant) coordinates,
  i.e. whether they still share an orbit at all;
* ``drift``: how far run A moved along its own orbit (change of its gauge coordinates).
"""
from __future__ import annotations

import copy
from typing import Callable

import attrs
import torch
from torch import nn

from ddgraph.optim.ddcadam import DDCAdam
from ddgraph.optim.gauges import CEShiftBias, CEShiftRowShift, ChainedReLURescaleGauge, LNScaleGauge, ReLURescaleGauge
from ddgraph.optim.orbit import act, gauge_coordinates, quotient_coordinates, random_element

N_IN, N_DATA, BATCH = 6, 256, 32


@attrs.frozen
class Case:
    """One gauge spec on a small model that carries it."""

    name: str
    build: Callable[[], nn.Module]
    spec: Callable[[nn.Module], object]
    classes: int = 0  # > 0: cross-entropy over this many classes; 0: MSE on 4 targets


def _mlp(*widths, act_cls=nn.ReLU, bias=True):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b, bias=bias or i in (0, len(widths) - 2)))
        layers.append(act_cls())
    return nn.Sequential(*layers[:-1])


CASES = (
    Case("CEShiftBias", lambda: _mlp(N_IN, 16, 5, act_cls=nn.Tanh), lambda m: CEShiftBias(m[2].bias), 5),
    Case("CEShiftRowShift", lambda: _mlp(N_IN, 16, 5, act_cls=nn.Tanh),
         lambda m: CEShiftRowShift(m[2].weight), 5),
    Case("ReLURescaleGauge", lambda: _mlp(N_IN, 16, 4),
         lambda m: ReLURescaleGauge(m[0].weight, m[2].weight, m[0].bias, per_channel=False)),
    Case("ReLURescaleGauge/per-channel", lambda: _mlp(N_IN, 16, 4),
         lambda m: ReLURescaleGauge(m[0].weight, m[2].weight, m[0].bias)),
    Case("LNScaleGauge", lambda: nn.Sequential(nn.Linear(N_IN, 16), nn.LayerNorm(16), nn.Linear(16, 4)),
         lambda m: LNScaleGauge(m[1].weight, [m[2].weight], m[1].bias)),
    Case("ChainedReLURescaleGauge", lambda: _mlp(N_IN, 16, 16, 16, 4, bias=False),
         lambda m: ChainedReLURescaleGauge([m[0].weight, m[2].weight, m[4].weight, m[6].weight], m[0].bias)),
)


def make_optimiser(name: str, model, spec, lr: float, **hyper):
    """``"ddcadam"`` (with ``spec``), ``"adam"`` or ``"adamw"`` (weight decay 0.01) on ``model``."""
    if name == "ddcadam":
        return DDCAdam(model.parameters(), gauges=[spec], lr=lr, **hyper)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    raise ValueError(f"unknown optimiser {name!r}")


def run_case(case: Case, optimiser: str, dtype=torch.float64, *, steps: int = 200, lr: float = 1e-2,
             seed: int = 0, element_scale: float = 1.0, **hyper) -> dict:
    """Run both copies for ``steps`` steps; return the final ``fixed``, ``orbit`` and ``drift``."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model_a = case.build().to(dtype)
    model_b = copy.deepcopy(model_a)
    spec_a, spec_b = case.spec(model_a), case.spec(model_b)
    g = random_element(spec_a, gen, element_scale)
    act(spec_b, g)
    x = torch.randn(N_DATA, N_IN, generator=gen, dtype=torch.float64).to(dtype)
    if case.classes:
        y = torch.randint(0, case.classes, (N_DATA,), generator=gen)
        loss_fn = nn.functional.cross_entropy
    else:
        y = torch.randn(N_DATA, 4, generator=gen, dtype=torch.float64).to(dtype)
        loss_fn = nn.functional.mse_loss
    start = gauge_coordinates(spec_a)
    opts = [make_optimiser(optimiser, m, s, lr, **hyper) for m, s in ((model_a, spec_a), (model_b, spec_b))]
    for _ in range(steps):
        idx = torch.randint(0, N_DATA, (BATCH,), generator=gen)
        for model, opt in zip((model_a, model_b), opts):
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    return {"fixed": _fixed_residual(model_a, model_b, spec_b, g),
            "orbit": _orbit_residual(spec_a, spec_b),
            "drift": float((gauge_coordinates(spec_a) - start).norm())}


@torch.no_grad()
def _fixed_residual(model_a, model_b, spec_b, g) -> float:
    pulled = [p.detach().clone() for p in spec_b.params]
    act(spec_b, -g, pulled)
    back = {id(p): q for p, q in zip(spec_b.params, pulled)}
    num = den = 0.0
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        num += float((back.get(id(pb), pb).double() - pa.double()).pow(2).sum())
        den += float(pa.double().pow(2).sum())
    return (num / den) ** 0.5


def _orbit_residual(spec_a, spec_b) -> float:
    pairs = zip(quotient_coordinates(spec_a), quotient_coordinates(spec_b))
    return max(float((qa - qb).norm() / qa.norm().clamp_min(1e-300)) for qa, qb in pairs)


def equivariance_table(optimisers=("ddcadam", "adam", "adamw"), dtypes=(torch.float32, torch.float64),
                       steps: int = 200) -> list[dict]:
    """One row per (case, optimiser, dtype) with the three residuals."""
    return [dict(case=c.name, optimiser=o, dtype=str(d).replace("torch.", ""), **run_case(c, o, d, steps=steps))
            for c in CASES for o in optimisers for d in dtypes]
