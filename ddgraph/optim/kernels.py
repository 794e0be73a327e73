"""One optimiser step for each kind of parameter group (Algorithm 2, steps 1-7).

Every function updates parameters and their moment buffers in place. ``hp`` is the param group
(``lr``, ``rel_lr``, ``betas``, ``eps``, ``weight_decay``, ``vertical``, ``vertical_lr``,
``translation_decay``); ``step`` is the 1-based step count used for bias correction.
"""
from __future__ import annotations

import math

import torch

from ddgraph.errors import GaugeError
from ddgraph.optim.blocks import block_sums, channel_sum, n_channels, per_channel

VERTICAL_MODES = ("frozen", "sgd", "adam")


def adam_direction(m, v, g, betas, eps, step):
    """Update Adam moments ``m, v`` with ``g``; return the bias-corrected ``m_hat / (sqrt(v_hat) + eps)``."""
    b1, b2 = betas
    m.lerp_(g, 1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    denom = (v.sqrt() / math.sqrt(1 - b2 ** step)).add_(eps)
    return m.div(denom).div_(1 - b1 ** step)


def vertical_step(nu, gstate, hp, step):
    """Step on the orbit-collapsed gauge-mode scalars ``nu`` (Algorithm 2, step 4)."""
    mode, vlr = hp["vertical"], hp["vertical_lr"]
    if mode == "frozen":
        return torch.zeros_like(nu)
    if mode == "sgd":
        return -vlr * nu
    if "vert_m" not in gstate:
        gstate["vert_m"], gstate["vert_v"] = torch.zeros_like(nu), torch.zeros_like(nu)
    return -vlr * adam_direction(gstate["vert_m"], gstate["vert_v"], nu, hp["betas"], hp["eps"], step)


def adamw_step(params, grads, states, hp):
    """Standard decoupled AdamW on parameters under no gauge: torch's fused kernel, one pass per tensor
    that allocates nothing (what ``torch.optim.AdamW(fused=True)`` runs)."""
    for p, s in zip(params, states):
        if not s:
            s["step"] = torch.zeros((), dtype=torch.float64)
            s["exp_avg"], s["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        s["step"] += 1
    b1, b2 = hp["betas"]
    torch._fused_adamw_(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
                        [s["step"].to(p.device) for p, s in zip(params, states)], lr=hp["lr"], beta1=b1, beta2=b2,
                        weight_decay=hp["weight_decay"], eps=hp["eps"], amsgrad=False, maximize=False)


def translation_step(p, g, state, hp, step):
    """CE shift gauges: Adam on the horizontal gradient, vertical mode on the shift scalars."""
    c = p.shape[0]
    if "exp_avg" not in state:
        state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
    nu = g.sum(0) / math.sqrt(c)
    u = adam_direction(state["exp_avg"], state["exp_avg_sq"], g - g.mean(0), hp["betas"], hp["eps"], step)
    u.sub_(u.mean(0))  # re-project: per-coordinate normalisation leaks into the shift mode
    lr, wd = hp["lr"], hp["weight_decay"]
    if wd and hp["translation_decay"] == "full":
        p.mul_(1 - lr * wd)
    elif wd:
        p.sub_(p - p.mean(0), alpha=lr * wd)
    p.add_(u, alpha=-lr).add_(vertical_step(nu, state, hp, step) / math.sqrt(c))


def multiplicative_step(params, grads, states, hp, layout, bases, step, work, scratch):
    """ReLU / LayerNorm / chained rescale gauges in log-norm coordinates (Algorithm 2, steps 2-7).

    Fused: each tensor is read and written a fixed handful of times, and nothing is allocated (fresh
    memory costs page faults as large as the arithmetic): ``work`` holds, per tensor, two buffers of its
    shape (the invariant gradient, then the Adam direction), and ``scratch`` (``{(dtype, device): flat
    tensor}``, at least as long as the largest tensor) takes the products that are reduced per channel. The
    Adam moments and the bias-corrected direction ``m_hat / (sqrt(v_hat) + eps)`` come from torch's fused Adam
    kernel (one pass over gradient, moments and direction, as ``torch.optim.Adam(fused=True)`` steps), its
    projection onto the sphere's tangent space is never formed (its squared norm is
    ``|u|^2 - <u, theta>^2 / r^2``), and the retraction is one ``theta <- a theta + b u`` per channel.
    """
    u_orb, u_inv = bases
    c, cds, blocks = n_channels(params, layout), layout.channel_dims, layout.blocks
    views = [p.detach() for p in params]

    def dot(x, y, cd):
        """Per channel, ``sum x * y`` over the other axes."""
        if cd is not None and x.dim() == 1:  # one entry per channel: the product is the result
            return x * y
        if x is y and x.is_contiguous() and cd in (None, 0):  # channels are contiguous rows: one pass
            return torch.linalg.vector_norm(x.reshape(1 if cd is None else x.shape[0], -1), dim=1).square_()
        return channel_sum(torch.mul(x, y, out=scratch[x.dtype, x.device][:x.numel()].view(x.shape)), cd)

    r2 = block_sums([dot(v, v, cd) for v, cd in zip(views, cds)], layout, c)
    if not bool((r2 > 0).all()):
        raise GaugeError(f"{layout.kind}: a block has zero norm, where the gauge action is not free")
    gam = block_sums([dot(v, g, cd) for v, g, cd in zip(views, grads, cds)], layout, c)
    sizes = [0.0] * layout.n_blocks
    for v, cd, k in zip(views, cds, blocks):
        sizes[k] += v.numel() / (v.shape[cd] if cd is not None else 1)
    scale = (r2 / r2.new_tensor(sizes)).sqrt_()          # block RMS: tangential steps are relative to it
    gstate = states[0]
    if "rad_m" not in gstate:
        k_inv = u_inv.shape[1]
        gstate["rad_m"], gstate["rad_v"] = r2.new_zeros(c, k_inv), r2.new_zeros(c, k_inv)
    rel_lr, t = hp["rel_lr"], gstate["step"].to(r2.device)
    # d_xi <- 0 - rel_lr * m_hat / (sqrt(v_hat) + eps): Adam on the invariant log-norm coordinates
    xi = gam @ u_inv
    d_xi = torch.zeros_like(xi)
    _adam(d_xi, xi, gstate["rad_m"], gstate["rad_v"], t, hp, lr=rel_lr)
    d_rho = d_xi @ u_inv.T + vertical_step(gam @ u_orb, gstate, hp, step) @ u_orb.T
    minus_coef, scales = (-gam / r2).unbind(1), scale.unbind(1)
    tangents, steps = [w for w, _ in work], [d.zero_() for _, d in work]
    for v, g, s, w, cd, k in zip(views, grads, states, tangents, cds, blocks):
        if "exp_avg" not in s:
            s["exp_avg"], s["exp_avg_sq"] = torch.zeros_like(v), torch.zeros_like(v)
        torch.addcmul(g, v, per_channel(minus_coef[k], v, cd), out=w).mul_(per_channel(scales[k], v, cd))  # invariant
    # steps <- 0 - (-1) * m_hat / (sqrt(v_hat) + eps): the moments updated with the invariant gradient
    _adam(steps, tangents, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], t, hp, lr=-1.0)
    dots = block_sums([dot(u, v, cd) for u, v, cd in zip(steps, views, cds)], layout, c)
    proj = dots / r2
    usq = block_sums([dot(u, u, cd) for u, cd in zip(steps, cds)], layout, c).sub_(dots * proj).clamp_min_(0)  # step 6
    move = rel_lr * scale
    factor = (r2 / (r2 + move * move * usq)).sqrt_().mul_(d_rho.exp()).mul_(1 - hp["lr"] * hp["weight_decay"])
    keep, along = (factor * (1 + move * proj)).unbind(1), (-factor * move).unbind(1)
    for v, u, cd, k in zip(views, steps, cds, blocks):
        v.mul_(per_channel(keep[k], v, cd)).addcmul_(u, per_channel(along[k], v, cd))


def _adam(out, grads, m, v, step, hp, lr):
    """torch's fused Adam kernel on tensors (or lists of tensors): moments ``m, v`` updated with ``grads``,
    ``out -= lr * m_hat / (sqrt(v_hat) + eps)`` (``step``: the 1-based step as a tensor)."""
    out, grads, m, v = ([x] if isinstance(x, torch.Tensor) else list(x) for x in (out, grads, m, v))
    torch._fused_adam_(out, grads, m, v, [], [step] * len(out), lr=lr, beta1=hp["betas"][0], beta2=hp["betas"][1],
                       weight_decay=0.0, eps=hp["eps"], amsgrad=False, maximize=False)
