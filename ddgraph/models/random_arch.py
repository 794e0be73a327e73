"""Random small architectures for testing the engine against the probe.

``make(seed)`` returns ``(model, example_inputs, description)``, the same for the same seed on every
machine (the architecture comes from :class:`random.Random`, the weights from a seeded torch
generator). A model is an input projection, one to six blocks on a stream of width 8, 10, 12 or 16
(a seventh, an attention block, when a token-shaped model drew none), and a linear head of width
4 to 8. The blocks compose:

- ``dense``: a Linear layer, with or without bias, optionally followed by ReLU, GELU, tanh or SiLU;
- ``bias``: a hand-written bias add ``x + b``;
- ``layernorm`` / ``rmsnorm``: the modules; ``hand_layernorm`` / ``hand_rmsnorm``: the formulas
  ``(x - mean) * rsqrt(var + eps) * w + b`` and ``x * rsqrt(mean(x^2) + eps) * w``;
- ``gate``: a SwiGLU-style gate ``W2 (act(W1 x) * W3 x)`` (SiLU or GELU);
- ``attention``: single-head ``softmax(Q K^T / sqrt d) V`` written out, or
  ``F.scaled_dot_product_attention``, with an output projection (token-shaped inputs only);
- ``product``: an element-wise product of two linear branches, ``(A x) * (B x)``;
- ``concat``: ``W [A x ; B x]``, a concatenation of two branches projected back;
- ``residual``: an identity skip ``x + f(x)`` around one of the blocks above (pre-normed or not).

A model with an attention block takes token-shaped inputs ``(batch, tokens, width)``; the others
``(batch, width)``. Norm and bias parameters are drawn generic (not the trivial init), so the
canonical configuration is the model's own.
"""
from __future__ import annotations

import math
import random

import attrs
import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "gelu", "tanh", "silu")
_ACT = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "silu": F.silu}
#: The block kinds the generator draws from (``residual`` wraps one of the others).
KINDS = ("dense", "bias", "layernorm", "rmsnorm", "hand_layernorm", "hand_rmsnorm", "gate", "attention",
         "product", "concat", "residual")
#: Every composition feature a description can carry (the rows of the long run's table).
FEATURES = ("linear", "linear-bias", *ACTIVATIONS, "bias-add", "layernorm", "rmsnorm", "hand-layernorm",
            "hand-rmsnorm", "swiglu-gate", "attention-explicit", "attention-sdpa", "product", "concat",
            "residual", "tokens")


@attrs.frozen
class Description:
    """What ``make(seed)`` built: the seed, the block list (one string per block) and the features."""

    seed: int
    width: int
    tokens: int | None
    blocks: tuple[str, ...]
    features: frozenset[str]

    def __str__(self) -> str:
        shape = f"(B,{self.tokens},{self.width})" if self.tokens else f"(B,{self.width})"
        return f"seed {self.seed} {shape}: " + " > ".join(self.blocks)


def _act(name: str | None):
    return (lambda x: x) if name is None else _ACT[name]


class Dense(nn.Module):
    def __init__(self, w_in: int, w_out: int, bias: bool, act: str | None):
        super().__init__()
        self.lin = nn.Linear(w_in, w_out, bias=bias)
        self.act_name = act

    def forward(self, x):
        return _act(self.act_name)(self.lin(x))


class BiasAdd(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.b = nn.Parameter(0.5 * torch.randn(width))

    def forward(self, x):
        return x + self.b


class HandRMSNorm(nn.Module):
    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(width).uniform_(0.5, 1.5))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class HandLayerNorm(nn.Module):
    def __init__(self, width: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(width).uniform_(0.5, 1.5))
        self.bias = nn.Parameter(0.5 * torch.randn(width))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = (x - mu).pow(2).mean(-1, keepdim=True)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def _norm_module(kind: str, width: int) -> nn.Module:
    m = nn.LayerNorm(width) if kind == "layernorm" else nn.RMSNorm(width)
    with torch.no_grad():  # generic affine parameters, not the trivial init
        m.weight.uniform_(0.5, 1.5)
        if getattr(m, "bias", None) is not None:
            m.bias.normal_(0, 0.5)
    return m


