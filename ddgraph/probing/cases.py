"""Probe cases: the small models that check each rule (named in the rule files' ``[probe]`` tables).

A case returns ``(model, example_inputs, approach_kwargs)``. ``check_rule`` runs one through the
full pipeline, so every rule is checked against a measurement, the way JAX checks every primitive's
rule against finite differences.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ddgraph.errors import ProbeError
from ddgraph.models import zoo

CASES: dict[str, Callable] = {}


def case(fn: Callable) -> Callable:
    if fn.__name__ in CASES:
        raise ValueError(f"probe case {fn.__name__} defined twice")
    CASES[fn.__name__] = fn
    return fn


def _features(width=8, n=16):
    return (torch.randn(n, width),)


def _tokens(width=8, n=16, t=6):
    return (torch.randn(n, t, width),)


def _approach(**kw):
    return {k: v for k, v in kw.items() if v is not None}


@case
def chain(depth=4, act="linear", regime=None, loss=None, fisher=None, scale=None, alpha=None):
    return zoo.chain(depth, act, scale=scale), _features(), _approach(
        regime=regime, loss=loss, fisher=fisher, alpha=alpha)


@case
def bias(depth=4, beta=None, layer=None):
    """A ReLU chain with separately added biases; ``beta`` puts ``t**beta`` on one layer's dead bias."""
    model = zoo.BiasChain(depth)
    betas = {f"biases.{depth - 2 if layer is None else layer}": beta} if beta is not None else None
    return model, _features(), _approach(beta=betas)


@case
def residual(depth=4, start=1, stop=3):
    return zoo.ResidualMLP(depth, start, stop), _features(), {}


@case
def two_branch():
    return zoo.TwoBranch(), _features(), {}


@case
def shift():
    return zoo.Shift(), _features(), {}


@case
def product():
    return zoo.Product(), _features(), {}


@case
def swiglu(act="silu"):
    return zoo.SwiGLU(act=act), _features(), {}


@case
def layernorm(depth=4, position=1, zero_last=False):
    """A linear chain with a LayerNorm after layer ``position``. ``zero_last`` zero-initialises the last
    weight, as torchvision's ViT does its head: no gradient reaches the bulk through it, and the
    LayerNorm below hands the dead channel's higher order to every class (THEORY §3.9)."""
    model = zoo.NormedChain(depth, position, "layernorm")
    if zero_last:
        with torch.no_grad():
            model.layers[-1].weight.zero_()
    return model, _features(), {}


@case
def rmsnorm(depth=4, position=1, hand=False):
    return zoo.NormedChain(depth, position, "hand_rmsnorm" if hand else "rmsnorm"), _features(), {}


@case
def softmax_head():
    return zoo.SoftmaxHead(), _features(), {}


@case
def attention_chain(blocks=2, explicit=False, heads=1):
    return zoo.AttentionChain(blocks, 8, heads, explicit), _tokens(), {}


@case
def linear_attention(explicit=False, regime=None):
    """Two linears, attention, an output linear: noise-free, its q and k G rates need the residual
    without cancellation (THEORY §7.2)."""
    return zoo.LinearAttention(explicit=explicit), _tokens(), _approach(regime=regime)


@case
def pool_head():
    return zoo.PoolHead(), _features(), {}


@case
def token_pool():
    return zoo.TokenPool(), _tokens(), {}


@case
def concat():
    return zoo.Concat(), _features(), {}


class ClassToken(torch.nn.Module):
    """Linear, a learned class token prepended along the tokens (ViT), linear, tanh, linear."""

    def __init__(self, width=8):
        super().__init__()
        self.inp = torch.nn.Linear(width, width, bias=False)
        self.cls_token = torch.nn.Parameter(torch.randn(1, 1, width))
        self.mid = torch.nn.Linear(width, width, bias=False)
        self.out = torch.nn.Linear(width, width, bias=False)

    def forward(self, x):
        h = self.inp(x)
        h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1)
        return self.out(torch.tanh(self.mid(h)))


@case
def class_token():
    return ClassToken(), _tokens(), {}


class ConvBN(torch.nn.Module):
    """conv 3x3 (padding 1, stride 2) - BatchNorm - ReLU - conv 3x3 (padding 1) - BatchNorm - ReLU - conv 1x1.
    ``zero_gain``: the second conv-BatchNorm is a residual branch whose BatchNorm gain is zero (timm's
    ResNets initialise the last BatchNorm of each block so: no gradient reaches the branch)."""

    def __init__(self, channels=6, train=False, eps=1e-5, zero_gain=False):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, channels, 3, padding=1, stride=2, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(channels, eps=eps)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(channels, eps=eps)
        self.head = torch.nn.Conv2d(channels, 4, 1, bias=False)
        with torch.no_grad():  # trained-looking statistics and affine maps, not the identity init
            for bn in (self.bn1, self.bn2):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.5, 0.5)
            if zero_gain:
                self.bn2.weight.zero_()
        self.zero_gain = zero_gain
        self.train(train)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        r = self.bn2(self.conv2(h))
        h = torch.relu(h + r if self.zero_gain else r)
        return self.head(h)


