"""The noise-free MSE residual ``f_t(x) - f_0(x)`` without cancellation (THEORY §7.2).

``f_t`` and ``f_0`` are of order 1 while their difference can be of order ``t**6`` or less: the
difference of two fp64 outputs keeps nothing of it below about ``1e-16 |f|``. Where it keeps fewer
than 26 bits, the residual is instead integrated along the approach itself,

    f_t - f_0 = int_0^1 d/dv f(theta(v t)) dv,

with ``theta(s)`` the canonical parameters at ``s`` (the entries that move with ``t`` are ``s**a``).
Each derivative is a Jacobian-vector product in forward mode: the tangent carries the perturbation
at its own scale through every op, so no two numbers of order 1 are subtracted. ``v`` runs over
``n`` Gauss-Legendre nodes on [0, 1]. A term ``c t**a`` of the residual is ``c t**a v**a`` along
the path, and the quadrature returns it as ``c t**a q_a`` with ``q_a = 1`` for ``a <= 2n`` and a
fixed positive factor beyond (above 0.92 up to ``a = 18`` with ``n = 4``): every order of the residual, and so
every rate read from it, is exact whatever ``n``.

Two checks keep this honest. An op without a forward-mode derivative makes the residual fall back to
the fp64 difference, with a note naming the op. And the first integral of the sweep must agree with
the direct difference to within that difference's rounding error and the quadrature's factor;
otherwise the probe falls back too and says so.
"""
from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import torch
from torch.autograd import forward_ad
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from ddgraph.probing.canonical import Canonical

NODES = 4  # Gauss-Legendre nodes: exact for every term of order up to 8 in t
_BITS = 2.0 ** -26  # the direct difference is used where it keeps at least 26 bits
_ROUNDING = 64 * torch.finfo(torch.float64).eps  # the direct difference's error, relative to |f|
_AGREE = 0.1  # the integral against the direct difference: a term of order up to 18 reads > 0.92 of itself


class ExactResidual:
    """``f_t(x) - f_0(x)`` for the canonical copy ``canon`` at its current ``t`` (see the module).

    ``output`` picks the output tensor from what the model returns.
    """

    def __init__(self, canon: Canonical, output, nodes: int = NODES):
        self.canon, self.output = canon, output
        v, w = np.polynomial.legendre.leggauss(nodes)
        self.nodes = [(float((x + 1) / 2), float(h / 2)) for x, h in zip(v, w)]
        self.params = dict(canon.gm.named_parameters())
        by_id = {id(p): name for name, p in self.params.items()}
        self.moving = [(by_id[id(canon.gm.get_parameter(e.param))], e) for e in canon.moving
                       if not math.isinf(e.exponent)]
        self.notes: list[str] = []
        self.exact = True
        self.checked = False
        self.t = math.nan

    def set_t(self, t: float) -> None:
        """Follow the copy to ``t`` (after :meth:`Canonical.set_t`)."""
        self.t = t

    def __call__(self, inputs, f: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        """The residual for one chunk: ``inputs`` and the outputs ``f`` (at ``t``) and ``f0`` (at 0)."""
        direct = f - f0
        if not self.exact or not self.moving or bool((direct.abs() >= _BITS * f0.abs()).all()):
            return direct
        try:
            integral = self._integral([x.detach() for x in inputs])
        except (RuntimeError, NotImplementedError) as err:
            self._fall_back(f"an op has no forward-mode derivative ({_first_line(err)})")
            return direct
        if not self.checked:
            self.checked = True
            gap = float((integral - direct).norm())
            allowed = _ROUNDING * float(f0.norm()) + _AGREE * float(direct.norm())
            if not gap <= allowed:
                self._fall_back(f"the path integral disagrees with the direct difference at t = {self.t:g} "
                                f"(|gap| {gap:.3g} > {allowed:.3g})")
                return direct
        return integral

    def _point(self, v: float) -> dict:
        """Parameters at ``s = v t`` as dual tensors whose tangent is ``d theta(v t) / dv``."""
        values = {name: p.detach() for name, p in self.params.items()}
        tangents: dict[str, torch.Tensor] = {}
        s = v * self.t
        for name, e in self.moving:
            if name not in tangents:
                values[name] = values[name].clone()
                tangents[name] = torch.zeros_like(values[name])
            values[name].view(-1)[e.index] = s ** e.exponent
            tangents[name].view(-1)[e.index] = e.exponent * s ** e.exponent / v
        return {name: forward_ad.make_dual(p, tangents[name]) if name in tangents else p
                for name, p in values.items()}

    def _integral(self, inputs) -> torch.Tensor:
        total = None
        # sdpa's fused CPU kernels have no forward-mode derivative; its math form (matmul, softmax) has.
        # A failing call of a GraphModule prints its code to stderr: the note says what failed instead.
        with forward_ad.dual_level(), sdpa_kernel(SDPBackend.MATH), contextlib.redirect_stderr(io.StringIO()):
            for v, weight in self.nodes:
                out = self.output(functional_call(self.canon.gm, self._point(v), tuple(inputs)))
                primal, tangent = forward_ad.unpack_dual(out)
                if tangent is None:  # no moving entry reaches the output
                    tangent = torch.zeros_like(primal)
                total = weight * tangent if total is None else total + weight * tangent
        return total

    def _fall_back(self, why: str) -> None:
        self.exact = False
        self.notes.append(f"noise-free residual: {why}; it is the fp64 difference f_t - f_0 instead, which "
                          "keeps nothing below about 1e-16 |f| (G rates that need a smaller residual read high "
                          "or not-asymptotic)")


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