class Gate(nn.Module):
    """SwiGLU-style: ``W2 (act(W1 x) * W3 x)``."""

    def __init__(self, width: int, hidden: int, act: str, bias: bool):
        super().__init__()
        self.w1 = nn.Linear(width, hidden, bias=bias)
        self.w3 = nn.Linear(width, hidden, bias=bias)
        self.w2 = nn.Linear(hidden, width, bias=bias)
        self.act_name = act

    def forward(self, x):
        return self.w2(_ACT[self.act_name](self.w1(x)) * self.w3(x))


class SingleHeadAttention(nn.Module):
    def __init__(self, width: int, explicit: bool, bias: bool):
        super().__init__()
        self.q = nn.Linear(width, width, bias=bias)
        self.k = nn.Linear(width, width, bias=bias)
        self.v = nn.Linear(width, width, bias=bias)
        self.o = nn.Linear(width, width, bias=bias)
        self.explicit = explicit
        self.scale = 1.0 / math.sqrt(width)

    def forward(self, x):
        q, k, v = self.q(x), self.k(x), self.v(x)
        if self.explicit:
            y = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v)
        return self.o(y)


class Product(nn.Module):
    """``(A x) * (B x)``: an element-wise product of two linear branches."""

    def __init__(self, width: int, bias: bool):
        super().__init__()
        self.a = nn.Linear(width, width, bias=bias)
        self.b = nn.Linear(width, width, bias=bias)

    def forward(self, x):
        return self.a(x) * self.b(x)


class Concat(nn.Module):
    """``W [A x ; B x]``: two branches concatenated on the channel axis, projected back."""

    def __init__(self, width: int, half: int, bias: bool, act: str | None):
        super().__init__()
        self.a = nn.Linear(width, half, bias=bias)
        self.b = nn.Linear(width, half, bias=bias)
        self.w = nn.Linear(2 * half, width, bias=bias)
        self.act_name = act

    def forward(self, x):
        return self.w(_act(self.act_name)(torch.cat([self.a(x), self.b(x)], dim=-1)))


class Residual(nn.Module):
    """``x + f(norm(x))`` (``norm`` may be absent): an identity skip around one block."""

    def __init__(self, inner: nn.Module, norm: nn.Module | None):
        super().__init__()
        self.inner = inner
        self.norm = norm

    def forward(self, x):
        return x + self.inner(self.norm(x) if self.norm is not None else x)


class RandomNet(nn.Module):
    def __init__(self, d_in: int, width: int, blocks: list[nn.Module], d_out: int, in_bias: bool, out_bias: bool):
        super().__init__()
        self.inp = nn.Linear(d_in, width, bias=in_bias)
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(width, d_out, bias=out_bias)

    def forward(self, x):
        x = self.inp(x)
        for blk in self.blocks:
            x = blk(x)
        return self.head(x)


