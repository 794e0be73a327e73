"""Measurements the probe does not make, written with plain torch on the canonical copy.

* forward and backward block orders (the output deviation and the input gradient on the dead
  coordinate, Thm 66/67, Prop 114) and the directional Fisher along the approach (Thm 2);
* the ReLU Schur-cancellation constant of Lemma 18 (Monte Carlo);
* rotated dead directions (Prop 118/119), where the dead direction is not a coordinate;
* the tied-weight toy model of superposition (paper §7.2): the full Fisher of the tied parameter;
* the empirical-Fisher collapse under memorisation (Cor 39).

Every routine draws from its own seeded generator and reuses the sample at every t (common random
numbers), so results are deterministic.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ddgraph.probing.canonical import canonicalise
from ddgraph.probing.fit import Fit, fit_rate


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sample_like(example, n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn((n,) + tuple(example.shape[1:]), generator=gen, dtype=torch.float64)


def block_orders(pred, example, grid, n: int = 4000, seed: int = 0, noise: float = 1.0) -> dict[str, Fit]:
    """Fits of the dead-coordinate observables of a model on its canonical approach.

    Returns fits of ``E[(f_t - f_0)_dead^2]`` ('forward', slope 2k), of ``E[(dL/dx)_dead^2]`` with the
    noisy MSE loss ('backward', twice the order of the input gradient) and of ``E|df/dt|^2``
    ('fisher', the directional Fisher along the approach, Thm 2's ``2k - 2``).
    """
    canon = canonicalise(pred.graph, pred.approach)
    gen = _gen(seed)
    x = _sample_like(example, n, gen)
    canon.set_t(0.0)
    with torch.no_grad():
        f0 = canon.gm(x)
    eps = noise * torch.randn(f0.shape, generator=gen, dtype=f0.dtype)
    fwd, bwd, fis = [], [], []
    for t in grid:
        canon.set_t(t)
        xi = x.clone().requires_grad_()
        f = canon.gm(xi)
        (gx,) = torch.autograd.grad((f * (f.detach() - f0 - eps)).sum(), xi)
        fwd.append(float(((f.detach() - f0)[..., -1] ** 2).mean()))
        bwd.append(float((gx[..., -1] ** 2).mean()))
        h = 1e-4 * t
        with torch.no_grad():
            canon.set_t(t + h)
            fp = canon.gm(x)
            canon.set_t(t - h)
            fm = canon.gm(x)
        fis.append(float((((fp - fm) / (2 * h)) ** 2).sum(-1).mean()))
    return {"forward": fit_rate(grid, fwd), "backward": fit_rate(grid, bwd), "fisher": fit_rate(grid, fis),
            "forward_values": fwd}


def input_gradient_order(pred) -> float:
    """The engine's order of the loss gradient at the model input's dead class."""
    from ddgraph.core.engine import VALUATION, pair

    g = pred.graph.nx
    inputs = [n for n in pred.graph.order() if g.nodes[n]["fx"].op == "placeholder"]
    val = g.nodes[inputs[0]][VALUATION]
    return pair(val.w, 1)[0]


# --- Lemma 18 -----------------------------------------------------------------------------------

def relu_schur_ratio(n_bulk: int, samples: int, t: float, seed: int = 0) -> tuple[float, float]:
    """Monte Carlo of Lemma 18's cancellation ratio ``c^T B^-1 c / A_dd`` at a ReLU layer's input.

    Canonical setup: pre-activations ``h = (z_1..z_n, t z_d)`` with iid standard Gaussians, ``a =
    relu(h)``, ``A = E[a a^T]``; ``B`` is the bulk block, ``c`` the dead row. Returns (measured,
    closed form ``n / (pi (n + pi - 1))``).
    """
    gen = _gen(seed)
    h = torch.randn(samples, n_bulk + 1, generator=gen, dtype=torch.float64)
    h[:, -1] *= t
    a = torch.relu(h)
    A = a.T @ a / samples
    B, c, add = A[:-1, :-1], A[:-1, -1], A[-1, -1]
    ratio = float(c @ torch.linalg.solve(B, c) / add)
    return ratio, n_bulk / (math.pi * (n_bulk + math.pi - 1))


# --- Prop 114 constant ----------------------------------------------------------------------------

def swiglu_constant(pred, example, t: float, n: int, seed: int = 0) -> float:
    """``E[f_dead^2] / t^6`` on the SwiGLU block's canonical approach (closed form 3/4 for silu)."""
    canon = canonicalise(pred.graph, pred.approach)
    x = _sample_like(example, n, _gen(seed))
    canon.set_t(0.0)
    with torch.no_grad():
        f0 = canon.gm(x)
        canon.set_t(t)
        f = canon.gm(x)
    return float(((f - f0)[..., -1] ** 2).mean()) / t ** 6


# --- Prop 118/119: rotated dead directions ------------------------------------------------------------

def _rotation(width: int, theta: float, gen: torch.Generator) -> torch.Tensor:
    """A rotation by ``theta * pi/2`` in the plane of ``e_last`` and a random orthogonal unit vector."""
    v = torch.randn(width, generator=gen, dtype=torch.float64)
    v[-1] = 0.0
    v /= v.norm()
    e = torch.zeros(width, dtype=torch.float64)
    e[-1] = 1.0
    phi = theta * math.pi / 2
    # R = I + sin(phi) (v e^T - e v^T) + (cos(phi) - 1)(e e^T + v v^T): sends e to cos e + sin v
    return (torch.eye(width, dtype=torch.float64) + math.sin(phi) * (torch.outer(v, e) - torch.outer(e, v))
            + (math.cos(phi) - 1) * (torch.outer(e, e) + torch.outer(v, v)))


def rotated_chain(act: str, theta: float, grid, depth: int = 4, width: int = 8, n: int = 4000,
                  seed: int = 0) -> dict[str, list[Fit]]:
    """K-FAC dead-entry rates of a chain whose dead direction is ``u = R e_last`` at every layer.

    ``W_l(t) = R C_l(t) R^T`` with ``C_l(t)`` canonical (generic bulk, dead row and column zero,
    dead entry t). Returns per layer the fits of ``u^T A_l u`` and ``u^T G_l u`` (noisy MSE).
    """
    from ddgraph.models.zoo import ACT_FN as ACT

    gen = _gen(seed)
    R = _rotation(width, theta, gen)
    u = R[:, -1]
    bulk = [torch.randn(width, width, generator=gen, dtype=torch.float64) / math.sqrt(width)
            for _ in range(depth)]
    for b in bulk:
        b[-1, :] = 0.0
        b[:, -1] = 0.0
    x = torch.randn(n, width, generator=gen, dtype=torch.float64)
    eps = torch.randn(n, width, generator=gen, dtype=torch.float64)
    phi = ACT[act]

    def weights(t):
        out = []
        for b in bulk:
            c = b.clone()
            c[-1, -1] = t
            out.append(R @ c @ R.T)
        return out

    def run(t, keep):
        h, acts, outs = x, [], []
        for i, w in enumerate(weights(t)):
            acts.append(h.detach())
            z = h @ w.T
            if keep:
                z = z.detach().requires_grad_() if i == 0 else z
            outs.append(z)
            h = phi(z) if i < depth - 1 else z
        return acts, outs, h

    with torch.no_grad():
        f0 = run(0.0, False)[2]
    a_vals = [[] for _ in range(depth)]
    g_vals = [[] for _ in range(depth)]
    for t in grid:
        acts, outs, h = run(t, True)
        grads = torch.autograd.grad((h * (h.detach() - f0 - eps)).sum(), outs)
        for i in range(depth):
            a_vals[i].append(float(((acts[i] @ u) ** 2).mean()))
            g_vals[i].append(float(((grads[i] @ u) ** 2).mean()))
    return {"A": [fit_rate(grid, v) for v in a_vals], "G": [fit_rate(grid, v) for v in g_vals]}


# --- paper §7.2: tied toy model of superposition ------------------------------------------------------------

def tms_fisher(model, grid, n: int = 4000, seed: int = 0, directions: int = 1) -> dict:
    """Full Fisher of the tied parameter ``W`` of ``x -> W^T W x`` along the ray ``W0 + t e_d u^T``.

    ``W0`` is the model's weight with its dead (last) row zeroed; ``u`` a random unit vector in input
    space (the paper's seed randomises ``u``). Returns fits of the directional Fisher along the ray
    and of the smallest non-gauge eigenvalue, plus the number of exact gauge zeros.
    """
    gen = _gen(seed)
    W0 = model.W.detach().double().clone()
    m, nin = W0.shape
    W0[-1, :] = 0.0
    u = torch.randn(nin, generator=gen, dtype=torch.float64)
    u /= u.norm()
    x = torch.randn(n, nin, generator=gen, dtype=torch.float64)
    ray = torch.zeros(m, nin, dtype=torch.float64)
    ray[-1] = u
    directional, bottom, gauge = [], [], []
    for t in grid:
        W = W0 + t * ray

        h = x @ W.T  # (n, m)
        # df_k / dW_ij = delta_jk h_i + W_ik x_j  (f = W^T W x)
        eye = torch.eye(nin, dtype=torch.float64)
        J = torch.einsum("jk,si->skij", eye, h) + torch.einsum("ik,sj->skij", W, x)
        J = J.reshape(-1, m * nin)
        F = J.T @ J / n
        directional.append(float(ray.flatten() @ F @ ray.flatten()))
        ev = torch.linalg.eigvalsh(F)
        floor = 1e-12 * float(ev[-1])
        nz = ev[ev > floor]
        gauge.append(int((ev <= floor).sum()))
        bottom.append(float(nz[0]))
    return {"directional": fit_rate(grid, directional), "bottom": fit_rate(grid, bottom),
            "gauge_zeros": gauge[-1], "expected_gauge": m * (m - 1) // 2}


# --- Thm 21: gauge zeros of the raw full Fisher ---------------------------------------------------

def full_fisher_gauge(depth: int = 3, width: int = 4, n: int = 2000, t: float = 1e-2, seed: int = 0) -> dict:
    """Count the exact zeros of the full Fisher of a linear chain at the canonical point, and compare
    with the K-FAC factors' smallest eigenvalues (rate-carrying, not zero)."""
    gen = _gen(seed)
    ws = []
    for _ in range(depth):
        w = torch.randn(width, width, generator=gen, dtype=torch.float64) / math.sqrt(width)
        w[-1, :] = 0.0
        w[:, -1] = 0.0
        w[-1, -1] = t
        ws.append(w)
    x = torch.randn(n, width, generator=gen, dtype=torch.float64)
    sizes = [w.numel() for w in ws]

    def f(flat):
        parts = torch.split(flat, sizes)
        h = x
        for p in parts:
            h = h @ p.view(width, width).T
        return h

    flat = torch.cat([w.flatten() for w in ws])
    J = torch.autograd.functional.jacobian(f, flat).reshape(-1, flat.numel())
    F = J.T @ J / n
    ev = torch.linalg.eigvalsh(F)
    zeros = int((ev <= 1e-12 * float(ev[-1])).sum())
    # K-FAC factors: smallest eigenvalues relative to the largest (none is at the floor)
    h, kfac_min = x, []
    for i, w in enumerate(ws):
        A = h.T @ h / n
        ea = torch.linalg.eigvalsh(A)
        kfac_min.append(float(ea[0] / ea[-1]))
        h = h @ w.T
    return {"params": flat.numel(), "zeros": zeros, "gauge_dim": (depth - 1) * width * width,
            "kfac_min_rel": kfac_min}


# --- Cor 39: empirical Fisher collapse under memorisation ---------------------------------------------

def memorisation(scales, n: int = 4000, classes: int = 5, seed: int = 0) -> dict:
    """A classifier with logits ``s * z`` whose labels it fits with a margin: as ``s`` grows it memorises them.

    Returns the traces of the output-gradient covariance with fixed labels (empirical Fisher) and with
    labels drawn from the model (expected Fisher), per scale.
    """
    gen = _gen(seed)
    y = torch.randint(classes, (n,), generator=gen)
    # margins bounded below: every sample is memorisable (logit gap >= ~1 before scaling)
    logits = 3.0 * torch.nn.functional.one_hot(y, classes).double() \
        + 0.3 * torch.randn(n, classes, generator=gen, dtype=torch.float64)
    emp, exp = [], []
    for s in scales:
        p = torch.softmax(s * logits, -1)
        onehot = torch.zeros_like(p).scatter_(-1, y[:, None], 1.0)
        emp.append(float(((p - onehot) ** 2).sum(-1).mean()))
        exp.append(float((1 - (p ** 2).sum(-1)).mean()))  # E_{y~p} |p - e_y|^2 = 1 - |p|^2
    return {"scales": list(scales), "empirical": emp, "expected": exp}


def fmt_fit(f: Fit) -> str:
    if f.status == "floor" and math.isinf(f.slope):
        return "exactly 0"
    if not np.isfinite(f.slope):
        return f.status
    return f"{round(f.slope, 2) + 0.0:.2f}±{f.se:.1e}"  # se in scientific notation: never a bare '± 0.00'
