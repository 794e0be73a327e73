"""Residual-stream sites whose sigma_min^2 falls faster than fp64 can resolve against the bulk."""
import numpy as np
import torch
from torch import nn

import ddgraph


class _Block(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.l1, self.l2 = nn.Linear(w, w), nn.Linear(w, w)

    def forward(self, x):
        return x + self.l2(torch.relu(self.l1(x)))


def _deep_stem(width=6, stem=5, blocks=2):
    """A deep ReLU stem feeding a residual stream: the stream's dead channel arrives at a high order."""
    torch.manual_seed(0)
    layers = [m for _ in range(stem) for m in (nn.Linear(width, width), nn.ReLU())]
    model = nn.Sequential(*layers, *[_Block(width) for _ in range(blocks)], nn.Linear(width, 3))
    return model, (torch.randn(1, width),)


def test_a_stream_rate_under_the_eigensolver_floor_is_read_by_its_schur_complement():
    model, inputs = _deep_stem()
    grid = [float(t) for t in np.geomspace(1e-2, 1e-4, 5)]
    d = ddgraph.check(model, inputs, n_samples=1000, grid=grid, progress=False)
    rates = [s["predicted"] for s in d.streams]
    # at the largest t, lambda_min would sit under 1e-16 of the bulk: an eigensolver on the whole moment
    # reads rounding there, so only a reading free of the bulk can pass
    assert len(rates) == 2 and all(max(grid) ** r < 1e-16 for r in rates)
    assert [s["verdict"] for s in d.streams] == ["pass", "pass"], d.streams
    assert d.ok
