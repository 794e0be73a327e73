"""Channel views and per-block reductions shared by the step kernels and the orbit tools."""
from __future__ import annotations

import torch


def channel_view(t: torch.Tensor, channel_dim) -> torch.Tensor:
    """``t`` as a ``(channels, rest)`` matrix: axis ``channel_dim`` first, or one row if None."""
    if channel_dim is None:
        return t.reshape(1, -1)
    return t.movedim(channel_dim, 0).reshape(t.shape[channel_dim], -1)


def write_back(p: torch.Tensor, view: torch.Tensor, channel_dim) -> None:
    """Copy a ``channel_view``-shaped matrix into ``p`` in place."""
    if channel_dim is None:
        p.copy_(view.view_as(p))
    else:
        moved = list(p.shape)
        moved.insert(0, moved.pop(channel_dim))
        p.copy_(view.reshape(moved).movedim(0, channel_dim))


def block_sums(rows, layout, channels: int) -> torch.Tensor:
    """Sum per-parameter row vectors (length ``channels`` or 1) into a ``(channels, n_blocks)`` matrix."""
    out = rows[0].new_zeros(channels, layout.n_blocks)
    for r, k in zip(rows, layout.blocks):
        out[:, k] += r
    return out


def n_channels(params, layout) -> int:
    """Number of channels a multiplicative layout repeats over (1 for whole-tensor specs)."""
    for p, cd in zip(params, layout.channel_dims):
        if cd is not None:
            return p.shape[cd]
    return 1


def block_log_norms(params, layout) -> torch.Tensor:
    """Log-norms ``rho`` of every block, shape ``(channels, n_blocks)``."""
    c = n_channels(params, layout)
    views = [channel_view(p.detach(), cd) for p, cd in zip(params, layout.channel_dims)]
    return 0.5 * torch.log(block_sums([(v * v).sum(1) for v in views], layout, c))
