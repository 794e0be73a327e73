"""The fused multiplicative-gauge step equals Algorithm 2 written out step by step (fp64, to round-off)."""
import pytest
import torch
from torch import nn

from ddgraph.optim import ChainedReLURescaleGauge, DDCAdam, LNScaleGauge, ReLURescaleGauge
from ddgraph.optim.blocks import block_sq_norms, block_sums, channel_sum, n_channels, per_channel
from ddgraph.optim.kernels import adam_direction, vertical_step

pytestmark = pytest.mark.usefixtures("one_thread")


def _textbook_step(params, grads, states, hp, layout, bases, step, *workspace):
    """Algorithm 2, steps 2-7, one quantity at a time (the reference the fused kernel must match)."""
    u_orb, u_inv = bases
    c, cds, blocks = n_channels(params, layout), layout.channel_dims, layout.blocks
    views = [p.detach() for p in params]
    r2 = block_sq_norms(views, layout)
    gam = block_sums([channel_sum(v * g, cd) for v, g, cd in zip(views, grads, cds)], layout, c)
    sizes = block_sums([r2.new_full((1,), v.numel() / (v.shape[cd] if cd is not None else 1))
                        for v, cd in zip(views, cds)], layout, 1)
    scale = (r2 / sizes).sqrt_()
    coef = gam / r2
    gstate = states[0]
    if "rad_m" not in gstate:
        gstate["rad_m"], gstate["rad_v"] = r2.new_zeros(c, u_inv.shape[1]), r2.new_zeros(c, u_inv.shape[1])
    d_xi = -hp["rel_lr"] * adam_direction(gstate["rad_m"], gstate["rad_v"], gam @ u_inv, hp["betas"], hp["eps"],
                                          step)
    d_rho = d_xi @ u_inv.T + vertical_step(gam @ u_orb, gstate, hp, step) @ u_orb.T
    steps, dots = [], torch.zeros_like(r2)
    for v, g, s, cd, k in zip(views, grads, states, cds, blocks):
        if "exp_avg" not in s:
            s["exp_avg"], s["exp_avg_sq"] = torch.zeros_like(v), torch.zeros_like(v)
        tau = (g - per_channel(coef[:, k], v, cd) * v) * per_channel(scale[:, k], v, cd)
        u = adam_direction(s["exp_avg"], s["exp_avg_sq"], tau, hp["betas"], hp["eps"], step)
        dots[:, k] += channel_sum(u * v, cd)
        steps.append(u)
    proj, usq = dots / r2, torch.zeros_like(r2)
    for u, v, cd, k in zip(steps, views, cds, blocks):
        u.sub_(per_channel(proj[:, k], v, cd) * v)
        usq[:, k] += channel_sum(u * u, cd)
    move = hp["rel_lr"] * scale
    factor = (r2 / (r2 + move * move * usq)).sqrt() * d_rho.exp() * (1 - hp["lr"] * hp["weight_decay"])
    for v, u, cd, k in zip(views, steps, cds, blocks):
        v.copy_(per_channel(factor[:, k], v, cd) * (v - per_channel(move[:, k], v, cd) * u))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6, bias=False), nn.ReLU(), nn.Linear(6, 4),
                         nn.LayerNorm(4), nn.Linear(4, 3)).double()


SPECS = {
    "relu per channel": lambda m: [ReLURescaleGauge(m[0].weight, m[2].weight, m[0].bias)],
    "relu whole layer": lambda m: [ReLURescaleGauge(m[0].weight, m[2].weight, m[0].bias, per_channel=False)],
    "chained relu": lambda m: [ChainedReLURescaleGauge([m[0].weight, m[2].weight, m[4].weight], m[0].bias)],
    "layernorm": lambda m: [LNScaleGauge(m[5].weight, [m[6].weight], m[5].bias)],
}


# vertical="adam" normalises the gauge-mode gradient, which is round-off for an invariant loss: two
# kernels that agree to 1e-16 then differ by about lr * (round-off / eps) = 1e-10 after a step
@pytest.mark.parametrize("vertical,rtol", [("frozen", 1e-12), ("sgd", 1e-12), ("adam", 1e-7)])
@pytest.mark.parametrize("spec", sorted(SPECS))
def test_fused_step_equals_the_textbook_step(spec, vertical, rtol, monkeypatch):
    runs = []
    for kernel in ("fused", "textbook"):
        m = _model()
        opt = DDCAdam(m.parameters(), gauges=SPECS[spec](m), lr=1e-2, rel_lr=3e-2, weight_decay=0.05,
                      vertical=vertical)
        if kernel == "textbook":
            monkeypatch.setattr("ddgraph.optim.ddcadam.multiplicative_step", _textbook_step)
        gen = torch.Generator().manual_seed(1)
        for _ in range(6):
            opt.zero_grad()
            m(torch.randn(32, 5, generator=gen, dtype=torch.float64)).sin().sum().backward()
            opt.step()
        runs.append([p.detach().clone() for p in m.parameters()])
        monkeypatch.undo()
    moved = max(float((p - q).abs().max()) for p, q in zip(runs[0], [p.detach() for p in _model().parameters()]))
    assert moved > 1e-3  # the steps did something
    for p, q in zip(*runs):
        torch.testing.assert_close(p, q, rtol=rtol, atol=1e-14)
