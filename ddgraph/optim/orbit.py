"""Group actions of a gauge spec: move parameters along an orbit, read gauge and quotient coordinates."""
from __future__ import annotations

import numpy as np
import torch

from ddgraph.optim.blocks import block_sq_norms, n_channels, per_channel


def random_element(spec, generator: torch.Generator, scale: float = 1.0):
    """A random group element: a shift vector (translation) or log-factors ``(channels, r)``."""
    lay, p = spec.layout, spec.params[0]
    if lay.translation:
        shape = p.shape[1:]
    else:
        shape = (n_channels(spec.params, lay), np.asarray(lay.exponents).shape[1])
    return scale * (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1)


@torch.no_grad()
def act(spec, element, tensors=None) -> None:
    """Apply group ``element`` in place to ``tensors`` (default: the spec's own parameters)."""
    tensors = spec.params if tensors is None else tensors
    lay = spec.layout
    if lay.translation:
        tensors[0].add_(element.to(tensors[0].dtype))
        return
    e = torch.as_tensor(np.asarray(lay.exponents), dtype=torch.float64)
    factor = (element @ e.T).exp()
    for t, cd, k in zip(tensors, lay.channel_dims, lay.blocks):
        t.mul_(per_channel(factor[:, k].to(t.dtype), t, cd))


@torch.no_grad()
def gauge_coordinates(spec, tensors=None) -> torch.Tensor:
    """Where the parameters sit along the orbit: the class mean (translation) or ``rho @ U_orb``."""
    tensors = spec.params if tensors is None else tensors
    lay = spec.layout
    if lay.translation:
        return tensors[0].double().mean(0)
    u_orb, _ = lay.bases()
    return 0.5 * block_sq_norms([t.double() for t in tensors], lay).log() @ torch.as_tensor(u_orb)


@torch.no_grad()
def quotient_coordinates(spec, tensors=None) -> list[torch.Tensor]:
    """Gauge-invariant coordinates: equal for two points exactly when they share an orbit."""
    tensors = [t.double() for t in (spec.params if tensors is None else tensors)]
    lay = spec.layout
    if lay.translation:
        return [tensors[0] - tensors[0].mean(0)]
    _, u_inv = lay.bases()
    r2 = block_sq_norms(tensors, lay)
    return [0.5 * r2.log() @ torch.as_tensor(u_inv)] + [
        t / per_channel(r2[:, k].sqrt(), t, cd) for t, cd, k in zip(tensors, lay.channel_dims, lay.blocks)]
