"""Attention: pure single-head chains and a pre-norm transformer block."""
import math

import torch
import torch.nn.functional as F
from torch import nn

WIDTH, TOKENS = 8, 6


class Attention(nn.Module):
    """Multi-head self-attention with explicit matmuls or fused SDPA."""

    def __init__(self, width=WIDTH, heads=1, explicit=False):
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

    def __init__(self, blocks=2, width=WIDTH, heads=1, explicit=False):
        super().__init__()
        self.blocks = nn.ModuleList(Attention(width, heads, explicit) for _ in range(blocks))

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return x


class PreNormBlock(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)): the pre-norm transformer block."""

    def __init__(self, width=WIDTH, hidden=4 * WIDTH, heads=1):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.fc1 = nn.Linear(width, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, width, bias=False)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def attention_chain():
    """Three single-head attention blocks in a row."""
    return AttentionChain(3), (torch.randn(16, TOKENS, WIDTH),)


def transformer_block():
    """One pre-norm transformer block (LN, single-head attention, GELU MLP, residuals)."""
    return PreNormBlock(), (torch.randn(16, TOKENS, WIDTH),)
