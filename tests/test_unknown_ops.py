"""An op ddgraph does not know never yields an in-reach rate (issue 13): whatever it reaches is no-rule.

The cases the issue names: a custom ``torch.autograd.Function``, ``torch.log``, a division ``c / x``
(and ``h / |h|^2``), each between two weights, under both tracers. A custom Function also keeps its
own backward: fx would inline its forward and drop the backward, so it is traced as one opaque call.
"""
import math

import pytest
import torch
from torch import nn

import ddgraph
from ddgraph.compare.verdicts import Status, Verdict
from ddgraph.core.approach import Approach
from ddgraph.core.graph import PRIMITIVE
from ddgraph.probing.canonical import canonicalise


class Square(torch.autograd.Function):
    """Forward ``x * x``; backward ``5 * g`` on purpose (not the forward's derivative ``2 x g``)."""

    @staticmethod
    def forward(ctx, x):
        return x * x

    @staticmethod
    def backward(ctx, g):
        return 5 * g


MIDDLE = {
    "function": lambda h: Square.apply(h),
    "log": torch.log,
    "reciprocal": lambda h: 1.0 / h,
    "normalised": lambda h: h / (h * h).sum(-1, keepdim=True),
}


class Sandwich(nn.Module):
    """linear -> op -> linear -> relu -> linear."""

    def __init__(self, middle):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3)
        self.middle = middle

    def forward(self, x):
        return self.c(torch.relu(self.b(self.middle(self.a(x)))))


def _model(name):
    torch.manual_seed(0)
    return Sandwich(MIDDLE[name]), (torch.randn(8, 4),)


@pytest.mark.parametrize("tracer", ["fx", "export"])
@pytest.mark.parametrize("name", list(MIDDLE))
def test_unknown_op_reaches_only_no_rule(name, tracer):
    model, inputs = _model(name)
    pred = ddgraph.predict(model, inputs, tracer=tracer)
    g = pred.graph.nx
    unknown = [n for n in g if g.nodes[n][PRIMITIVE] == "unknown"]
    assert unknown, "the op was claimed by a pattern: this test no longer tests an unknown op"
    assert {n.param: n.status for n in pred.nodes} == {p: Status.NO_RULE for p in ("a.weight", "b.weight", "c.weight")}
    for n in pred.nodes:
        for rate in (n.a_rate, n.g_rate):
            assert not (n.status == Status.IN_REACH and rate is not None and math.isinf(rate))


@pytest.mark.parametrize("tracer", ["fx", "export"])
def test_custom_function_is_one_unknown_node_named_by_its_class(tracer):
    model, inputs = _model("function")
    graph = ddgraph.label(ddgraph.trace(model, inputs, tracer=tracer))
    g = graph.nx
    unknown = [n for n in g if g.nodes[n][PRIMITIVE] == "unknown"]
    assert [g.nodes[n]["function"] for n in unknown] == ["Square"]
    assert "Square" in g.nodes[unknown[0]]["unknown_op"]
    assert not any(g.nodes[n][PRIMITIVE] == "product" for n in g)  # its forward x * x is not read


def test_fx_keeps_the_custom_backward():
    """The probe's canonical copy differentiates through the Function's own backward (5 g), not the
    derivative of its forward (2 h g) that inlining would give."""
    model, inputs = _model("function")
    model.c = nn.Identity()
    model.middle = lambda h: Square.apply(h)
    graph = ddgraph.label(ddgraph.trace(model, inputs, tracer="fx"))
    canon = canonicalise(graph, Approach())
    canon.set_t(1e-1)
    gm = canon.gm
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    out = gm(x)
    out.sum().backward()
    wa, ba, wb = gm.get_parameter("a.weight"), gm.get_parameter("a.bias"), gm.get_parameter("b.weight")
    h = x.detach() @ wa.T + ba
    mask = (out.detach() > 0).double()  # the relu after b
    upstream = mask @ wb
    assert torch.allclose(x.grad, (5 * upstream) @ wa)
    assert not torch.allclose(x.grad, (2 * h * upstream) @ wa)


def test_check_of_an_unknown_op_is_no_rule_not_unfittable():
    model, inputs = _model("log")
    d = ddgraph.check(model, inputs, n_samples=256, grid=[1e-2, 3e-3, 1e-3], progress=False)
    assert {c.node for c in d.primary}
    assert all(c.status == Status.NO_RULE for c in d.primary)
    assert not any(c.verdict == Verdict.UNFITTABLE and c.status == Status.IN_REACH for c in d.checks)
