"""Appendix B.3, cell A: the trajectory-rate readout on the canonical-aligned bridge testbed.

A two-layer linear network ``y = W2 W1 x`` (width ``d``, dead coordinate ``d-1``) starts at the
canonical singular configuration (generic bulk, dead row and column zero) plus ``t0`` on both
dead-to-dead entries, and is trained on the exact population loss of the noisy-MSE regime,
``L = |W2 W1 - M*|_F^2 / 2 + const`` (x ~ N(0, I); the noise only adds a constant). Along the trajectory
we read the dead amplitude ``t = sqrt|W1_dd W2_dd|`` (gauge-invariant) and the K-FAC dead entries
``G1_dd`` (noisy regime, s = 1) and ``A2_dd``; Theorem 21 predicts both fall as ``t^2``. The slope is
fitted over the last third of the run, as the paper does.

The same run is repeated from a gauge-rotated start (every hidden unit rescaled, the dead one by 3):
a point on the same orbit, so the same function and the same quotient trajectory for an equivariant
optimiser. Euclidean SGD and Adam are not equivariant under rescaling, so their readout changes.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ddgraph.optim.ddcadam import DDCAdam
from ddgraph.optim.gauges import ReLURescaleGauge
from ddgraph.optim.orbit import act
from ddgraph.probing.fit import fit_rate

#: Optimisers compared, with their step sizes (SGD at a stable rate for this bulk, Adam at its default).
OPTIMISERS = {"SGD": 0.1, "Adam": 1e-3, "DDCAdam": 3e-2}
PREDICTED = 2.0


def testbed(d: int = 8, t0: float = 0.3, seed: int = 0):
    """Bulk target ``M*`` and the starting weights ``(W1, W2)`` in fp64."""
    gen = torch.Generator().manual_seed(seed)
    w1s, w2s = (torch.randn(d, d, generator=gen, dtype=torch.float64) / math.sqrt(d) for _ in range(2))
    for w in (w1s, w2s):
        w[-1, :] = 0.0
        w[:, -1] = 0.0
    w1, w2 = w1s.clone(), w2s.clone()
    w1[-1, -1] = w2[-1, -1] = t0
    return w2s @ w1s, w1, w2


def _optimiser(name, params, lr):
    if name == "SGD":
        return torch.optim.SGD(params, lr=lr)
    if name == "Adam":
        return torch.optim.Adam(params, lr=lr)
    return DDCAdam(params, gauges=[ReLURescaleGauge(params[0], params[1])], lr=lr)


def trajectory(name: str, steps: int, *, rotated: bool, d: int = 8, seed: int = 0) -> dict:
    """Train with optimiser ``name``; return arrays ``t``, ``G1``, ``A2``, ``cos`` at ~600 even steps."""
    m_star, w1, w2 = testbed(d, seed=seed)
    w1.requires_grad_(True)
    w2.requires_grad_(True)
    if rotated:
        z = torch.empty(d, 1, dtype=torch.float64).uniform_(-1, 1, generator=torch.Generator().manual_seed(1))
        z[-1] = math.log(3.0)
        act(ReLURescaleGauge(w1, w2), z)
    opt = _optimiser(name, [w1, w2], OPTIMISERS[name])
    every = max(1, steps // 600)
    rec = []
    for s in range(steps):
        opt.zero_grad()
        r = w2 @ w1 - m_star
        (0.5 * (r * r).sum()).backward()
        opt.step()
        if s % every and s != steps - 1:
            continue
        with torch.no_grad():
            r = w2 @ w1 - m_star
            col = w2[:, -1]
            g1 = col @ (r @ r.T + torch.eye(d, dtype=r.dtype)) @ col
            a2 = (w1[-1] @ w1[-1])
            cos = min(_alignment(w1[-1]), _alignment(col))
            rec.append((math.sqrt(abs(float(w1[-1, -1] * w2[-1, -1]))), float(g1), float(a2), cos))
    return dict(zip(("t", "G1", "A2", "cos"), np.array(rec).T))


def _alignment(v) -> float:
    """|cos| between a dead row/column and the dead axis (1 when it is exactly zero)."""
    n = float(v.norm())
    return abs(float(v[-1])) / n if n > 0 else 1.0


def readout(traj: dict, n_points: int = 40) -> dict:
    """Late-third slopes of ``G1`` and ``A2`` against ``t``, the span of ``t`` and the alignment."""
    n = len(traj["t"])
    idx = np.unique(np.geomspace(2 * n // 3 + 1, n, n_points).astype(int) - 1)
    out = {"span_oom": float(np.log10(traj["t"][0] / traj["t"][-1])), "min_cos": float(traj["cos"].min())}
    for key in ("G1", "A2"):
        f = fit_rate(traj["t"][idx], traj[key][idx], tol=0.1)
        out[key] = f.slope
        out[key + "_r2"] = f.r2
    return out


def cell_a_table(steps: int = 20000) -> list[dict]:
    """One row per optimiser and start (balanced canonical, gauge-rotated)."""
    return [dict(optimiser=name, start="rotated" if rot else "balanced",
                 **readout(trajectory(name, steps, rotated=rot)))
            for name in OPTIMISERS for rot in (False, True)]
