"""The noise-free residual f_t - f_0 without cancellation (ddgraph/probing/residual.py, THEORY §7.2)."""
import math

import pytest
import torch

import ddgraph
from ddgraph.core.approach import Approach
from ddgraph.probing import residual
from ddgraph.probing.canonical import canonicalise
from ddgraph.probing.cases import linear_attention
from ddgraph.probing.measure import _first
from ddgraph.probing.residual import ExactResidual

NOISE_FREE = Approach(regime="noise-free")


def _canonical(explicit=True):
    torch.manual_seed(0)
    model, inputs, _ = linear_attention(explicit=explicit)
    return canonicalise(ddgraph.predict(model, inputs, regime="noise-free").graph, NOISE_FREE)


def _outputs(canon, x, t):
    with torch.no_grad():
        canon.set_t(0.0)
        f0 = _first(canon.gm(x))
        canon.set_t(t)
        return _first(canon.gm(x)), f0


def _reference(params, x, t, moving, mp):
    """f_t - f_0 of the explicit LinearAttention, in mpmath at 60 digits (entries copied exactly)."""
    def mat(name, at):
        w = params[name].clone()
        grid = [[mp.mpf(float(v)) for v in row] for row in w.tolist()]
        for param, e in moving:
            if param == name:
                for flat in e.index.tolist():
                    grid[flat // w.shape[1]][flat % w.shape[1]] = mp.mpf(at) ** e.exponent if at else mp.mpf(0)
        return mp.matrix(grid)

    def forward(sample, at):
        h = mp.matrix([[mp.mpf(float(v)) for v in row] for row in sample.tolist()])
        for name in ("l0.weight", "l1.weight"):
            h = h * mat(name, at).T
        q, k, v = (h * mat(f"attn.{n}.weight", at).T for n in "qkv")
        s = q * k.T / mp.mpf(math.sqrt(h.cols))
        p = mp.matrix(s.rows, s.cols)
        for i in range(s.rows):
            row = [mp.exp(s[i, j]) for j in range(s.cols)]
            for j in range(s.cols):
                p[i, j] = row[j] / mp.fsum(row)
        return p * v * mat("attn.o.weight", at).T * mat("out.weight", at).T

    return [forward(sample, t) - forward(sample, 0) for sample in x]


def test_the_residual_matches_a_60_digit_computation_where_the_fp64_difference_is_lost():
    mp = pytest.importorskip("mpmath").mp
    mp.dps = 60
    canon, t = _canonical(), 1e-3
    x = torch.randn(3, 6, 8, dtype=torch.float64)
    f, f0 = _outputs(canon, x, t)
    exact = ExactResidual(canon, _first)
    exact.set_t(t)
    r = exact((x,), f, f0)
    assert not exact.notes
    params = dict(canon.gm.named_parameters())
    moving = [(e.param, e) for e in canon.moving]
    truth = torch.tensor([[[float(m[i, j]) for j in range(m.cols)] for i in range(m.rows)]
                          for m in _reference(params, x, t, moving, mp)], dtype=torch.float64)
    bulk = torch.ones(8, dtype=torch.bool)
    bulk[[i for e in canon.moving if e.param == "out.weight" for i in (e.index // 8).tolist()]] = False
    scale = truth[..., bulk].abs().max()
    assert scale < 1e-15 * f0.abs().max()  # the bulk residual is below what an fp64 difference keeps
    assert (r - truth)[..., bulk].abs().max() < 1e-8 * scale
    assert (r - truth).abs().max() < 1e-8 * truth.abs().max()
    assert (f - f0 - truth)[..., bulk].abs().max() > 0.5 * scale  # the direct difference has lost it


@pytest.mark.parametrize("explicit", [False, True])
def test_noise_free_attention_passes_with_the_exact_residual_and_fails_without(explicit, monkeypatch):
    torch.manual_seed(0)
    model, x, kw = linear_attention(explicit=explicit, regime="noise-free")
    d = ddgraph.check(model, x, n_samples=2000, progress=False, **kw)
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]
    qk = [c for c in d.primary if c.factor == "G" and c.param in ("attn.q.weight", "attn.k.weight")]
    assert len(qk) == 2 and all(c.predicted == 18 for c in qk)
    assert not d.measurement.notes
    monkeypatch.setattr(residual, "_BITS", 0.0)  # always the direct difference
    torch.manual_seed(0)
    model, x, kw = linear_attention(explicit=explicit, regime="noise-free")
    lost = ddgraph.check(model, x, n_samples=2000, progress=False, **kw)
    assert {c.param for c in lost.failures} == {"attn.q.weight", "attn.k.weight"}


class _NoForwardMode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        return g


class _Opaque(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = linear_attention()[0]

    def forward(self, x):
        return _NoForwardMode.apply(self.inner(x))


def test_an_op_without_a_forward_mode_derivative_is_named_in_a_note():
    torch.manual_seed(0)
    m = ddgraph.probe(_Opaque(), torch.randn(4, 6, 8), regime="noise-free", n_samples=200,
                      grid=[1e-2, 1e-3, 1e-4], progress=False)
    assert any("noise-free residual" in n and "forward-mode" in n for n in m.notes), m.notes
