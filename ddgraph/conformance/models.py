"""Test-bed models the conformance suite needs beyond :mod:`ddgraph.models.zoo`."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ddgraph.models import zoo

ACT = {"linear": lambda x: x, "relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh}


class PerLayerResidual(nn.Module):
    """``x <- x + W_l act(x)`` at every layer (Cor 47): every weight is bypassed by an identity skip."""

    def __init__(self, depth=4, width=8, act="relu"):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth))
        self.act = act

    def forward(self, x):
        for layer in self.layers:
            x = x + layer(ACT[self.act](x))
        return x


class MLPBlock(nn.Module):
    """``fc2(act(fc1(x)))``: a two-weight block (block rate 2)."""

    def __init__(self, width=8, hidden=8, act="relu"):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, width, bias=False)
        self.act = act

    def forward(self, x):
        return self.fc2(ACT[self.act](self.fc1(x)))


class BlockStack(nn.Module):
    """A sequence of attention ('A') and MLP ('M') blocks on tokens, no skips (Thm 30)."""

    def __init__(self, kinds="AM", width=8):
        super().__init__()
        self.kinds = kinds
        self.blocks = nn.ModuleList(zoo.Attention(width) if k == "A" else MLPBlock(width) for k in kinds)

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return x


class PreNormStack(nn.Module):
    """``depth`` pre-norm residual blocks (attention + GELU MLP): the residual stream of Cor 58."""

    def __init__(self, depth=2, width=8):
        super().__init__()
        self.blocks = nn.ModuleList(zoo.PreNormBlock(width, 2 * width) for _ in range(depth))
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
