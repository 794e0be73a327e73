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
