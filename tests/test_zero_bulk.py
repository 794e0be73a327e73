"""A weight whose bulk block is exactly zero in the model's own values (torchvision's ViT zero-initialises
its head): no gradient reaches the bulk through it (THEORY §3.9). Prediction only; the probe side is the
``weight`` rule's probe case (tests/test_rules.py) and torchvision's ViT (tests/test_vision.py)."""
import math

import torch
from torch import nn

import ddgraph
from ddgraph.models import zoo


def _g_rates(model):
    p = ddgraph.predict(model, torch.randn(4, 8))
    return [r.g_rates[0][0] for r in p.nodes]


def test_zero_last_weight_under_a_layernorm_raises_every_g_rate_below_it():
    torch.manual_seed(0)
    generic = zoo.NormedChain(4, 3, "layernorm")
    assert _g_rates(generic) == [4.0, 2.0, 0.0, 0.0]
    with torch.no_grad():
        generic.layers[-1].weight.zero_()
    assert _g_rates(generic) == [6.0, 4.0, 2.0, 0.0]


def test_bulk_orders_recorded_per_weight():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8, bias=False), nn.Linear(8, 4))
    with torch.no_grad():
        model[2].weight.zero_()
        model[2].bias.zero_()
        model[0].weight[:-1, :-1] = 0.0  # zero bulk block; the dead row and column do not count
    g = ddgraph.label(ddgraph.trace(model, torch.randn(4, 8)))
    orders = [g[n]["bulk_orders"] for n in g.order() if "bulk_orders" in g[n]]
    assert orders == [{"alpha": math.inf, "beta": 0.0}, {"alpha": 0.0, "beta": math.inf},
                      {"alpha": math.inf, "beta": math.inf}]


def test_meta_device_weights_count_as_generic():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4))
    g = ddgraph.label(ddgraph.trace(model, torch.randn(4, 8, device="meta")))
    assert all(g[n]["bulk_orders"]["alpha"] == 0.0 for n in g.order() if "bulk_orders" in g[n])


class _ZeroGainBlock(nn.Module):
    """A residual block whose last BatchNorm gain is zero, as timm's ResNets initialise it."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.conv = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.head = nn.Conv2d(6, 4, 1)
        nn.init.zeros_(self.bn.weight)
        self.eval()

    def forward(self, x):
        h = torch.relu(self.stem(x))
        return self.head(torch.relu(h + self.bn(self.conv(h))))


def test_zero_batchnorm_gain_stops_the_gradient_of_its_branch():
    torch.manual_seed(0)
    model = _ZeroGainBlock()
    x = torch.randn(4, 3, 8, 8)
    g = ddgraph.label(ddgraph.trace(model, x))
    orders = [g[n]["value_orders"] for n in g.order() if g[n]["primitive"] == "batchnorm_eval"]
    assert orders == [{"gain": {0: math.inf, 1: math.inf}, "bias": {0: math.inf, 1: math.inf},
                       "mean": {0: math.inf, 1: math.inf}}]  # fresh BatchNorm: beta and running mean 0
    rates = {r.param: r.g_rates[0][0] for r in ddgraph.predict(g).nodes}
    assert rates["conv.weight"] == math.inf and math.isfinite(rates["stem.weight"])
    with torch.no_grad():
        model.bn.weight.fill_(1.0)
    assert math.isfinite(ddgraph.predict(model, x).nodes[1].g_rates[0][0])
    assert model.bn.weight.eq(1.0).all()  # labelling read the values, it did not change them


def test_gain_with_an_offset_is_generic_at_zero_weight():
    """Gemma's RMSNorm multiplies by ``1 + w`` with ``w`` initialised at zero: a gain of one."""
    class OffsetRMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.out = nn.Linear(8, 8), nn.Linear(8, 4)
            self.w = nn.Parameter(torch.zeros(8))

        def forward(self, x):
            h = self.inp(x)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
            return self.out(h * (1 + self.w))

    g = ddgraph.label(ddgraph.trace(OffsetRMSNorm(), torch.randn(4, 8)))
    norms = [g[n] for n in g.order() if g[n]["primitive"] == "rmsnorm"]
    assert len(norms) == 1 and set(norms[0]["value_orders"]["gain"].values()) == {0.0}
