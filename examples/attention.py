"""Attention: pure single-head chains and a pre-norm transformer block."""
import torch

from ddgraph.models.zoo import AttentionChain, LinearAttention, PreNormBlock


def attention_chain():
    """Three single-head attention blocks in a row (Prop 54: V rate = O rate + 2; Prop 69)."""
    return AttentionChain(3), (torch.randn(16, 6, 8),)


def transformer_block():
    """One pre-norm transformer block (LN, single-head attention, GELU MLP, residuals)."""
    return PreNormBlock(), (torch.randn(16, 6, 8),)


def linear_attention():
    """Two linears, attention, an output linear; noise-free (`--regime noise-free`) its q and k G rates
    are 18, read off a residual of order t**6 that the probe computes without cancellation."""
    return LinearAttention(), (torch.randn(16, 6, 8),)
