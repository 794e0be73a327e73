"""Per-channel reductions and broadcasts shared by the step kernels and the orbit tools.

A multiplicative layout repeats over channels: a tensor's channel axis (or, for whole-tensor specs,
one channel covering the tensor). Reductions return a length-``channels`` vector; broadcasts turn
such a vector back into a shape that multiplies the tensor in place, so no transposed copies are made.
"""
from __future__ import annotations

import functools

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
    if layout.n_blocks == len(rows) and list(layout.blocks) == list(range(len(rows))):  # one tensor per block
        return torch.stack([r.expand(channels) for r in rows], 1)
    out = rows[0].new_zeros(channels, layout.n_blocks)
    stacked = torch.stack([r.expand(channels) for r in rows], 1)
    return out.index_add_(1, _index(layout.blocks, out.device), stacked)


@functools.lru_cache(maxsize=64)
def _index(blocks: tuple, device: torch.device) -> torch.Tensor:
    """A layout's block index as a tensor, made once per layout and device."""
    return torch.tensor(blocks, device=device)


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