def _block(rng: random.Random, kind: str, width: int, tokens: bool, feats: set) -> tuple[nn.Module, str]:
    """One block of ``kind`` (not ``residual``) and its description; the features it carries join ``feats``."""
    bias = rng.random() < 0.4
    if bias:
        feats.add("linear-bias")
    if kind == "dense":
        act = rng.choice((None, *ACTIVATIONS))
        feats.update({"linear", act} - {None})
        return Dense(width, width, bias, act), f"linear{'+b' if bias else ''}" + (f">{act}" if act else "")
    if kind == "bias":
        feats.add("bias-add")
        return BiasAdd(width), "bias"
    if kind in ("layernorm", "rmsnorm"):
        feats.add(kind)
        return _norm_module(kind, width), kind
    if kind == "hand_layernorm":
        feats.add("hand-layernorm")
        return HandLayerNorm(width), "hand-layernorm"
    if kind == "hand_rmsnorm":
        feats.add("hand-rmsnorm")
        return HandRMSNorm(width), "hand-rmsnorm"
    if kind == "gate":
        act = rng.choice(("silu", "gelu"))
        hidden = rng.choice((width, width + 4, 2 * width))
        feats.update({"swiglu-gate", "linear", act})
        return Gate(width, hidden, act, bias), f"gate[{act},{hidden}{',b' if bias else ''}]"
    if kind == "attention":
        explicit = rng.random() < 0.5
        feats.update({"attention-explicit" if explicit else "attention-sdpa", "linear"})
        return (SingleHeadAttention(width, explicit, bias),
                f"attn[{'explicit' if explicit else 'sdpa'}{',b' if bias else ''}]")
    if kind == "product":
        feats.update({"product", "linear"})
        return Product(width, bias), f"product{'[b]' if bias else ''}"
    if kind == "concat":
        act = rng.choice((None, "relu", "gelu"))
        half = rng.choice((width // 2, width))
        feats.update({"concat", "linear", act} - {None})
        return Concat(width, half, bias, act), f"concat[{half}{',' + act if act else ''}{',b' if bias else ''}]"
    raise ValueError(f"unknown block kind {kind!r}")


def make(seed: int) -> tuple[nn.Module, tuple[torch.Tensor, ...], Description]:
    """A random small architecture, reproducible from ``seed``.

    Returns
    -------
    model : an ``nn.Module`` in eval mode with float32 weights.
    example_inputs : a one-tuple, ``(2, width_in)`` or ``(2, tokens, width_in)``.
    description : a :class:`Description` (``str()`` gives one line; ``.features`` the feature set).
    """
    rng = random.Random(seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        width = rng.choice((8, 10, 12, 16))
        n_blocks = rng.randint(1, 6)
        tokens = rng.random() < 0.4
        feats: set = set()
        blocks: list[nn.Module] = []
        inner_kinds = [k for k in KINDS if k not in ("residual", "bias") and (tokens or k != "attention")]
        for _ in range(n_blocks):
            kind = rng.choice(KINDS)
            if kind == "attention" and not tokens:
                kind = "residual"
            if kind == "residual":
                inner_kind = rng.choice(inner_kinds)
                norm = None
                if rng.random() < 0.4:
                    norm, _ = _block(rng, rng.choice(("layernorm", "rmsnorm", "hand_rmsnorm")), width, tokens, feats)
                inner, _ = _block(rng, inner_kind, width, tokens, feats)
                feats.add("residual")
                blocks.append(Residual(inner, norm))
            else:
                blocks.append(_block(rng, kind, width, tokens, feats)[0])
        if tokens and not any(isinstance(m, SingleHeadAttention) for b in blocks for m in b.modules()):
            blk, _ = _block(rng, "attention", width, tokens, feats)  # token inputs always meet attention
            if rng.random() < 0.5:
                blk = Residual(blk, None)
                feats.add("residual")
            blocks.insert(rng.randrange(len(blocks) + 1), blk)
        d_in = rng.choice((width, width + 4))
        d_out = rng.choice((4, 6, 8))
        in_bias, out_bias = rng.random() < 0.3, rng.random() < 0.3
        feats.add("linear")
        if in_bias or out_bias:
            feats.add("linear-bias")
        if tokens:
            feats.add("tokens")
        model = RandomNet(d_in, width, blocks, d_out, in_bias, out_bias).eval()
        n_tok = rng.choice((3, 4)) if tokens else None
        x = torch.randn(2, n_tok, d_in) if tokens else torch.randn(2, d_in)
    finally:
        torch.random.set_rng_state(torch_state)
    desc = Description(seed, width, n_tok, tuple(_words(blocks)), frozenset(feats))
    return model, (x,), desc


def _words(blocks) -> list[str]:
    """A block list's description, read off the modules (the one source of truth for the text)."""
    return [_word(b) for b in blocks]


def _word(b: nn.Module) -> str:
    if isinstance(b, Residual):
        pre = f"{_word(b.norm)}>" if b.norm is not None else ""
        return f"res({pre}{_word(b.inner)})"
    if isinstance(b, Dense):
        return f"linear{'+b' if b.lin.bias is not None else ''}" + (f">{b.act_name}" if b.act_name else "")
    if isinstance(b, BiasAdd):
        return "bias"
    if isinstance(b, nn.LayerNorm):
        return "layernorm"
    if isinstance(b, nn.RMSNorm):
        return "rmsnorm"
    if isinstance(b, HandLayerNorm):
        return "hand-layernorm"
    if isinstance(b, HandRMSNorm):
        return "hand-rmsnorm"
    if isinstance(b, Gate):
        return f"gate[{b.act_name},{b.w1.out_features}{',b' if b.w1.bias is not None else ''}]"
    if isinstance(b, SingleHeadAttention):
        return f"attn[{'explicit' if b.explicit else 'sdpa'}{',b' if b.q.bias is not None else ''}]"
    if isinstance(b, Product):
        return f"product{'[b]' if b.a.bias is not None else ''}"
    if isinstance(b, Concat):
        act = f",{b.act_name}" if b.act_name else ""
        return f"concat[{b.a.out_features}{act}{',b' if b.a.bias is not None else ''}]"
    return type(b).__name__
