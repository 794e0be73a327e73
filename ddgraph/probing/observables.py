"""Observables read off a K-FAC factor (or an activation moment) for one dead class."""
from __future__ import annotations

from typing import NamedTuple

import torch

from ddgraph.probing.fit import FP64_FLOOR
from ddgraph.probing.symmetric import Cholesky, Ends, bottom_eigenvector, ends

NAMES = ("dd", "schur", "lmin", "lmax")


def _memo(memo: dict | None, key, make):
    """``memo[key]``, made on first use; no memo: made every time."""
    if memo is None:
        return make()
    if key not in memo:
        memo[key] = make()
    return memo[key]


def from_matrix(m: torch.Tensor, dead: list[int], all_dead: set[int], memo: dict | None = None) -> dict[str, float]:
    """Dead-block trace, Schur complement against the active bulk, active lambda_min and lambda_max.

    Parameters
    ----------
    m : a symmetric positive semi-definite matrix (fp64), or a 1-D diagonal.
    dead : the indices of this class's dead coordinates.
    all_dead : indices of every dead class (excluded from the bulk the Schur complement uses).
    memo : a dict the caller keeps for ``m`` across calls: what does not depend on ``dead`` (the active
        spectrum, the Cholesky factorisation) is computed once per matrix, not once per class.
    """
    if not _memo(memo, "finite", lambda: _finite(m)):
        return dict.fromkeys(NAMES, float("nan"))  # the fit turns NaN into an 'unfittable' verdict
    if m.dim() == 1:
        diag = m
        active = diag > 0
        dd = float(diag[dead].sum()) if dead else float("nan")
        lmin = float(diag[active].min()) if active.any() else 0.0
        return {"dd": dd, "schur": dd, "lmin": lmin, "lmax": float(diag.max())}
    diag = torch.diagonal(m)
    factored = _memo(memo, ("factored", frozenset(all_dead)), lambda: _factored(m, all_dead))
    spectrum = _memo(memo, "spectrum", lambda: _spectrum(m, factored))
    out = {"lmin": spectrum.lmin, "lmax": spectrum.lmax}
    if not dead:
        return {**out, "dd": float("nan"), "schur": float("nan")}
    d = torch.tensor(dead, device=m.device)
    out["dd"] = float(diag[d].sum())
    block = m[d[:, None], d]
    if factored.n_bulk:
        cross = m.index_select(0, d).index_select(1, factored.order[:factored.n_bulk])
        solve = factored.chol.solver(factored.n_bulk)
        sol = solve(cross.T) if solve is not None else \
            torch.linalg.lstsq(factored.block[:factored.n_bulk, :factored.n_bulk], cross.T).solution
        block = block - cross @ sol
    out["schur"] = float(torch.linalg.eigvalsh((block + block.T) / 2)[0])
    return out


def _finite(m: torch.Tensor) -> bool:
    """Whether every entry is finite: one sum settles the usual case (a NaN or inf entry makes it
    non-finite); only a non-finite sum, which finite entries can also reach by overflow, looks at every entry."""
    return bool(torch.isfinite(m.sum())) or bool(torch.isfinite(m).all())


