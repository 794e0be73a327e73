"""Small models with known singular structure: the paper's test beds and the rules' probe cases."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTS = {"linear": nn.Identity, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
        "silu": nn.SiLU}
ACT_FN = {"linear": lambda x: x, "relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh}


def chain(depth: int = 4, act: str = "linear", width: int = 8, bias: bool = False, scale: float | None = None,
          widths: list[int] | None = None) -> nn.Module:
    """A depth-``depth`` MLP (square ``width``, or the given ``widths``) with ``act`` between layers."""
    dims = widths or [width] * (depth + 1)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=bias))
        if i < depth - 1 and act != "linear":
            layers.append(ACTS[act]())
        if scale is not None and i < depth - 1:
            layers.append(Scale(scale))
    return nn.Sequential(*layers)


class Scale(nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x):
        return self.c * x


class BiasChain(nn.Module):
    """A chain written as ``x @ W.T + b`` (the bias added separately: a bias_add node), ``act`` between."""

    def __init__(self, depth=4, width=8, act="relu"):
        super().__init__()
        self.act = ACTS[act]()
        self.weights = nn.ParameterList(nn.Parameter(torch.randn(width, width) / math.sqrt(width))
                                        for _ in range(depth))
        self.biases = nn.ParameterList(nn.Parameter(0.5 * torch.randn(width)) for _ in range(depth))

    def forward(self, x):
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w.T + b
            if i < len(self.weights) - 1:
                x = self.act(x)
        return x


class ResidualMLP(nn.Module):
    """``depth`` linear layers with an identity skip around layers ``start..stop-1`` (0-based)."""

    def __init__(self, depth=4, start=1, stop=3, width=8, act="relu"):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth))
        self.start, self.stop, self.act = start, stop, act

    def forward(self, x):
        skip = None
        for i, layer in enumerate(self.layers):
            if i == self.start:
                skip = x
            x = layer(x)
            if self.act == "relu" and i < len(self.layers) - 1:
                x = F.relu(x)
            if i == self.stop - 1:
                x = x + skip
        return x


class SwiGLU(nn.Module):
    """The LLaMA MLP: W2 (act(W1 x) * W3 x); act = silu (SwiGLU) or gelu (GeGLU)."""

    def __init__(self, width=8, hidden=16, act="silu"):
        super().__init__()
        self.w1 = nn.Linear(width, hidden, bias=False)
        self.w3 = nn.Linear(width, hidden, bias=False)
        self.w2 = nn.Linear(hidden, width, bias=False)
        self.act = F.silu if act == "silu" else F.gelu

    def forward(self, x):
        return self.w2(self.act(self.w1(x)) * self.w3(x))


class HandRMSNorm(nn.Module):
    """RMSNorm written out as pow-mean-rsqrt-mul, as LLaMA's model code does."""

    def __init__(self, width, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        variance = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.eps)
        return self.weight * x.to(dtype)


class NormedChain(nn.Module):
    """A linear chain with a norm after layer ``position`` (1-based): layernorm, rmsnorm or hand_rmsnorm."""

    def __init__(self, depth=4, position=1, norm="layernorm", width=8):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth))
        self.norm = {"layernorm": lambda: nn.LayerNorm(width), "rmsnorm": lambda: nn.RMSNorm(width),
                     "hand_rmsnorm": lambda: HandRMSNorm(width)}[norm]()
        self.position = position
        with torch.no_grad():  # generic affine parameters, not the trivial init
            self.norm.weight.uniform_(0.5, 1.5)
            if getattr(self.norm, "bias", None) is not None:
                self.norm.bias.normal_()

    def forward(self, x):
        for i, layer in enumerate(self.layers, 1):
            x = layer(x)
            if i == self.position:
                x = self.norm(x)
        return x


