"""The labeller on every pattern, in module, functional and ATen (torch.export) form."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ddgraph
from ddgraph.models import zoo


def labels(model, inputs, tracer):
    g = ddgraph.label(ddgraph.trace(model, inputs, tracer=tracer))
    return g, g.summary()


class Fn(nn.Module):
    """Wrap a function of (self, x) as a module, with parameters made on demand."""

    def __init__(self, fn, **params):
        super().__init__()
        self.fn = fn
        for k, v in params.items():
            setattr(self, k, nn.Parameter(v))

    def forward(self, x):
        return self.fn(self, x)


W = lambda *s: torch.randn(*s) / math.sqrt(s[-1])  # noqa: E731
X = (torch.randn(4, 8),)
XT = (torch.randn(4, 6, 8),)

# (name, model factory, inputs, primitive expected, how many)
CASES = [
    ("linear module", lambda: nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8)), X, "weight", 2),
    ("linear functional", lambda: Fn(lambda s, x: F.linear(F.linear(x, s.w), s.w), w=W(8, 8)), X, "weight", 2),
    ("matmul with parameter", lambda: Fn(lambda s, x: (x @ s.w) @ s.w.T, w=W(8, 8)), X, "weight", 2),
    ("addmm (GPT-2 Conv1D)", lambda: Fn(lambda s, x: torch.addmm(s.b, x, s.w), w=W(8, 8), b=torch.zeros(8)), X, "weight", 1),
    ("conv2d module", lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3)),
     (torch.randn(2, 3, 8, 8),), "weight", 2),
    ("conv1d functional", lambda: Fn(lambda s, x: F.conv1d(x, s.w, padding=1), w=W(4, 3, 3)),
     (torch.randn(2, 3, 10),), "weight", 1),
    ("embedding", lambda: nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 8)), (torch.randint(0, 10, (4, 5)),), "weight", 2),
    ("identity skip", lambda: zoo.ResidualMLP(), X, "skip_add", 1),
    ("add of two branches", lambda: zoo.TwoBranch(), X, "add", 1),
    ("separate bias", lambda: zoo.BiasChain(2), X, "bias_add", 2),
    ("scalar scale", lambda: zoo.chain(3, scale=0.5), X, "scale", 2),
    ("constant shift", lambda: zoo.Shift(), X, "shift", 1),
    ("product", lambda: zoo.Product(), X, "product", 1),
    ("SwiGLU gate", lambda: zoo.SwiGLU(), X, "gate", 1),
    ("GeGLU gate", lambda: zoo.SwiGLU(act="gelu"), X, "gate", 1),
    ("ReLU module", lambda: zoo.chain(3, "relu"), X, "act_relu", 2),
    ("ReLU functional", lambda: Fn(lambda s, x: F.linear(F.relu(F.linear(x, s.w)), s.w), w=W(8, 8)), X, "act_relu", 1),
    ("leaky ReLU", lambda: nn.Sequential(nn.Linear(8, 8), nn.LeakyReLU(), nn.Linear(8, 8)), X, "act_relu", 1),
    ("GELU", lambda: zoo.chain(3, "gelu"), X, "act_smooth", 2),
    ("tanh", lambda: zoo.chain(3, "tanh"), X, "act_smooth", 2),
    ("SiLU", lambda: zoo.chain(3, "silu"), X, "act_smooth", 2),
    ("sigmoid", lambda: zoo.chain(3, "sigmoid"), X, "act_offset", 2),
    ("LayerNorm module", lambda: zoo.NormedChain(2, 1), X, "layernorm", 1),
    ("LayerNorm functional", lambda: Fn(lambda s, x: F.layer_norm(F.linear(x, s.w), (8,), s.g, s.b),
                                        w=W(8, 8), g=torch.ones(8), b=torch.zeros(8)), X, "layernorm", 1),
    ("RMSNorm module", lambda: zoo.NormedChain(2, 1, "rmsnorm"), X, "rmsnorm", 1),
    ("RMSNorm functional", lambda: Fn(lambda s, x: F.rms_norm(F.linear(x, s.w), (8,), s.g),
                                      w=W(8, 8), g=torch.ones(8)), X, "rmsnorm", 1),
    ("RMSNorm written out", lambda: zoo.NormedChain(2, 1, "hand_rmsnorm"), X, "rmsnorm", 1),
    ("softmax over channels", lambda: zoo.SoftmaxHead(), X, "softmax_channels", 1),
    ("explicit attention", lambda: zoo.AttentionChain(1, explicit=True), XT, "contraction", 1),
    ("explicit attention softmax", lambda: zoo.AttentionChain(1, explicit=True), XT, "softmax_tokens", 1),
    ("explicit attention A V", lambda: zoo.AttentionChain(1, explicit=True), XT, "token_mix", 1),
    ("SDPA", lambda: zoo.AttentionChain(2), XT, "attention", 2),
    ("channel mean", lambda: zoo.PoolHead(), X, "reduce_channels", 1),
    ("token mean", lambda: zoo.TokenPool(), XT, "reduce_tokens", 1),
    ("concatenation", lambda: zoo.Concat(), X, "concat", 1),
    ("split and chunk", lambda: Fn(lambda s, x: torch.cat(F.linear(x, s.w).chunk(2, -1)[::-1], -1)
                                   + F.linear(x, s.w).split(4, -1)[0].repeat(1, 2), w=W(8, 8)), X, "concat", 1),
    ("eval dropout", lambda: nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1), nn.Linear(8, 8)).eval(), X, "shape", 1),
    ("pooling: max, average, global average", lambda: zoo.PoolCNN(), (torch.randn(2, 3, 8, 8),), "pool", 3),
    ("pooling modules, 1-d and adaptive max", lambda: nn.Sequential(
        nn.Conv1d(3, 4, 3), nn.MaxPool1d(2), nn.Conv1d(4, 4, 1), nn.AdaptiveMaxPool1d(2), nn.Flatten(),
        nn.Linear(8, 2)), (torch.randn(2, 3, 12),), "pool", 2),
]


@pytest.mark.parametrize("tracer", ["fx", "export"])
@pytest.mark.parametrize("name,factory,inputs,primitive,count", CASES, ids=[c[0] for c in CASES])
def test_pattern(name, factory, inputs, primitive, count, tracer):
    torch.manual_seed(0)
    _, summary = labels(factory(), inputs, tracer)
    assert summary.get(primitive, 0) == count, summary
    assert "unknown" not in summary, summary


def test_multihead_attention_module_goes_through_export():
    mha = nn.MultiheadAttention(8, 2, batch_first=True, bias=False)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    g = ddgraph.label(ddgraph.trace(M(), XT))
    assert g.tracer == "export"
    s = g.summary()
    assert s.get("weight") == 2 and s.get("attention") == 1 and "unknown" not in s, s
    # the fused in-projection is cut into q, k, v and then into heads: one dead index per piece
    assert dead(g, "mha.in_proj_weight", "dead_out") == [3, 7, 11, 15, 19, 23]
    assert dead(g, "mha.out_proj.weight", "dead_in") == [3, 7]


def test_unknown_op_is_named():
    m = Fn(lambda s, x: F.linear(torch.cumsum(F.linear(x, s.w), -1), s.w), w=W(8, 8))
    g = ddgraph.label(ddgraph.trace(m, X))
    unk = [d for _, d in g.nx.nodes(data=True) if d["primitive"] == "unknown"]
    assert len(unk) == 1 and "cumsum" in unk[0]["unknown_op"]


def test_parameter_names_and_module_paths():
    g = ddgraph.label(ddgraph.trace(zoo.PreNormBlock(), XT))
    w = [g[n] for n in g.nodes_with("weight")]
    assert [d["weight"]["param"] for d in w] == ["attn.q.weight", "attn.k.weight", "attn.v.weight",
                                                 "attn.o.weight", "fc1.weight", "fc2.weight"]
    assert [d["module"] for d in w] == ["attn.q", "attn.k", "attn.v", "attn.o", "fc1", "fc2"]
    assert all(d["shape"] is not None and d["dtype"] == "float32" for d in w)


def dead(g, param, side):
    n = next(n for n in g.nodes_with("weight") if g[n]["weight"]["param"] == param)
    return g[n]["weight"][side][1]


def test_dead_coordinate_per_head_and_through_merge():
    g = ddgraph.label(ddgraph.trace(zoo.AttentionChain(1, width=8, heads=2), XT))
    assert dead(g, "blocks.0.q.weight", "dead_out") == [3, 7]  # last index of each head
    assert dead(g, "blocks.0.o.weight", "dead_in") == [3, 7]  # tracked through the head merge
    assert dead(g, "blocks.0.o.weight", "dead_out") == [7]  # the stream keeps the last index


def test_fused_projection_gets_one_dead_coordinate_per_slice():
    class Fused(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(8, 24, bias=False)
            self.o = nn.Linear(8, 8, bias=False)

        def forward(self, x):
            q, k, v = self.qkv(x).split(8, dim=-1)
            return self.o(F.scaled_dot_product_attention(q, k, v))

    for tracer in ("fx", "export"):
        g = ddgraph.label(ddgraph.trace(Fused(), XT, tracer=tracer))
        assert dead(g, "qkv.weight", "dead_out") == [7, 15, 23]


def test_rotary_halves_pair_the_dead_coordinate():
    class Rope(nn.Module):
        def __init__(self):
            super().__init__()
            self.q = nn.Linear(8, 8, bias=False)
            self.o = nn.Linear(8, 8, bias=False)
            self.register_buffer("cos", torch.rand(6, 8))
            self.register_buffer("sin", torch.rand(6, 8))

        def forward(self, x):
            q = self.q(x)
            rot = torch.cat([-q[..., 4:], q[..., :4]], dim=-1)
            return self.o(q * self.cos + rot * self.sin)

    g = ddgraph.label(ddgraph.trace(Rope(), XT))
    assert dead(g, "q.weight", "dead_out") == [3, 7]
    assert dead(g, "o.weight", "dead_in") == [3, 7]


def test_user_pattern_defines_a_primitive_for_one_run(tmp_path):
    plugin = tmp_path / "cumsum_plugin.py"
    plugin.write_text(
        "from ddgraph.frontend.patterns import Match, pattern\n"
        "from ddgraph.core.primitives import Primitive\n"
        "PRIMITIVES = [Primitive('cumsum_op', ('x',), 'elementwise', 'a running sum along channels')]\n"
        "@pattern('cumsum_op', family='user')\n"
        "def cumsum(g, n):\n"
        "    if g.nodes[n]['op'] == 'cumsum':\n"
        "        return Match('cumsum_op', [('x', g.nodes[n]['operands'][0])])\n"
        "PATTERNS = [cumsum]\n")
    m = Fn(lambda s, x: F.linear(torch.cumsum(F.linear(x, s.w), -1), s.w), w=W(8, 8))
    g = ddgraph.label(ddgraph.trace(m, X), plugins=[plugin])
    assert g.summary().get("cumsum_op") == 1
    pred = ddgraph.predict(g)  # no rule file for it yet: an explicit no-rule, never a default
    assert {n.status for n in pred.nodes} == {"no-rule"}
    plain = ddgraph.label(ddgraph.trace(m, X))  # nothing was registered globally
    assert "cumsum_op" not in plain.summary() and plain.summary().get("unknown") == 1
