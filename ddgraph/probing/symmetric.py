"""Symmetric-matrix kernels of the probe: Gram sums accumulated one triangle at a time, and the two ends of a
spectrum.

torch has no rank-k update (``syrk``: half the flops of ``rows.T @ rows``), so Gram sums are made of row
blocks from the diagonal rightwards, in torch's own thread pool. torch's ``eigh`` returns every eigenvector
where the probe needs the extreme eigenvalues and one bottom eigenvector, so on the CPU in fp64 the
spectra go through scipy's LAPACK (``dsyevr``, ``dpotrf``) on one thread (threadpoolctl sets scipy's own
pool per call); other devices and dtypes use torch (the same numbers to rounding, slower).

The ends of a large spectrum come from Krylov iterations, not a full tridiagonal reduction (about
``4/3 n^3`` flops, half of them matrix-vector products that do not scale with threads): lambda_max by
Lanczos on ``M``, lambda_min and its eigenvector by Lanczos on ``M^-1`` applied through a Cholesky factor
(``n^3/3`` flops, matrix-matrix). Both iterations stop on the Ritz residual; where the factor does not
exist (``M`` singular to working precision) or an iteration has not converged, the full spectrum is taken.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch


@functools.cache
def _lapack():
    """scipy's LAPACK, imported on first use (``import ddgraph`` stays light)."""
    from scipy.linalg import lapack

    return lapack


@functools.cache
def _threadpools():
    """The thread pools loaded once scipy's BLAS is (a controller made before sees none of scipy's)."""
    from threadpoolctl import ThreadpoolController

    _lapack()
    return ThreadpoolController()


def _one_blas_thread():
    """scipy's BLAS on one thread for the call it wraps. Its pool and torch's OpenMP pool would otherwise
    contend for the same cores, each one's idle threads spinning while the other's work: with two threads
    each, a ``dsyrk`` between torch products ran 3.5 times slower than alone."""
    return _threadpools().limit(limits=1, user_api="blas")


