"""Reduced-rank regression: Aoyagi-Watanabe's closed-form RLCT and ddgraph's rate-based reading.

Model ``y = B A x + noise`` with ``A`` (H x N), ``B`` (M x H), isotropic Gaussian inputs (the
population is exact with the design ``sqrt(N) I_N``), truth ``C = B0 A0`` of rank r. The canonical
true parameter puts the teacher in r hidden units and leaves ``H - r`` dead units (zero rows of A,
zero columns of B): the deepest point of the true set.

The rate-based reading (no sampling):

- ``d_nd``: the number of non-degenerate Fisher eigenvalues at the canonical point (its rank:
  the live directions, non-degenerate quadratic, ``r (M + N - r)`` generically);
- with one dead unit (``H - r = 1``) the dead part of the KL is, after absorbing what the live units
  can, ``|P b|^2 |P' a|^2``: a normal crossing of ``{P b = 0}`` (codim ``M - r``) and
  ``{P' a = 0}`` (codim ``N - r``). Theorem 89's protocol reads both KL orders from rates, and
  ``lambda = d_nd / 2 + min_i c_i / (2 k_i)`` (variables separate, so the regular part adds);
- with ``H - r >= 2`` the dead units interact (``|sum_j b_j a_j^T|^2`` is not a normal crossing in
  any coordinates the rates see): **reach exceeded**. ddgraph then reports only the upper bound
  ``min(rank I(theta_a), rank I(theta_b)) / 2`` read at two smooth points of the true set (dead
  rows generic with dead columns zero, and vice versa), since the RLCT is the minimum of the local
  RLCTs over the true set and a smooth point's local RLCT is half its Fisher rank.
"""
from __future__ import annotations

from fractions import Fraction

import attrs
import numpy as np
import torch

from ddgraph.fit import PASS
from ddgraph.slt.crossing import CrossingReading, read_crossing
from ddgraph.slt.families import RegressionFamily
from ddgraph.slt.selection import REACH_EXCEEDED

RANK_TOL = 1e-9

#: (M, N, H, r) settings of the devinterp comparison: in reach (H - r <= 1) and beyond.
COMPARISON_SETTINGS = ((2, 2, 1, 0), (3, 4, 2, 1), (4, 3, 3, 2), (5, 5, 2, 1), (4, 4, 3, 1),
                       (6, 6, 4, 2))
QUICK_COMPARISON_SETTINGS = ((2, 2, 1, 0), (3, 4, 2, 1), (4, 4, 3, 1))


def aoyagi_rlct(M: int, N: int, H: int, r: int) -> tuple[Fraction, int]:
    """Aoyagi & Watanabe (2005): RLCT and multiplicity of reduced-rank regression.

    Parameters
    ----------
    M : output dimension. N : input dimension. H : hidden width. r : true rank (``r <= H``).

    Examples
    --------
    >>> aoyagi_rlct(1, 1, 1, 0)
    (Fraction(1, 2), 2)
    """
    if not 0 <= r <= min(H, M, N):
        raise ValueError(f"need 0 <= r <= min(H, M, N), got r={r} for M={M}, N={N}, H={H}")
    if M + H < N + r:
        return Fraction(H * M - H * r + N * r, 2), 1
    if N + H < M + r:
        return Fraction(H * N - H * r + M * r, 2), 1
    if M + N < H + r:
        return Fraction(M * N, 2), 1
    num = 2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2
    if (M + H + N + r) % 2 == 0:
        return Fraction(num, 8), 1
    return Fraction(num + 1, 8), 2


@attrs.frozen
class RRRProblem:
    """A reduced-rank regression family at its canonical true parameter."""

    M: int
    N: int
    H: int
    r: int
    family: RegressionFamily
    A0: np.ndarray  # (H, N), teacher rows then dead rows
    B0: np.ndarray  # (M, H)

    def embed(self, dA=None, dB=None) -> np.ndarray:
        """A parameter vector ``(vec A, vec B)`` from blocks (zeros where omitted)."""
        dA = np.zeros((self.H, self.N)) if dA is None else dA
        dB = np.zeros((self.M, self.H)) if dB is None else dB
        return np.concatenate([dA.reshape(-1), dB.reshape(-1)])

    def complements(self):
        """Orthonormal bases of the complements of the teacher's row space (N x (N-r)) and
        column space (M x (M-r))."""
        A, B = self.A0[: self.r], self.B0[:, : self.r]
        return _complement(A.T, self.N), _complement(B, self.M)


def _complement(span, dim):
    if span.shape[1] == 0:
        return np.eye(dim)
    Q, _ = np.linalg.qr(span, mode="complete")
    return Q[:, span.shape[1]:]


