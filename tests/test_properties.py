"""Property tests: random compositions of supported primitives never crash the engine, and adding
an identity skip never raises a rate (min-plus monotonicity)."""
import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import ddgraph
from ddgraph.models import zoo

BLOCKS = ["linear", "relu", "gelu", "tanh", "sigmoid", "layernorm", "rmsnorm", "swiglu", "scale", "softmax"]


class Composite(nn.Module):
    """A width-8 stack of blocks; ``skip`` = (i, j) adds an identity skip from block i's input to block j's output."""

    def __init__(self, blocks, skip=None):
        super().__init__()
        self.kinds = list(blocks)
        self.skip = skip
        mods = []
        for kind in self.kinds:
            mods.append({"linear": lambda: nn.Linear(8, 8, bias=False), "relu": nn.ReLU, "gelu": nn.GELU,
                         "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "layernorm": lambda: nn.LayerNorm(8),
                         "rmsnorm": lambda: nn.RMSNorm(8), "swiglu": lambda: zoo.SwiGLU(8, 8),
                         "scale": lambda: zoo.Scale(0.5), "softmax": lambda: nn.Softmax(-1)}[kind]())
        self.mods = nn.ModuleList(mods)
        self.head = nn.Linear(8, 8, bias=False)

    def forward(self, x):
        saved = None
        for i, m in enumerate(self.mods):
            if self.skip and i == self.skip[0]:
                saved = x
            x = m(x)
            if self.skip and i == self.skip[1]:
                x = x + saved
        return self.head(x)


def rates(pred):
    return [(n.a_rate, n.g_rate) for n in pred.nodes]


def le(a, b):
    """a <= b for rates that may be None (no rule) or inf."""
    if a is None or b is None:
        return a is None and b is None
    return a <= b + 1e-12


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=7))
def test_random_compositions_never_crash(blocks):
    torch.manual_seed(0)
    pred = ddgraph.predict(Composite(blocks), torch.randn(4, 8))
    assert pred.nodes[-1].param == "head.weight"
    for n in pred.nodes:
        assert n.status in ("in-reach", "bracket", "no-rule")
        for r in (n.a_rate, n.g_rate):
            assert r is None or isinstance(r, tuple) or (r >= 0 and not math.isnan(r))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(BLOCKS), min_size=2, max_size=7), st.data())
def test_identity_skip_never_raises_a_rate(blocks, data):
    i = data.draw(st.integers(0, len(blocks) - 1))
    j = data.draw(st.integers(i, len(blocks) - 1))
    torch.manual_seed(0)
    plain = ddgraph.predict(Composite(blocks), torch.randn(4, 8))
    skipped = ddgraph.predict(Composite(blocks, (i, j)), torch.randn(4, 8))
    for (a0, g0), (a1, g1) in zip(rates(plain), rates(skipped)):
        assert le(g1, g0) and le(a1, a0), (blocks, (i, j), rates(plain), rates(skipped))
