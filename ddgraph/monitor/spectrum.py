"""What the monitor reads off one symmetric moment matrix: bottom spectrum, conditioning, continuity."""
from __future__ import annotations

import math

import attrs
import torch

from ddgraph.probing.fit import FP64_FLOOR


@attrs.frozen
class Spectrum:
    """Eigen-summary of a positive semi-definite matrix (a K-FAC factor or an activation Gram).

    ``active`` eigenvalues are those above ``FP64_FLOOR * lambda_max`` (the selection rule's floor);
    the rest (gauge zeros, rank deficiency) are counted in ``n_floor`` and kept out of the conditioning.
    """

    evals: torch.Tensor  # ascending, fp64
    bottom_vecs: torch.Tensor  # (dim, k) eigenvectors of the k smallest active eigenvalues

    @property
    def lambda_max(self) -> float:
        return float(self.evals[-1])

    @property
    def active(self) -> torch.Tensor:
        return self.evals[self.evals > FP64_FLOOR * max(self.lambda_max, 0.0)]

    @property
    def lambda_min(self) -> float:
        """Smallest active eigenvalue (0 for a zero matrix)."""
        a = self.active
        return float(a[0]) if a.numel() else 0.0

    @property
    def n_floor(self) -> int:
        return int(self.evals.numel() - self.active.numel())

    @property
    def condition(self) -> float:
        """lambda_max / smallest active eigenvalue (inf for a zero matrix)."""
        return self.lambda_max / self.lambda_min if self.lambda_min > 0 else math.inf

    @property
    def anisotropy(self) -> float:
        """lambda_max over the median active eigenvalue: how far one direction stands out of the bulk
        (1 for an isotropic matrix; scale-free, and insensitive to the gauge zeros the floor removes)."""
        a = self.active
        return self.lambda_max / float(a.median()) if a.numel() else math.nan

    def bottom(self, k: int) -> list[float]:
        """The ``k`` smallest eigenvalues over lambda_max, floor ranks included (NaN-padded)."""
        scale = self.lambda_max if self.lambda_max > 0 else math.nan
        vals = [float(v) / scale for v in self.evals[:k]]
        return vals + [math.nan] * (k - len(vals))

    def continuity(self, previous: "Spectrum | None") -> float:
        """Mean squared cosine between this reading's bottom active eigenvectors and the previous
        reading's (1: the same subspace; NaN when there is no comparable previous reading)."""
        if previous is None or previous.bottom_vecs.shape != self.bottom_vecs.shape or not self.bottom_vecs.numel():
            return math.nan
        overlap = previous.bottom_vecs.T @ self.bottom_vecs
        return float((overlap**2).sum() / self.bottom_vecs.shape[1])


def spectrum(m: torch.Tensor, k: int) -> Spectrum:
    """Decompose the symmetric matrix ``m`` (any float dtype; read in fp64)."""
    m = m.detach().to(torch.float64)
    evals, vecs = torch.linalg.eigh((m + m.T) / 2)
    keep = torch.nonzero(evals > FP64_FLOOR * max(float(evals[-1]), 0.0)).flatten()[:k]
    return Spectrum(evals, vecs[:, keep])


def as_rows(x: torch.Tensor, max_rows: int) -> torch.Tensor:
    """A tensor's rows (samples x positions along every axis but the last), at most ``max_rows`` evenly
    spaced ones, detached in fp64."""
    rows = x.detach().reshape(-1, x.shape[-1])
    if rows.shape[0] > max_rows:
        rows = rows[torch.linspace(0, rows.shape[0] - 1, max_rows).long()]
    return rows.to(torch.float64)
