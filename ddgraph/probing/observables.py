"""Observables read off a K-FAC factor (or an activation moment) for one dead class."""
from __future__ import annotations

import torch

NAMES = ("dd", "schur", "lmin", "lmax")


def from_matrix(m: torch.Tensor, dead: list[int], all_dead: set[int]) -> dict[str, float]:
    """Dead-block trace, Schur complement against the active bulk, active lambda_min and lambda_max.

    Parameters
    ----------
    m : a symmetric positive semi-definite matrix (fp64), or a 1-D diagonal.
    dead : the indices of this class's dead coordinates.
    all_dead : indices of every dead class (excluded from the bulk the Schur complement uses).
    """
    if not bool(torch.isfinite(m).all()):
        return dict.fromkeys(NAMES, float("nan"))  # the fit turns NaN into an 'unfittable' verdict
    if m.dim() == 1:
        diag = m
        active = diag > 0
        dd = float(diag[dead].sum()) if dead else float("nan")
        lmin = float(diag[active].min()) if active.any() else 0.0
        return {"dd": dd, "schur": dd, "lmin": lmin, "lmax": float(diag.max())}
    diag = torch.diagonal(m)
    positive = diag > 0
    active = torch.nonzero(positive).flatten()
    evals = torch.linalg.eigvalsh(m[active[:, None], active]) if active.numel() else torch.zeros(1)
    out = {"lmin": float(evals[0]), "lmax": float(evals[-1])}
    if not dead:
        return {**out, "dd": float("nan"), "schur": float("nan")}
    d = torch.tensor(dead)
    out["dd"] = float(diag[d].sum())
    positive[list(all_dead)] = False
    bulk = torch.nonzero(positive).flatten()  # active coordinates of no dead class
    block = m[d[:, None], d]
    if bulk.numel():
        cross = m[d[:, None], bulk]
        inner = m[bulk[:, None], bulk]
        chol, info = torch.linalg.cholesky_ex(inner)
        sol = torch.cholesky_solve(cross.T, chol) if int(info) == 0 else torch.linalg.lstsq(inner, cross.T).solution
        block = block - cross @ sol
    out["schur"] = float(torch.linalg.eigvalsh((block + block.T) / 2)[0])
    return out


def bottom_overlap(m: torch.Tensor, dead: list[int]) -> float:
    """Norm of the bottom eigenvector's component on the dead coordinates (1: it is the dead one)."""
    if m.dim() == 1 or not dead or not bool(torch.isfinite(m).all()):
        return float("nan")
    diag = torch.diagonal(m)
    active = torch.nonzero(diag > 0).flatten()
    if not active.numel():
        return float("nan")
    _, vecs = torch.linalg.eigh(m[active][:, active])
    v = torch.zeros(m.shape[0], dtype=m.dtype)
    v[active] = vecs[:, 0]
    return float(v[torch.tensor(dead)].norm())


def kernel_check(cov: torch.Tensor, direction: torch.Tensor) -> dict[str, float]:
    """lambda_min / trace of a covariance and the |cosine| of its bottom eigenvector with ``direction``."""
    evals, vecs = torch.linalg.eigh(cov)
    u = direction / direction.norm()
    return {"ratio": float(evals[0] / evals.sum()), "cosine": float((vecs[:, 0] @ u).abs())}