class Attention(nn.Module):
    """Multi-head self-attention with explicit matmuls or fused SDPA."""

    def __init__(self, width=8, heads=1, explicit=False):
        super().__init__()
        self.q = nn.Linear(width, width, bias=False)
        self.k = nn.Linear(width, width, bias=False)
        self.v = nn.Linear(width, width, bias=False)
        self.o = nn.Linear(width, width, bias=False)
        self.heads, self.explicit = heads, explicit

    def forward(self, x):
        b, t, c = x.shape
        h = self.heads
        q = self.q(x).view(b, t, h, c // h).transpose(1, 2)
        k = self.k(x).view(b, t, h, c // h).transpose(1, 2)
        v = self.v(x).view(b, t, h, c // h).transpose(1, 2)
        if self.explicit:
            s = q @ k.transpose(-2, -1) / math.sqrt(c // h)
            y = torch.softmax(s, dim=-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v)
        return self.o(y.transpose(1, 2).reshape(b, t, c))


class AttentionChain(nn.Module):
    """``blocks`` attention blocks in a row, no skips (Prop 54, Prop 69)."""

    def __init__(self, blocks=2, width=8, heads=1, explicit=False):
        super().__init__()
        self.blocks = nn.ModuleList(Attention(width, heads, explicit) for _ in range(blocks))

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return x


class LinearAttention(nn.Module):
    """Two linears, one attention block and an output linear. Noise-free, the q and k G rates rest on
    a residual ``f_t - f_0`` of order ``t**6`` in the bulk (THEORY §7.2)."""

    def __init__(self, width=8, heads=1, explicit=False):
        super().__init__()
        self.l0 = nn.Linear(width, width, bias=False)
        self.l1 = nn.Linear(width, width, bias=False)
        self.attn = Attention(width, heads, explicit)
        self.out = nn.Linear(width, width, bias=False)

    def forward(self, x):
        return self.out(self.attn(self.l1(self.l0(x))))


class PreNormBlock(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)): the pre-norm transformer block."""

    def __init__(self, width=8, hidden=32, heads=1, bias=False):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.fc1 = nn.Linear(width, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, width, bias=bias)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class PreNormTransformer(nn.Module):
    """Token embedding, ``depth`` pre-norm blocks, final LayerNorm and an LM head."""

    def __init__(self, depth=2, width=16, heads=2, vocab=32, mlp_ratio=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(PreNormBlock(width, mlp_ratio * width, heads, bias=True)
                                    for _ in range(depth))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


class TwoBranch(nn.Module):
    """Two weight branches of one input added (not an identity skip), then a readout."""

    def __init__(self, width=8):
        super().__init__()
        self.a, self.b, self.c = (nn.Linear(width, width, bias=False) for _ in range(3))

    def forward(self, x):
        return self.c(torch.relu(self.a(x) + self.b(x)))


class Shift(nn.Module):
    """A chain with a constant buffer added to the hidden layer."""

    def __init__(self, width=8, offset=1.0):
        super().__init__()
        self.a, self.b = nn.Linear(width, width, bias=False), nn.Linear(width, width, bias=False)
        self.register_buffer("offset", torch.full((width,), offset))

    def forward(self, x):
        return self.b(self.a(x) + self.offset)


class Product(nn.Module):
    """The product of two weight branches fed by different layers (a product, not a GLU gate)."""

    def __init__(self, width=8):
        super().__init__()
        self.a, self.b, self.c, self.d = (nn.Linear(width, width, bias=False) for _ in range(4))

    def forward(self, x):
        h = self.a(x)
        return self.d(self.b(h) * self.c(torch.tanh(self.b(h))))


class SoftmaxHead(nn.Module):
    """A chain whose hidden layer goes through a softmax over channels."""

    def __init__(self, width=8):
        super().__init__()
        self.a, self.b, self.c = (nn.Linear(width, width, bias=False) for _ in range(3))

    def forward(self, x):
        return self.c(torch.softmax(self.b(self.a(x)), dim=-1))


class PoolHead(nn.Module):
    """Tokens pooled over channels into a gate that scales the stream (a channel reduction)."""

    def __init__(self, width=8):
        super().__init__()
        self.a, self.b = nn.Linear(width, width, bias=False), nn.Linear(width, width, bias=False)

    def forward(self, x):
        h = self.a(x)
        return self.b(h * h.mean(-1, keepdim=True))


class TokenPool(nn.Module):
    """A token mean (over the sequence axis) between two weights."""

    def __init__(self, width=8):
        super().__init__()
        self.a, self.b = nn.Linear(width, width, bias=False), nn.Linear(width, width, bias=False)

    def forward(self, x):
        return self.b(self.a(x).mean(1))


class Concat(nn.Module):
    """Two branches concatenated along channels, then a readout."""

    def __init__(self, width=8):
        super().__init__()
        self.a, self.b = nn.Linear(width, width, bias=False), nn.Linear(width, width, bias=False)
        self.c = nn.Linear(2 * width, width, bias=False)

    def forward(self, x):
        return self.c(torch.cat([self.a(x), torch.relu(self.b(x))], dim=-1))


class PerLayerResidual(nn.Module):
    """``x <- x + W_l act(x)`` at every layer (Cor 47): every weight is bypassed by an identity skip."""

    def __init__(self, depth=4, width=8, act="relu"):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth))
        self.act = act

    def forward(self, x):
        for layer in self.layers:
            x = x + layer(ACT_FN[self.act](x))
        return x


class MLPBlock(nn.Module):
    """``fc2(act(fc1(x)))``: a two-weight block (block rate 2)."""

    def __init__(self, width=8, hidden=8, act="relu"):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, width, bias=False)
        self.act = act

    def forward(self, x):
        return self.fc2(ACT_FN[self.act](self.fc1(x)))


class BlockStack(nn.Module):
    """A sequence of attention ('A') and MLP ('M') blocks on tokens, no skips (Thm 30)."""

    def __init__(self, kinds="AM", width=8):
        super().__init__()
        self.kinds = kinds
        self.blocks = nn.ModuleList(Attention(width) if k == "A" else MLPBlock(width) for k in kinds)

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return x


class PreNormStack(nn.Module):
    """``depth`` pre-norm residual blocks (attention + GELU MLP): the residual stream of Cor 58."""

    def __init__(self, depth=2, width=8):
        super().__init__()
        self.blocks = nn.ModuleList(PreNormBlock(width, 2 * width) for _ in range(depth))
        for blk in self.blocks:  # generic affine parameters, not the trivial init
            for ln in (blk.ln1, blk.ln2):
                with torch.no_grad():
                    ln.weight.uniform_(0.5, 1.5)
                    ln.bias.normal_()

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return x


class TiedAutoencoder(nn.Module):
    """The toy model of superposition, linear and tied: ``x -> W^T W x`` with ``W`` of shape (m, n)."""

    def __init__(self, n=6, m=3):
        super().__init__()
        self.W = nn.Parameter(torch.randn(m, n) / math.sqrt(n))

    def forward(self, x):
        h = x @ self.W.T
        return h @ self.W


class Readout(nn.Module):
    """``model`` followed by one linear readout (its A factor reads the block's forward order)."""

    def __init__(self, model, width=8):
        super().__init__()
        self.model = model
        self.readout = nn.Linear(width, width, bias=False)

    def forward(self, x):
        return self.readout(self.model(x))


class PoolCNN(nn.Module):
    """conv -> ReLU -> max pool -> conv -> ReLU -> avg pool -> conv -> global average pool -> flatten
    -> linear: the pooling layers of a CNN between weight edges (each pool passes orders through)."""

    def __init__(self, channels=8, classes=4):
        super().__init__()
        self.c1 = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.c3 = nn.Conv2d(channels, channels, 1, bias=False)
        self.head = nn.Linear(channels, classes, bias=False)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.avg_pool2d(F.relu(self.c2(x)), 2)
        x = F.adaptive_avg_pool2d(self.c3(x), 1)
        return self.head(torch.flatten(x, 1))


class MobileCNN(nn.Module):
    """What MobileNetV3 and EfficientNet blocks are made of: a grouped convolution, a depthwise one, a
    squeeze-excitation gate (global pool, 1x1 convolutions, ReLU, hard-sigmoid, a product with the
    features), hard-swish, a layer scale and a residual skip, then global pooling and a linear head."""

    def __init__(self, channels=8, classes=4):
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.grouped = nn.Conv2d(channels, channels, 3, padding=1, groups=2, bias=False)
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.squeeze = nn.Conv2d(channels, channels // 2, 1)
        self.excite = nn.Conv2d(channels // 2, channels, 1)
        self.project = nn.Conv2d(channels, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.full((channels, 1, 1), 0.5))
        self.head = nn.Linear(channels, classes, bias=False)

    def forward(self, x):
        x = F.hardswish(self.stem(x))
        h = F.relu(self.grouped(x))
        h = F.hardswish(self.depthwise(h))
        s = F.hardsigmoid(self.excite(F.relu(self.squeeze(F.adaptive_avg_pool2d(h, 1)))))
        x = x + self.gamma * self.project(h * s)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
