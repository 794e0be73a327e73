"""Symmetric-matrix kernels of the probe: Gram sums accumulated one triangle at a time, and the ends of a
spectrum without its eigenvectors.

torch has no rank-k update (``syrk``: half the flops of ``rows.T @ rows``), and its ``eigh`` returns every
eigenvector where the probe needs the extreme eigenvalues or one bottom eigenvector. On the CPU in fp64
these go through scipy's BLAS and LAPACK (``dsyrk``, ``dsyevr``), on as many threads as torch uses (scipy's
OpenBLAS keeps a pool of its own; threadpoolctl sets it per call); other devices and dtypes use torch (the
same numbers to rounding, slower).
"""
from __future__ import annotations

import functools

import torch


@functools.cache
def _scipy():
    """scipy's ``(blas, lapack)``, imported on first use (``import ddgraph`` stays light)."""
    from scipy.linalg import blas, lapack

    return blas, lapack


@functools.cache
def _threadpools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _torch_threads():
    """scipy's BLAS limited to torch's thread count for the call it wraps."""
    return _threadpools().limit(limits=torch.get_num_threads(), user_api="blas")


def _native(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype == torch.float64 and not t.is_conj() and not t.is_neg()


def add_gram(total: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """``total + rows^T rows`` (``total`` updated in place; ``None``: a new sum).

    Only the upper triangle is certain to hold the sum: call :func:`mirror` once the accumulation is over.
    """
    rows = rows.detach()
    if total is None:
        total = rows.new_zeros(rows.shape[1], rows.shape[1])
    if _native(rows) and total.is_contiguous():
        # total's row-major upper triangle is the column-major lower triangle of the same memory
        with _torch_threads():
            out = _scipy()[0].dsyrk(1.0, rows.contiguous().numpy().T, beta=1.0, c=total.numpy().T, trans=0,
                                    lower=1, overwrite_c=1)
        if out.ctypes.data != total.data_ptr():  # scipy copied instead of writing in place
            total.copy_(torch.from_numpy(out.T))
    else:
        total.addmm_(rows.T, rows)
    return total


def mirror(total: torch.Tensor) -> torch.Tensor:
    """Copy the upper triangle of a Gram sum from :func:`add_gram` onto its lower one, in place."""
    strict = total.triu(1)
    return total.triu_().add_(strict.T)


def eigenvalues(m: torch.Tensor) -> torch.Tensor:
    """Every eigenvalue of a symmetric matrix, ascending (no eigenvectors)."""
    if _native(m):
        with _torch_threads():
            w, _, found, _, info = _scipy()[1].dsyevr(m.contiguous().numpy(), compute_v=0, range="A")
        if info == 0 and found == m.shape[0]:
            return torch.from_numpy(w[:found])
    return torch.linalg.eigvalsh(m)


def bottom_eigenvector(m: torch.Tensor) -> torch.Tensor:
    """The eigenvector of the smallest eigenvalue of a symmetric matrix (sign arbitrary)."""
    if _native(m):
        with _torch_threads():
            _, z, found, _, info = _scipy()[1].dsyevr(m.contiguous().numpy(), compute_v=1, range="I", il=1, iu=1)
        if info == 0 and found == 1:
            return torch.from_numpy(z[:, 0].copy())
    return torch.linalg.eigh(m)[1][:, 0]
