"""One optimiser step for each kind of parameter group (Algorithm 2, steps 1-7).

Every function updates parameters and their moment buffers in place. ``hp`` is the param group
(``lr``, ``rel_lr``, ``betas``, ``eps``, ``weight_decay``, ``vertical``, ``vertical_lr``,
``translation_decay``); ``step`` is the 1-based step count used for bias correction.
"""
from __future__ import annotations

import math

import torch

from ddgraph.errors import GaugeError
from ddgraph.optim.blocks import block_sums, channel_view, n_channels, write_back

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
    """Standard decoupled AdamW on parameters under no gauge (multi-tensor)."""
    lr, wd, (b1, b2), eps = hp["lr"], hp["weight_decay"], hp["betas"], hp["eps"]
    for p, s in zip(params, states):
        if not s:
            s["step"] = torch.zeros((), dtype=torch.float64)
            s["exp_avg"], s["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        s["step"] += 1
    steps = [float(s["step"]) for s in states]
    m, v = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
    if wd:
        torch._foreach_mul_(params, 1 - lr * wd)
    torch._foreach_lerp_(m, grads, 1 - b1)
    torch._foreach_mul_(v, b2)
    torch._foreach_addcmul_(v, grads, grads, 1 - b2)
    denom = torch._foreach_sqrt(v)
    torch._foreach_div_(denom, [math.sqrt(1 - b2 ** t) for t in steps])
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, m, denom, [-lr / (1 - b1 ** t) for t in steps])


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


def multiplicative_step(params, grads, states, hp, layout, bases, step):
    """ReLU / LayerNorm / chained rescale gauges in log-norm coordinates (Algorithm 2, steps 2-7)."""
    u_orb, u_inv = bases
    c = n_channels(params, layout)
    views = [channel_view(p.detach(), cd) for p, cd in zip(params, layout.channel_dims)]
    gviews = [channel_view(g, cd) for g, cd in zip(grads, layout.channel_dims)]
    r2 = block_sums([(v * v).sum(1) for v in views], layout, c)
    if not bool((r2 > 0).all()):
        raise GaugeError(f"{layout.kind}: a block has zero norm, where the gauge action is not free")
    gam = block_sums([(v * g).sum(1) for v, g in zip(views, gviews)], layout, c)
    sizes = block_sums([r2.new_full((1,), v.shape[1]) for v in views], layout, 1)
    scale = (r2 / sizes).sqrt_()          # block RMS: tangential steps are relative to it
    coef = gam / r2
    gstate = states[0]
    if "rad_m" not in gstate:
        k_inv = u_inv.shape[1]
        gstate["rad_m"], gstate["rad_v"] = r2.new_zeros(c, k_inv), r2.new_zeros(c, k_inv)
    rel_lr = hp["rel_lr"]
    d_xi = -rel_lr * adam_direction(gstate["rad_m"], gstate["rad_v"], gam @ u_inv, hp["betas"],
                                    hp["eps"], step)
    d_rho = d_xi @ u_inv.T + vertical_step(gam @ u_orb, gstate, hp, step) @ u_orb.T
    steps, dots = [], torch.zeros_like(r2)
    for v, g, s, k in zip(views, gviews, states, layout.blocks):
        if "exp_avg" not in s:
            s["exp_avg"], s["exp_avg_sq"] = torch.zeros_like(v), torch.zeros_like(v)
        tau = (g - coef[:, k, None] * v).mul_(scale[:, k, None])  # gauge-invariant tangential gradient
        u = adam_direction(s["exp_avg"], s["exp_avg_sq"], tau, hp["betas"], hp["eps"], step)
        dots[:, k] += (u * v).sum(1)
        steps.append(u)
    proj, usq = dots / r2, torch.zeros_like(r2)
    for u, v, k in zip(steps, views, layout.blocks):
        u.sub_(proj[:, k, None] * v)      # step 6: back onto the tangent space of the block sphere
        usq[:, k] += (u * u).sum(1)
    move = rel_lr * scale
    factor = (r2 / (r2 + move * move * usq)).sqrt_().mul_(d_rho.exp()).mul_(1 - hp["lr"] * hp["weight_decay"])
    for p, u, v, cd, k in zip(params, steps, views, layout.channel_dims, layout.blocks):
        write_back(p.detach(), (v - move[:, k, None] * u).mul_(factor[:, k, None]), cd)