@case
def conv_bn(train=False, eps=1e-5, zero_gain=False):
    """Convolutions with padding and stride, and batch norm in eval or train mode (in train mode
    a larger ``eps`` moves the crossover t* ~ sqrt(eps) above the default probe grid); ``zero_gain``: a
    residual branch under a BatchNorm whose gain is zero."""
    return ConvBN(train=train, eps=eps, zero_gain=zero_gain), (torch.randn(4, 3, 8, 8),), {}


@case
def cnn_pool():
    """Max, average and global average pooling between convolutions and a linear head."""
    return zoo.PoolCNN(), (torch.randn(4, 3, 8, 8),), {}


@case
def mobile_cnn():
    """Grouped and depthwise convolutions, squeeze-excitation, hard-swish and layer scale (MobileNetV3,
    EfficientNet)."""
    return zoo.MobileCNN(), (torch.randn(4, 3, 8, 8),), {}


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class RotaryGQA(torch.nn.Module):
    """LLaMA's attention as transformers writes it: rotary embeddings (rotate_half: slice-neg-cat,
    times cos/sin buffers), grouped-query attention (repeat_kv: expand + reshape), fused sdpa."""

    def __init__(self, width=16, heads=4, kv_heads=2, tokens=6):
        super().__init__()
        self.h, self.kv, self.dh = heads, kv_heads, width // heads
        self.inp = torch.nn.Linear(width, width, bias=False)
        self.q = torch.nn.Linear(width, heads * self.dh, bias=False)
        self.k = torch.nn.Linear(width, kv_heads * self.dh, bias=False)
        self.v = torch.nn.Linear(width, kv_heads * self.dh, bias=False)
        self.o = torch.nn.Linear(heads * self.dh, width, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, self.dh, 2).double() / self.dh))
        ang = torch.outer(torch.arange(tokens).double(), inv)
        emb = torch.cat((ang, ang), dim=-1)
        self.register_buffer("cos", emb.cos().float())
        self.register_buffer("sin", emb.sin().float())

    def _repeat_kv(self, x):
        b, kv, t, dh = x.shape
        rep = self.h // self.kv
        return x[:, :, None].expand(b, kv, rep, t, dh).reshape(b, kv * rep, t, dh)

    def forward(self, x):
        h = torch.tanh(self.inp(x))
        b, t, _ = h.shape
        q = self.q(h).view(b, t, self.h, self.dh).transpose(1, 2)
        k = self.k(h).view(b, t, self.kv, self.dh).transpose(1, 2)
        v = self.v(h).view(b, t, self.kv, self.dh).transpose(1, 2)
        cos, sin = self.cos[:t], self.sin[:t]
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        k, v = self._repeat_kv(k), self._repeat_kv(v)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(a.transpose(1, 2).reshape(b, t, self.h * self.dh))


@case
def rotary_gqa():
    return RotaryGQA(), (torch.randn(16, 6, 16),), {}


class GeluTanhChain(torch.nn.Module):
    """A linear chain whose activation is GELU-tanh written out as GPT-2 writes it (pow, mul, add, tanh)."""

    def __init__(self, depth=3, width=8):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width, bias=False) for _ in range(depth))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
        return x


@case
def gelu_tanh_chain(depth=3):
    return GeluTanhChain(depth), _features(), {}


class TiedLM(torch.nn.Module):
    """Token embedding, a tanh MLP layer, and an unembedding tied to the embedding (GPT-2, BERT)."""

    def __init__(self, vocab=24, width=8):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, width)
        self.mid = torch.nn.Linear(width, width, bias=False)
        self.lm_head = torch.nn.Linear(width, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, ids):
        return self.lm_head(torch.tanh(self.mid(self.wte(ids))))


@case
def tied_embedding():
    return TiedLM(), (torch.randint(0, 24, (16, 5)),), {}


def build(spec: dict):
    """Build a case from a rule's ``[probe]`` table."""
    name = spec.get("case")
    if name not in CASES:
        raise ProbeError(f"unknown probe case {name!r}; known: {', '.join(sorted(CASES))}")
    return CASES[name](**spec.get("args", {}))


def check_rule(rule, rules=None, n_samples: int = 4000, grid=None):
    """Run a rule's probe case: predict with ``rules`` (the built-ins by default), probe, diff."""
    from ddgraph.api import check

    torch.manual_seed(0)
    model, inputs, kw = build(rule.probe or {})
    return check(model, inputs, rules=rules, n_samples=n_samples, grid=grid, progress=False, **kw)
