"""Per-channel reductions and broadcasts shared by the step kernels and the orbit tools.

A multiplicative layout repeats over channels: a tensor's channel axis (or, for whole-tensor specs,
one channel covering the tensor). Reductions return a length-``channels`` vector; broadcasts turn
such a vector back into a shape that multiplies the tensor in place, so no transposed copies are made.
"""
from __future__ import annotations

import torch


def channel_sum(t: torch.Tensor, channel_dim) -> torch.Tensor:
    """Sum of ``t`` over every axis but ``channel_dim`` (all axes if None, giving length 1)."""
    if channel_dim is None:
        return t.sum().reshape(1)
    others = [d for d in range(t.dim()) if d != channel_dim]
    return t.sum(dim=others) if others else t  # (sum over an empty list would reduce everything)


def per_channel(vec: torch.Tensor, like: torch.Tensor, channel_dim) -> torch.Tensor:
    """``vec`` (length channels) shaped to broadcast against ``like`` along ``channel_dim``."""
    if channel_dim is None:
        return vec.reshape([1] * like.dim())
    shape = [1] * like.dim()
    shape[channel_dim] = -1
    return vec.reshape(shape)


def block_sums(rows, layout, channels: int) -> torch.Tensor:
    """Sum per-tensor channel vectors (length ``channels`` or 1) into a ``(channels, n_blocks)`` matrix."""
    cols = [None] * layout.n_blocks
    for r, k in zip(rows, layout.blocks):
        cols[k] = r if cols[k] is None else cols[k] + r
    return torch.stack([rows[0].new_zeros(channels) if col is None else col.expand(channels) for col in cols], 1)


def n_channels(params, layout) -> int:
    """Number of channels a multiplicative layout repeats over (1 for whole-tensor specs)."""
    for p, cd in zip(params, layout.channel_dims):
        if cd is not None:
            return p.shape[cd]
    return 1


def block_sq_norms(params, layout) -> torch.Tensor:
    """Squared norms of every block, shape ``(channels, n_blocks)``."""
    return block_sums([channel_sum(p * p, cd) for p, cd in zip(params, layout.channel_dims)], layout,
                      n_channels(params, layout))
