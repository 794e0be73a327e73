"""Gauge-mode drift on a small cross-entropy classifier: SGD vs Adam vs DDCAdam.

The classifier ``Linear-ReLU-Linear-ReLU-Linear`` is trained on a Gaussian mixture. Cross-entropy
cannot see a constant added to every logit, so anything an optimiser does along that direction is
drift. We read the gauge coordinates (the class-mean ``b_bar`` of the head bias and ``w_bar`` of the
head rows), the logit shift they cause on held-out inputs, ``mean_x |dw_bar . h(x) + db_bar|``, and
(for the first ReLU pair) how far the per-unit log-norm balance moved.
"""
from __future__ import annotations

import torch
from torch import nn

from ddgraph.optim.ddcadam import DDCAdam
from ddgraph.optim.gauges import CEShiftBias, CEShiftRowShift, ReLURescaleGauge
from ddgraph.optim.orbit import gauge_coordinates

CLASSES, DIM, HIDDEN = 5, 20, 64


def data(n: int, seed: int):
    """A fixed Gaussian mixture (means shared across seeds) and ``n`` labelled samples."""
    means = torch.randn(CLASSES, DIM, generator=torch.Generator().manual_seed(123)) * 0.6
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=gen)
    return means[y] + torch.randn(n, DIM, generator=gen), y


def classifier(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, CLASSES))


def specs(model):
    """The disjoint gauges of the classifier: the CE head shifts and the first ReLU pair."""
    return [CEShiftBias(model[4].bias), CEShiftRowShift(model[4].weight),
            ReLURescaleGauge(model[0].weight, model[2].weight, model[0].bias)]


def make(name: str, model):
    if name == "SGD":
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    if name == "Adam":
        return torch.optim.Adam(model.parameters(), lr=1e-3)
    return DDCAdam(model.parameters(), gauges=specs(model), lr=1e-3, rel_lr=1e-2)


def run(name: str, steps: int, seed: int = 0) -> dict:
    """Train with optimiser ``name`` and return the drift readouts and the test accuracy."""
    x, y = data(4000, seed=1)
    x_test, y_test = data(2000, seed=2)
    model = classifier(seed)
    probe = specs(model)
    start = [gauge_coordinates(s) for s in probe]
    opt = make(name, model)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    with torch.no_grad():
        out = model(x_test)
        delta = [gauge_coordinates(s) - c for s, c in zip(probe, start)]
        shift = model[:4](x_test).double() @ delta[1] + delta[0]
        moved = [float(d.norm()) for d in delta]
        return {"optimiser": name, "logit_shift": float(shift.abs().mean()),
                "bias_mean": moved[0], "row_mean": moved[1], "relu_balance": moved[2],
                "test_acc": float((out.argmax(1) == y_test).float().mean()),
                "test_loss": float(nn.functional.cross_entropy(out, y_test))}


def drift_table(steps: int = 3000, seeds=(0, 1, 2)) -> list[dict]:
    """Per optimiser, readouts averaged over ``seeds``."""
    rows = []
    for name in ("SGD", "Adam", "DDCAdam"):
        runs = [run(name, steps, s) for s in seeds]
        rows.append({k: (runs[0][k] if k == "optimiser" else sum(r[k] for r in runs) / len(runs))
                     for k in runs[0]})
    return rows
