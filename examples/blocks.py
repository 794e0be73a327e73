"""Residual, gated, normalised and biased MLPs: the DAG, SwiGLU, LayerNorm and bias results."""
import torch
import torch.nn.functional as F
from torch import nn

WIDTH = 8


class ResidualMLP(nn.Module):
    """``depth`` linear layers with an identity skip around layers ``start..stop-1`` (0-based)."""

    def __init__(self, depth=4, start=1, stop=3, width=WIDTH, act="relu"):
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
    """The LLaMA MLP: W2 (silu(W1 x) * W3 x)."""

    def __init__(self, width=WIDTH, hidden=2 * WIDTH):
        super().__init__()
        self.w1 = nn.Linear(width, hidden, bias=False)
        self.w3 = nn.Linear(width, hidden, bias=False)
        self.w2 = nn.Linear(hidden, width, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class NormedChain(nn.Module):
    """A linear chain with a LayerNorm or RMSNorm after layer ``position`` (1-based)."""

    def __init__(self, depth=4, position=1, norm="layernorm", width=WIDTH):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth))
        self.norm = nn.LayerNorm(width) if norm == "layernorm" else nn.RMSNorm(width)
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


class HandRMSChain(NormedChain):
    def __init__(self, depth=4, position=1, width=WIDTH):
        super().__init__(depth, position, "layernorm", width)
        self.norm = HandRMSNorm(width)


def residual_mlp():
    """A residual block over the middle two of four weights: A = 0,2,4,2, G = 2,4,2,0."""
    return ResidualMLP(), (torch.randn(16, WIDTH),)


def swiglu_mlp():
    """SwiGLU: G = 4,4,0 and A = 0,0,4 for W1, W3, W2 (Prop 114)."""
    return SwiGLU(), (torch.randn(16, WIDTH),)


def layernorm_chain():
    """LayerNorm after the first of four layers: G = 0,4,2,0, A = 0,0,2,4."""
    return NormedChain(position=1), (torch.randn(16, WIDTH),)


def rmsnorm_chain():
    """RMSNorm (nn.RMSNorm) after the first of four layers."""
    return NormedChain(position=1, norm="rmsnorm"), (torch.randn(16, WIDTH),)


def hand_rmsnorm_chain():
    """RMSNorm written out by hand (pow-mean-rsqrt-mul) after the first of four layers."""
    return HandRMSChain(position=1), (torch.randn(16, WIDTH),)


def biased_chain():
    """A four-layer ReLU chain with biases (Thm 112: zeroed dead bias entries are inert)."""
    from chains import chain
    return chain(4, "relu", bias=True), (torch.randn(16, WIDTH),)