def _block(m: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The principal block of ``m`` on ``idx``, in that order (``m`` itself when that is every coordinate in
    order; a gather, not advanced indexing, which copies far slower)."""
    if idx.numel() == m.shape[0] and bool((idx[1:] > idx[:-1]).all()):
        return m
    return m.index_select(0, idx).index_select(1, idx)


def _active(m: torch.Tensor) -> torch.Tensor:
    """The coordinates with a positive diagonal."""
    return torch.nonzero(torch.diagonal(m) > 0).flatten()


class _Factored(NamedTuple):
    """A matrix's active block, ordered bulk first (the active coordinates of no dead class) and then the active
    dead coordinates, and its Cholesky factorisation: the bulk's factor is its leading block, so one
    factorisation serves the Schur complements and lambda_min."""

    order: torch.Tensor
    n_bulk: int
    block: torch.Tensor
    chol: Cholesky | None  # None: nothing is active


def _factored(m: torch.Tensor, all_dead: set[int]) -> _Factored:
    active = _active(m)
    is_dead = torch.zeros(m.shape[0], dtype=torch.bool, device=m.device)
    is_dead[list(all_dead)] = True
    in_bulk = ~is_dead[active]
    order = torch.cat([active[in_bulk], active[~in_bulk]])
    block = _block(m, order)
    return _Factored(order, int(in_bulk.sum()), block, Cholesky(block) if order.numel() else None)


def _spectrum(m: torch.Tensor, factored: _Factored) -> Ends:
    """The ends of the spectrum on the active coordinates (zeros: nothing is active), the bottom eigenvector
    (when found) in ``m``'s coordinates."""
    if not factored.order.numel():
        return Ends(0.0, 0.0)
    found = ends(factored.block, factored.chol)
    if found.bottom is None:
        return found
    bottom = m.new_zeros(m.shape[0])
    bottom[factored.order] = found.bottom.to(m.device, m.dtype)
    return found._replace(bottom=bottom)


def bottom_overlap(m: torch.Tensor, dead: list[int], memo: dict | None = None) -> float:
    """Norm of the bottom eigenvector's component on the dead coordinates (1: it is the dead one);
    ``memo`` as in :func:`from_matrix` (the eigenvector is computed once per matrix)."""
    if m.dim() == 1 or not dead or not _memo(memo, "finite", lambda: _finite(m)):
        return float("nan")
    v = _memo(memo, "bottom", lambda: _bottom_vector(m, _memo(
        memo, "spectrum", lambda: _spectrum(m, _factored(m, set())))))
    return float("nan") if v is None else float(v[torch.tensor(dead, device=v.device)].norm())


def _bottom_vector(m: torch.Tensor, spectrum: Ends) -> torch.Tensor | None:
    """The bottom eigenvector on the active coordinates, zero elsewhere (None: nothing is active); taken
    from ``spectrum`` when it holds it."""
    if spectrum.bottom is not None:
        return spectrum.bottom
    active = _active(m)
    if not active.numel():
        return None
    v = m.new_zeros(m.shape[0])
    v[active] = bottom_eigenvector(_block(m, active)).to(v.device)
    return v


def root_kernel(root: torch.Tensor):
    """``(eigenvalues, eigenvectors, kernel mask)`` of a stream root's second moment, the kernel being the
    eigenvalues at or below ``FP64_FLOOR`` of the largest; None when it has no kernel, or is all kernel
    (or not finite)."""
    if not bool(torch.isfinite(root).all()):
        return None
    evals, vecs = torch.linalg.eigh(root)
    kernel = evals <= FP64_FLOOR * evals[-1]
    return None if not bool(kernel.any()) or bool(kernel.all()) else (evals, vecs, kernel)


def stream_bottom(m: torch.Tensor, root: torch.Tensor, branches: torch.Tensor) -> float | None:
    """sigma_min^2 of a residual stream ``X = R + B`` (``R`` the tensor its skips start from, ``B`` the sum
    of its branches) where its root has an exact kernel; None where it has none.

    ``m``, ``root`` and ``branches`` are the second moments of ``X``, ``R`` and ``B``. The root's kernel
    ``K`` (eigenvalues at or below ``FP64_FLOOR`` of its largest: a LayerNorm's, or a map onto more
    channels than it reads) is filled only by the branches; when they are small (a layer scale of 1e-6)
    the stream's bottom eigenvalues sit there, under what an eigensolver resolves against the bulk of
    ``m``. So the stream's moment is written in the root's eigenbasis, its ``K`` block is read from the
    branches' own small moment (``K^T R`` is zero), and sigma_min^2 is the smallest eigenvalue of the
    Schur complement of that block against the rest, as for a stream's deepest dead channels, or the
    rest's own smallest eigenvalue if that is less (THEORY §5.3).
    """
    if not all(bool(torch.isfinite(x).all()) for x in (m, root, branches)):
        return float("nan")
    found = root_kernel(root)
    if found is None:
        return None
    evals, vecs, kernel = found
    k = int(kernel.sum())
    basis = torch.cat([vecs[:, ~kernel], vecs[:, kernel]], 1)
    rotated = basis.T @ m @ basis
    rotated[-k:, -k:] = vecs[:, kernel].T @ branches @ vecs[:, kernel]
    rotated = (rotated + rotated.T) / 2  # symmetric to the last bit (the spectrum's ends read all of it)
    a = len(evals) - k
    dead = list(range(a, len(evals)))
    # the rest may hold a smaller scale of its own (a direction vanishing with t): the bottom is the lesser
    rest = float(torch.linalg.eigvalsh(rotated[:a, :a])[0])
    return min(from_matrix(rotated, dead, set(dead))["schur"], rest)


#: A covariance's quadratic form below this fraction of its trace reads as an exact zero (fp64 rounding).
LN_RATIO_MAX = 1e-10


def kernel_check(cov: torch.Tensor, direction: torch.Tensor) -> dict[str, float]:
    """What the normaliser kernel checks read off a covariance: ``ratio``, lambda_min / trace;
    ``rayleigh``, the Rayleigh quotient of ``direction`` over the trace (at the floor exactly when the
    direction lies in the kernel, whatever the kernel's dimension); ``cosine``, the |cosine| of the bottom
    eigenvector with ``direction`` (1 when the kernel is that direction alone)."""
    evals, vecs = torch.linalg.eigh(cov)
    u = direction.to(vecs.device) / direction.norm()
    trace = evals.sum()
    return {"ratio": float(evals[0] / trace), "rayleigh": float(u @ cov @ u / trace),
            "cosine": float((vecs[:, 0] @ u).abs())}


def holds_kernel(rayleigh: float) -> bool:
    """The claim of an exact kernel along the predicted direction (Prop 63), from its Rayleigh quotient."""
    return abs(rayleigh) < LN_RATIO_MAX
