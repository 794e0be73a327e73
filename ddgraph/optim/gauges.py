"""The five gauge specifications of Algorithm 2 (paper §11.1), as data.

A spec names the parameter tensors a continuous gauge group acts on and how it acts. Two shapes:

* **translation** (``CEShiftBias``, ``CEShiftRowShift``): the group adds a constant along axis 0 of one
  tensor (every class logit moves together). Vertical subspace = constant along axis 0.
* **multiplicative** (``ReLURescaleGauge``, ``LNScaleGauge``, ``ChainedReLURescaleGauge``): the
  parameters are cut into *blocks*; group element ``c`` scales block ``k`` by ``exp((E c)_k)``, where
  ``E`` is the exponent (incidence) matrix. Per-channel specs repeat this independently for every
  channel (slice of a tensor along its channel axis); whole-tensor specs have one channel.

Specs carry tensors; the optimiser keeps only their :class:`Layout` (plain data) in its param groups.
"""
from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np
import torch

from ddgraph.errors import GaugeError


@attrs.frozen
class Layout:
    """Tensor-free description of how a gauge acts on an ordered tuple of parameters.

    Attributes
    ----------
    kind : spec class name (for messages and state-dict checks).
    translation : True for shift gauges, False for multiplicative ones.
    channel_dims : per parameter, the axis its channels run along, or None (whole tensor = 1 channel).
    blocks : per parameter, the index of the block it belongs to (parameters sharing an index are
        normed jointly). Translation layouts have one block.
    exponents : block-by-generator exponent matrix ``E`` (rows: blocks, columns: group generators).
    """

    kind: str
    translation: bool
    channel_dims: tuple
    blocks: tuple
    exponents: tuple

    @property
    def n_blocks(self) -> int:
        return len(self.exponents)

    def bases(self) -> tuple[np.ndarray, np.ndarray]:
        """Orthonormal bases ``(U_orb, U_inv)`` of the orbit space ``col(E)`` and its complement."""
        e = np.asarray(self.exponents, dtype=float)
        u, s, _ = np.linalg.svd(e, full_matrices=True)
        rank = int((s > 1e-10 * s.max()).sum())
        return u[:, :rank], u[:, rank:]


class Gauge:
    """Base class of gauge specs: ``params`` (ordered tensors) and their :class:`Layout`."""

    params: tuple
    layout: Layout

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(p.shape)) for p in self.params)
        return f"{self.layout.kind}({shapes})"


class _Translation(Gauge):
    def __init__(self, param: torch.Tensor, kind: str, ndim: int):
        if param.dim() != ndim:
            raise GaugeError(f"{kind} acts on a {ndim}-d tensor; got shape {tuple(param.shape)}")
        if param.shape[0] < 2:
            raise GaugeError(f"{kind}: a shift over {param.shape[0]} class is the whole parameter")
        self.params = (param,)
        self.layout = Layout(kind, True, (0,), (0,), ((1.0,),))


class CEShiftBias(_Translation):
    """Logit shift on the output bias ``b`` (length C) of a softmax cross-entropy head: ``b + c 1``."""

    def __init__(self, bias: torch.Tensor):
        super().__init__(bias, "CEShiftBias", 1)


class CEShiftRowShift(_Translation):
    """Row shift on the unembedding ``W`` (C x d) of a softmax cross-entropy head: ``W + 1 c^T``."""

    def __init__(self, weight: torch.Tensor):
        super().__init__(weight, "CEShiftRowShift", 2)


class _Multiplicative(Gauge):
    def __init__(self, kind, members, exponents):
        """``members``: sequence of (tensor, channel_dim, block); ``exponents``: rows per block."""
        seen = set()
        for p, _, _ in members:
            if id(p) in seen:
                raise GaugeError(f"{kind}: the same tensor appears twice in the spec")
            seen.add(id(p))
        channels = {p.shape[cd] for p, cd, _ in members if cd is not None}
        if len(channels) > 1:
            raise GaugeError(f"{kind}: channel counts disagree across tensors: {sorted(channels)}")
        self.params = tuple(p for p, _, _ in members)
        self.layout = Layout(kind, False, tuple(cd for _, cd, _ in members),
                             tuple(b for _, _, b in members), tuple(map(tuple, exponents)))