def rrr_problem(M: int, N: int, H: int, r: int, seed: int = 0) -> RRRProblem:
    """Build the RRR family with a Gaussian teacher of rank r in the first r hidden units."""
    rng = np.random.default_rng(seed)
    A0 = np.zeros((H, N))
    B0 = np.zeros((M, H))
    A0[:r] = rng.standard_normal((r, N)) / np.sqrt(N)
    B0[:, :r] = rng.standard_normal((M, r)) / np.sqrt(max(r, 1))
    nA = H * N

    def mean(theta, X):
        A = theta[:nA].reshape(H, N)
        B = theta[nA:].reshape(M, H)
        return X @ A.T @ B.T

    X = np.sqrt(N) * torch.eye(N, dtype=torch.float64)
    theta0 = np.concatenate([A0.reshape(-1), B0.reshape(-1)])
    return RRRProblem(M, N, H, r, RegressionFamily(mean, X, theta0), A0, B0)


def fisher_rank(family, theta) -> int:
    """Number of Fisher eigenvalues above ``RANK_TOL`` times the largest."""
    w = np.linalg.eigvalsh(family.fisher(theta))
    return int(np.sum(w > RANK_TOL * w[-1]))


@attrs.frozen
class RRRReading:
    """ddgraph's rate-based RLCT reading of one RRR setting."""

    M: int
    N: int
    H: int
    r: int
    d_nd: int
    lam: Fraction | None  # the rate-based RLCT when in reach
    m: int | None
    upper: Fraction | None  # rigorous upper bound when out of reach
    crossing: CrossingReading | None
    verdict: str
    reason: str = ""

    def as_dict(self) -> dict:
        return {"M": self.M, "N": self.N, "H": self.H, "r": self.r, "d_nd": self.d_nd,
                "lambda": None if self.lam is None else str(self.lam), "m": self.m,
                "upper": None if self.upper is None else str(self.upper),
                "verdict": self.verdict, "reason": self.reason,
                "crossing": None if self.crossing is None else self.crossing.as_dict()}


def rrr_rate_rlct(M: int, N: int, H: int, r: int, seed: int = 0, **crossing_kw) -> RRRReading:
    """Read the RLCT of reduced-rank regression from Fisher ranks and rates (module docstring)."""
    P = rrr_problem(M, N, H, r, seed)
    fam, theta0 = P.family, P.family.theta_star
    d_nd = fisher_rank(fam, theta0)
    head = dict(M=M, N=N, H=H, r=r, d_nd=d_nd)
    if H == r:
        return RRRReading(**head, lam=Fraction(d_nd, 2), m=1, upper=None, crossing=None,
                          verdict=PASS, reason="no dead unit: Morse-Bott point, lambda = rank / 2")
    Qa, Qb = P.complements()
    if H - r >= 2:
        rng = np.random.default_rng(seed + 1)
        dA = np.zeros((H, N))
        dA[r:] = rng.standard_normal((H - r, N))
        dB = np.zeros((M, H))
        dB[:, r:] = rng.standard_normal((M, H - r))
        ranks = [fisher_rank(fam, theta0 + P.embed(dA=dA)), fisher_rank(fam, theta0 + P.embed(dB=dB))]
        return RRRReading(**head, lam=None, m=None, upper=Fraction(min(ranks), 2), crossing=None,
                          verdict=REACH_EXCEEDED,
                          reason=f"{H - r} dead units interact: not a normal crossing; "
                                 f"upper bound from smooth-point Fisher ranks {ranks}")
    if Qa.shape[1] == 0 or Qb.shape[1] == 0:
        return RRRReading(**head, lam=Fraction(d_nd, 2), m=1, upper=None, crossing=None,
                          verdict=PASS, reason="the dead unit is absorbed by the live ones")
    na = [P.embed(dA=_row(H, N, Qa[:, i])) for i in range(Qa.shape[1])]
    nb = [P.embed(dB=_col(M, H, Qb[:, i])) for i in range(Qb.shape[1])]
    cr = read_crossing(fam, theta0, [np.array(na), np.array(nb)], **crossing_kw)
    lam = None if cr.lam is None else Fraction(d_nd, 2) + cr.lam
    return RRRReading(**head, lam=lam, m=cr.m, upper=None, crossing=cr, verdict=cr.verdict,
                      reason=cr.reason)


def _row(H, N, v):
    out = np.zeros((H, N))
    out[-1] = v
    return out


def _col(M, H, v):
    out = np.zeros((M, H))
    out[:, -1] = v
    return out


def dead_unit_direction(P: RRRProblem, seed: int = 0) -> np.ndarray:
    """The Table 8 approach: the last dead unit's row and column along the complements together."""
    rng = np.random.default_rng(seed)
    Qa, Qb = P.complements()
    u = Qa @ rng.standard_normal(Qa.shape[1])
    v = Qb @ rng.standard_normal(Qb.shape[1])
    d = P.embed(dA=_row(P.H, P.N, u / np.linalg.norm(u)), dB=_col(P.M, P.H, v / np.linalg.norm(v)))
    return d / np.linalg.norm(d)
