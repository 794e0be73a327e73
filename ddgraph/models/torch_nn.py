"""torch's own transformer modules, built plainly with batch-first inputs of batch 1."""
from __future__ import annotations

import torch
from torch import nn

WIDTH, HEADS, HIDDEN, TOKENS = 32, 4, 64, 8


def _tokens() -> torch.Tensor:
    return torch.randn(1, TOKENS, WIDTH, generator=torch.Generator().manual_seed(0))


def transformer_encoder():
    """``nn.TransformerEncoder`` of two post-norm ``nn.TransformerEncoderLayer``s (ReLU MLP)."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=WIDTH, nhead=HEADS, dim_feedforward=HIDDEN, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2).eval(), (_tokens(),)


def multihead_attention():
    """``nn.MultiheadAttention`` called as self-attention, ``mha(x, x, x)`` (it returns output and weights)."""
    torch.manual_seed(0)
    x = _tokens()
    return nn.MultiheadAttention(WIDTH, HEADS, batch_first=True).eval(), (x, x, x)


FACTORIES = {f.__name__: f for f in (transformer_encoder, multihead_attention)}