class ReLURescaleGauge(_Multiplicative):
    """ReLU rescaling between two adjacent layers: ``(W_in, b_in, W_out) -> (l W_in, l b_in, W_out / l)``.

    Parameters
    ----------
    w_in, w_out : weights either side of the (positively homogeneous) activation; ``w_in``'s output
        channels run along axis 0, ``w_out``'s input channels along axis 1 (Linear / Conv layout).
    b_in : bias of the first layer, which scales with ``w_in`` (optional).
    per_channel : if True (default) one factor per hidden unit, the full ReLU symmetry ``(R_+)^h``;
        if False one factor for the whole layer pair, the paper's ``R_+`` spec.
    """

    def __init__(self, w_in, w_out, b_in=None, *, per_channel: bool = True):
        cd_in, cd_out = (0, 1) if per_channel else (None, None)
        members = [(w_in, cd_in, 0)] + ([(b_in, cd_in, 0)] if b_in is not None else [])
        members.append((w_out, cd_out, 1))
        if w_in.shape[0] != w_out.shape[1]:
            raise GaugeError(f"ReLURescaleGauge: w_in has {w_in.shape[0]} outputs, "
                             f"w_out reads {w_out.shape[1]} inputs")
        super().__init__("ReLURescaleGauge", members, [[1.0], [-1.0]])


class LNScaleGauge(_Multiplicative):
    """LayerNorm scale per channel: ``(gamma_c, beta_c, W[:, c]) -> (l gamma_c, l beta_c, W[:, c] / l)``.

    Parameters
    ----------
    gamma : the LayerNorm affine weight (length C).
    consumers : the weights reading the normalised output (input channels on axis 1), e.g. Q, K, V.
    beta : the LayerNorm bias, which scales with ``gamma`` (optional).
    """

    def __init__(self, gamma, consumers: Sequence[torch.Tensor], beta=None):
        if not consumers:
            raise GaugeError("LNScaleGauge needs at least one consumer weight")
        members = [(gamma, 0, 0)] + ([(beta, 0, 0)] if beta is not None else [])
        members += [(w, 1, 1) for w in consumers]
        super().__init__("LNScaleGauge", members, [[1.0], [-1.0]])


class ChainedReLURescaleGauge(_Multiplicative):
    """Chained ReLU rescaling on ``W_1, ..., W_L``: factor ``l_i`` maps ``(W_i, W_{i+1})`` to ``(l_i W_i, W_{i+1}/l_i)``.

    One joint spec (adjacent factors share a layer, so pairwise specs would overlap). Inner layers
    must be bias-free (their bias would scale by ``l_i`` while their weight scales by ``l_i/l_{i-1}``);
    the first layer's bias scales with ``W_1`` and may be given as ``b_first``.
    """

    def __init__(self, weights: Sequence[torch.Tensor], b_first=None):
        n = len(weights)
        if n < 2:
            raise GaugeError("ChainedReLURescaleGauge needs at least two weights")
        for i in range(n - 1):
            if weights[i].shape[0] != weights[i + 1].shape[1]:
                raise GaugeError(f"ChainedReLURescaleGauge: layer {i} has {weights[i].shape[0]} outputs,"
                                 f" layer {i + 1} reads {weights[i + 1].shape[1]} inputs")
        members = [(weights[0], None, 0)] + ([(b_first, None, 0)] if b_first is not None else [])
        members += [(w, None, i) for i, w in enumerate(weights[1:], start=1)]
        e = np.zeros((n, n - 1))
        e[np.arange(n - 1), np.arange(n - 1)] = 1.0
        e[np.arange(1, n), np.arange(n - 1)] = -1.0
        super().__init__("ChainedReLURescaleGauge", members, e)


#: The five specs of Algorithm 2's catalogue.
CATALOGUE = (CEShiftBias, CEShiftRowShift, ReLURescaleGauge, LNScaleGauge, ChainedReLURescaleGauge)