def _native(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype == torch.float64 and not t.is_conj() and not t.is_neg()


#: Row blocks of a Gram sum on the CPU (see :func:`add_gram`).
GRAM_BLOCKS = 8


def add_gram(total: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """``total + rows^T rows`` (``total`` updated in place; ``None``: a new sum).

    Only the upper triangle is certain to hold the sum: call :func:`mirror` once the accumulation is over.
    On the CPU by torch's matrix products over row blocks from the diagonal rightwards
    (``(1 + 1/GRAM_BLOCKS) n^2 k`` flops against a full product's ``2 n^2 k``), in torch's own thread pool
    (scipy's ``dsyrk`` takes ``n^2 k``, but its pool and torch's contend for the cores); on other devices by
    one product.
    """
    rows = rows.detach()
    if total is None:
        total = rows.new_zeros(rows.shape[1], rows.shape[1])
    if total.device.type != "cpu":
        return total.addmm_(rows.T, rows)
    edges = [round(i * total.shape[0] / GRAM_BLOCKS) for i in range(GRAM_BLOCKS + 1)]
    for lo, hi in zip(edges, edges[1:]):
        if hi > lo:
            total[lo:hi, lo:].addmm_(rows[:, lo:hi].T, rows[:, lo:])
    return total


def mirror(total: torch.Tensor) -> torch.Tensor:
    """Copy the upper triangle of a Gram sum from :func:`add_gram` onto its lower one, in place."""
    strict = total.triu(1)
    return total.triu_().add_(strict.T)


def eigenvalues(m: torch.Tensor) -> torch.Tensor:
    """Every eigenvalue of a symmetric matrix, ascending (no eigenvectors)."""
    if _native(m):
        with _one_blas_thread():
            w, _, found, _, info = _lapack().dsyevr(m.contiguous().numpy(), compute_v=0, range="A")
        if info == 0 and found == m.shape[0]:
            return torch.from_numpy(w[:found])
    return torch.linalg.eigvalsh(m)


#: Below this size a full spectrum costs less than Krylov iterations (whose steps pay Python overhead).
KRYLOV_MIN = 384
#: A Ritz value is converged when its residual is this fraction of it: its eigenvalue is then within that
#: fraction (within its square over the relative gap), the fp64 agreement of two dense eigensolvers.
RITZ_TOL = 1e-10
#: Lanczos steps before giving up for the full spectrum (on ``M``, on ``M^-1``).
MAX_STEPS = (160, 80)


class Ends(NamedTuple):
    """The two ends of a symmetric matrix's spectrum; ``bottom`` is lambda_min's eigenvector where the way
    they were found gave it (None otherwise)."""

    lmin: float
    lmax: float
    bottom: torch.Tensor | None = None


def ends(m: torch.Tensor, chol: Cholesky | None = None) -> Ends:
    """lambda_min and lambda_max of a symmetric matrix (and lambda_min's eigenvector when found on the way);
    ``chol``: ``m``'s Cholesky factorisation when the caller has it."""
    if _native(m) and m.shape[0] >= KRYLOV_MIN:
        found = _krylov_ends(m.contiguous(), chol)
        if found is not None:
            return found
    w = eigenvalues(m)
    return Ends(float(w[0]), float(w[-1]))


def _krylov_ends(m: torch.Tensor, chol: Cholesky | None) -> Ends | None:
    """:func:`ends` by Lanczos on ``M`` and on ``M^-1`` (None: ``M`` is not positive definite to working
    precision, or an iteration did not converge)."""
    top = _lanczos_top(lambda v: m @ v, m.shape[0], MAX_STEPS[0])
    if top is None:
        return None
    solve = (chol if chol is not None else Cholesky(m)).solver()
    inverse = _lanczos_top(solve, m.shape[0], MAX_STEPS[1]) if solve is not None else None
    if inverse is None or not inverse[0] > 0:
        return None
    return Ends(1.0 / inverse[0], top[0], inverse[1])


class Cholesky:
    """The Cholesky factorisation of a symmetric matrix, as far as it goes: ``complete`` where the matrix is
    positive definite to working precision, else the order of its largest leading block that is (LAPACK's
    ``info - 1``), whose solves are still available."""

    def __init__(self, m: torch.Tensor):
        self._m, self._native = m, _native(m)
        if self._native:
            with _one_blas_thread():
                # m is symmetric: its row-major memory read column-major is m itself (no copy to Fortran order)
                self._factor, info = _lapack().dpotrf(m.contiguous().numpy().T, lower=0, clean=0)
        else:
            self._factor, info = torch.linalg.cholesky_ex(m)
            info = int(info)
        self.leading = m.shape[0] if info == 0 else max(int(info) - 1, 0)

    @property
    def complete(self) -> bool:
        return self.leading == self._m.shape[0]

    def solver(self, k: int | None = None):
        """``b -> B^-1 b`` with ``B`` the leading ``k``-block (default: the whole matrix), ``b`` a vector or a
        matrix of columns; None when that block is not positive definite to working precision."""
        k = self._m.shape[0] if k is None else k
        if k > self.leading or k == 0:
            return None
        if not self._native:
            if k == self._m.shape[0]:
                chol = self._factor
            else:
                chol, info = torch.linalg.cholesky_ex(self._m[:k, :k])
                if int(info):
                    return None
            return lambda b: torch.cholesky_solve(b.reshape(b.shape[0], -1), chol).reshape(b.shape)
        factor = self._factor if k == self._m.shape[0] else self._factor[:k, :k]
        dpotrs = _lapack().dpotrs

        def solve(b: torch.Tensor) -> torch.Tensor:
            with _one_blas_thread():
                x, _ = dpotrs(factor, b.numpy(), lower=0)
            return torch.from_numpy(x)

        return solve


def _lanczos_top(op, n: int, steps: int) -> tuple[float, torch.Tensor] | None:
    """The largest eigenvalue of the symmetric operator ``op`` on fp64 ``n``-vectors and its Ritz vector, by
    Lanczos with full reorthogonalisation from a fixed start (None: not converged in ``steps``)."""
    from scipy.linalg import eigh_tridiagonal

    steps = min(steps, n)
    basis = torch.empty(steps + 1, n, dtype=torch.float64)
    start = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    basis[0] = start / start.norm()
    alpha, beta, scale = [], [], 0.0
    for k in range(steps):
        w = op(basis[k])
        alpha.append(float(w @ basis[k]))
        scale = max(scale, abs(alpha[-1]))
        done = basis[:k + 1]
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            w -= done.T @ (done @ w)
        b = float(w.norm())
        invariant = b <= 1e-14 * scale
        if invariant or (k + 1) % 4 == 0 or k + 1 == steps:
            theta, s = eigh_tridiagonal(np.array(alpha), np.array(beta), select="i", select_range=(k, k))
            if invariant or b * abs(s[-1, 0]) <= RITZ_TOL * abs(theta[0]):
                return float(theta[0]), done.T @ torch.from_numpy(s[:, 0])
        beta.append(b)
        basis[k + 1] = w / b
    return None


def bottom_eigenvector(m: torch.Tensor) -> torch.Tensor:
    """The eigenvector of the smallest eigenvalue of a symmetric matrix (sign arbitrary)."""
    if _native(m):
        with _one_blas_thread():
            _, z, found, _, info = _lapack().dsyevr(m.contiguous().numpy(), compute_v=1, range="I", il=1, iu=1)
        if info == 0 and found == 1:
            return torch.from_numpy(z[:, 0].copy())
    return torch.linalg.eigh(m)[1][:, 0]
