"""A LayerNorm written out by hand is labelled (and checked) as a LayerNorm: one fused node whose gain and
bias are read like the module's, whose eps is read off the graph."""
import pytest
import torch
from torch import nn

import ddgraph
from ddgraph.models import random_arch


def _rsqrt(x, w, b):
    xc = x - x.mean(-1, keepdim=True)
    return xc * torch.rsqrt(xc.pow(2).mean(-1, keepdim=True) + 1e-5) * w + b


def _sqrt_var(x, w, b):
    mu = x.mean(-1, keepdim=True)
    return w * ((x - mu) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)) + b


def _squared_mean_no_affine(x, w, b):
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + 1e-5)


def _std_plus_eps(x, w, b):  # the Annotated Transformer's: unbiased std, eps outside the root
    return w * (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-5) + b


def _one_plus_w(x, w, b):
    xc = x - x.mean(-1, keepdim=True)
    return xc * torch.rsqrt(xc.pow(2).mean(-1, keepdim=True) + 1e-5) * (1.0 + w)


FORMS = {"rsqrt": (_rsqrt, True, True), "sqrt-var": (_sqrt_var, True, True),
         "squared-mean, no affine": (_squared_mean_no_affine, False, False),
         "std + eps": (_std_plus_eps, True, True), "(1 + w) gain": (_one_plus_w, True, False)}


class Hand(nn.Module):
    def __init__(self, form, width=8):
        super().__init__()
        self.form = form
        self.l0 = nn.Linear(width, width, bias=False)
        self.w = nn.Parameter(torch.empty(width).uniform_(0.5, 1.5))
        self.b = nn.Parameter(0.5 * torch.randn(width))
        self.l1 = nn.Linear(width, 4, bias=False)

    def forward(self, x):
        return self.l1(self.form(self.l0(x), self.w, self.b))


@pytest.mark.parametrize("tracer", ["fx", "export"])
@pytest.mark.parametrize("form", FORMS)
def test_written_out_layernorm_is_one_layernorm(form, tracer):
    torch.manual_seed(0)
    fn, gain, bias = FORMS[form]
    g = ddgraph.label(ddgraph.trace(Hand(fn), torch.randn(2, 8), tracer=tracer))
    s = g.summary()
    assert s.get("layernorm") == 1 and not {"skip_add", "rmsnorm", "reduce_channels"} & set(s), s
    assert not [m for m in g.nodes_with("unknown") if g[m]["dep"] == "input"], s  # (1 + w) is a parameter's
    (n,) = g.nodes_with("layernorm")
    assert (g[n]["norm_weight"] is not None) == gain and (g[n]["norm_bias"] is not None) == bias
    assert g[n]["scale_floor"] == pytest.approx(1e-5 if form == "std + eps" else 1e-5 ** 0.5)


def test_written_out_layernorm_passes_the_kernel_check():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8, bias=False), random_arch.HandLayerNorm(8), nn.Linear(8, 8, bias=False),
                          nn.Linear(8, 4, bias=False))
    d = ddgraph.check(model, torch.randn(2, 8), n_samples=2000, progress=False)
    assert [rec["claim"] for rec in d.ln] == ["exact kernel along 1/gamma (Prop 63)"]
    assert d.ok, (d.ln, [(c.node, c.factor, c.verdict) for c in d.failures])
    assert [n.a_rate for n in d.prediction.nodes] == [0, 0, 2]


def test_a_centring_that_feeds_more_than_the_norm_stays_unfused():
    class Leaky(nn.Module):
        def forward(self, x):
            xc = x - x.mean(-1, keepdim=True)
            return xc * torch.rsqrt(xc.pow(2).mean(-1, keepdim=True) + 1e-5) + xc

    g = ddgraph.label(ddgraph.trace(nn.Sequential(nn.Linear(8, 8), Leaky()), torch.randn(2, 8)))
    assert "layernorm" not in g.summary()
