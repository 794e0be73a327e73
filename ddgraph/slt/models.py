"""The paper's worked families, built as :mod:`ddgraph.slt.families` objects.

Each builder returns a family whose ``theta_star`` is a point of the singular set, plus (where the
case has one) the dead direction or the component normals in parameter coordinates.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ddgraph.slt.families import DensityFamily, RegressionFamily

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _lognormal(x, mean):
    return -0.5 * (x - mean) ** 2 - _LOG_SQRT_2PI


def gaussian_power(k: int) -> DensityFamily:
    """paper §4.2: ``x ~ N(theta^k, 1)``, truth ``N(0, 1)``; KL ``theta^(2k)/2``, Fisher ``k^2 theta^(2k-2)``."""
    return DensityFamily(lambda x, th: _lognormal(x, th[0] ** k), [0.0])


def _mixture_logpdf(weights, means, x):
    comps = torch.stack([math.log(w) + _lognormal(x, m) if isinstance(w, float)
                         else torch.log(w) + _lognormal(x, m) for w, m in zip(weights, means)])
    return torch.logsumexp(comps, dim=0)


def gmm2_merge(weight: float = 0.3):
    """Two unit-variance components ``(1-w) N(mu1) + w N(mu2)`` merged at ``mu1 = mu2 = 0``.

    Returns
    -------
    family, merge direction (``(w, -(1-w))``: the split that keeps the mixture mean at zero).
    """
    fam = DensityFamily(
        lambda x, th: _mixture_logpdf([1 - weight, weight], [th[0], th[1]], x), [0.0, 0.0])
    return fam, np.array([weight, -(1 - weight)])


def gmm3_pair_merge(weights=(0.25, 0.25, 0.5), far: float = 3.0):
    """Three components; truth has components 1 and 2 merged at 0 and component 3 at ``far``.

    Returns
    -------
    family, merge direction of the pair (``(w2, -w1, 0)``).
    """
    w1, w2, w3 = weights
    fam = DensityFamily(
        lambda x, th: _mixture_logpdf([w1, w2, w3], [th[0], th[1], th[2]], x), [0.0, 0.0, far])
    return fam, np.array([w2, -w1, 0.0])


def weight_boundary(mu: float = 1.0):
    """paper §6 part (a): ``(1-pi) N(mu1) + pi N(mu2)`` at ``pi = 0, mu1 = 0, mu2 = mu``.

    ``theta = (pi, mu1, mu2)``. The fibre ``{pi = 0, mu1 = 0}`` has normals ``e_pi, e_mu1``; the
    vanishing component's mean ``mu2`` is tangent to it.

    Returns
    -------
    family, approach ``e_pi``, direction ``e_mu2``, normal basis ``(3, 2)``.
    """
    def logpdf(x, th):
        return torch.logaddexp(torch.log1p(-th[0]) + _lognormal(x, th[1]),
                               torch.log(th[0]) + _lognormal(x, th[2]))

    fam = DensityFamily(logpdf, [0.0, 0.0, mu])
    eye = np.eye(3)
    return fam, eye[0], eye[2], eye[:, :2]


class _DeadUnitNet(torch.nn.Module):
    def __init__(self, widths, act):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b, bias=False, dtype=torch.float64) for a, b in zip(widths, widths[1:]))
        self.act = act

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


_ACTS = {"linear": lambda x: x, "relu": torch.relu, "tanh": torch.tanh}


def dead_unit_net(depth: int = 2, act: str = "linear", width: int = 4, d_in: int = 6,
                  d_out: int = 5, n: int = 4000, seed: int = 0):
    """paper §4.3: a bias-free MLP whose last hidden unit is dead in every hidden layer.

    Dead rows and columns are zeroed; the dead direction moves the incoming row (``u``), every
    dead-to-dead entry (1) and the outgoing column (``v``) together, so the output picks up
    ``t^depth`` and the KL order is ``depth``. Inputs are a fixed ``N(0, I)`` sample of size n.

    Returns
    -------
    family, dead direction (unit vector in parameter space).
    """
    g = torch.Generator().manual_seed(seed)
    widths = [d_in] + [width] * (depth - 1) + [d_out]
    net = _DeadUnitNet(widths, _ACTS[act])
    direction = []
    with torch.no_grad():
        for i, layer in enumerate(net.layers):
            W = torch.randn(layer.weight.shape, generator=g, dtype=torch.float64)
            W /= math.sqrt(W.shape[1])
            D = torch.zeros_like(W)
            if i > 0:
                W[:, -1] = 0
            if i < depth - 1:
                W[-1, :] = 0
            if i == 0:
                D[-1, :] = torch.randn(W.shape[1], generator=g, dtype=torch.float64)
            elif i == depth - 1:
                D[:, -1] = torch.randn(W.shape[0], generator=g, dtype=torch.float64)
            else:
                D[-1, -1] = 1.0
            layer.weight.copy_(W)
            direction.append(D.reshape(-1))
    X = torch.randn(n, d_in, generator=g, dtype=torch.float64)
    fam = RegressionFamily.from_module(net, X)
    return fam, torch.cat(direction).numpy()


def crossing_toy(ks) -> RegressionFamily:
    """Normal-crossing toy: ``y = prod_i w_i^{k_i} + noise``; ``KL = prod_i w_i^{2 k_i} / 2``.

    Component ``i`` is ``{w_i = 0}`` with normal ``e_i``; the truth is the origin.
    """
    ks = [int(k) for k in ks]

    def mean(th, X):
        return X * torch.prod(torch.stack([th[i] ** k for i, k in enumerate(ks)]))

    return RegressionFamily(mean, torch.ones(1, 1, dtype=torch.float64), np.zeros(len(ks)))
