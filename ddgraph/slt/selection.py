"""The selection rule (Theorem 3, operational version paper §5.1) on a measured eigenvalue spectrum.

Entry point for any caller, including the graph probe on K-FAC spectra::

    select_transversal(ts, spectra, *, k=None, target=None, tol=0.05, floor=1e-12,
                       eigvecs=None, normal_basis=None) -> Selection

``ts`` is the t-grid (length T); ``spectra`` is one eigenvalue array per t (all of the same length
R; each is sorted ascending, so "rank" means position in the sorted spectrum, and pairing across t
is by rank). The rule:

1. fits a log-log slope to every rank with :func:`ddgraph.probing.fit.fit_rate` (reference scale: the
   largest eigenvalue at each t);
2. excludes floor-trapped ranks (at the numerical floor relative to that scale) and ranks whose
   fit is not asymptotic or unfittable;
3. classifies the rest: ``growing`` (slope < -tol), ``non-degenerate`` (|slope| <= tol) or
   ``decaying``; with ``eigvecs`` (T arrays of shape ``(dim, R)``, columns matching ``spectra``) and
   the ``normal_basis`` of the singular fibre (``(dim, c)``), a rank whose eigenvector at the smallest
   t lies mostly in the tangent space is ``tangential`` and cannot be selected;
4. picks as transversal the admissible rank whose slope is closest to the target (``2k - 2`` when
   ``k`` is given, or ``target`` for an arbitrary predicted rate such as a K-FAC ladder entry),
   provided it is within ``tol``; otherwise the verdict is ``reach-exceeded``. With no prediction,
   the steepest admissible decaying rank is taken and ``k = (slope + 2) / 2`` must be an integer
   within tolerance.

The transversal rate gives the KL order ``k`` and the single-direction RLCT contribution
``1 / (2k)``; with a normal basis, ``local_rlct`` adds half the count of non-degenerate normal ranks
(Theorem 3 (c)).
"""
from __future__ import annotations

import attrs
import numpy as np

from ddgraph.probing.fit import FIT_OK, FP64_FLOOR, PASS, Fit, fit_rate

#: Selection verdicts (besides ``pass``).
REACH_EXCEEDED = "reach-exceeded"

GROWING, NON_DEGENERATE, DECAYING, TANGENTIAL_RANK, TRANSVERSAL = (
    "growing", "non-degenerate", "decaying", "tangential", "transversal")


@attrs.frozen
class RankReading:
    """One eigenvalue rank along the approach."""

    rank: int
    fit: Fit
    kind: str  # floor / not-asymptotic / unfittable / growing / non-degenerate / decaying / ...
    normal_overlap: float | None = None

    def as_dict(self) -> dict:
        return {"rank": self.rank, "kind": self.kind, "normal_overlap": self.normal_overlap,
                **{k: v for k, v in self.fit.as_dict().items() if k in ("slope", "se", "status")}}


@attrs.frozen
class Selection:
    """Outcome of the selection rule on one spectrum sweep."""

    ranks: tuple[RankReading, ...]
    target: float | None
    transversal: int | None
    k: int | None
    lambda_contribution: float | None
    local_rlct: float | None
    verdict: str  # pass or reach-exceeded
    reason: str = ""

    def kinds(self) -> dict[str, int]:
        """Count of ranks per kind."""
        out: dict[str, int] = {}
        for r in self.ranks:
            out[r.kind] = out.get(r.kind, 0) + 1
        return out

    def as_dict(self) -> dict:
        return {"target": self.target, "transversal": self.transversal, "k": self.k,
                "lambda_contribution": self.lambda_contribution, "local_rlct": self.local_rlct,
                "verdict": self.verdict, "reason": self.reason, "kinds": self.kinds(),
                "ranks": [r.as_dict() for r in self.ranks]}


def _kind(fit: Fit, tol: float) -> str:
    if fit.status != FIT_OK:
        return fit.status
    if fit.slope < -tol:
        return GROWING
    return NON_DEGENERATE if abs(fit.slope) <= tol else DECAYING


def select_transversal(ts, spectra, *, k: int | None = None, target: float | None = None,
                       tol: float = 0.05, floor: float = FP64_FLOOR, eigvecs=None,
                       normal_basis=None) -> Selection:
    """Apply the operational selection rule to a spectrum sweep (see the module docstring).

    Parameters
    ----------
    ts : (T,) t-grid. spectra : T eigenvalue arrays of equal length R.
    k : predicted KL order (target rate ``2k - 2``). target : predicted rate (overrides ``k``).
    tol : slope tolerance. floor : relative floor level.
    eigvecs, normal_basis : optional fibre information (see module docstring).

    Returns
    -------
    Selection

    Raises
    ------
    ValueError
        When the spectra have unequal lengths or do not match ``ts``.

    Examples
    --------
    >>> ts = [1e-3, 2e-3, 4e-3, 8e-3]
    >>> sel = select_transversal(ts, [[0.0, t**2, 1.0] for t in ts], k=2)
    >>> sel.transversal, sel.k, sel.lambda_contribution, sel.kinds()["floor"]
    (1, 2, 0.25, 1)
    """
    ts = np.asarray(ts, float)
    lam = np.sort(np.asarray([np.asarray(s, float) for s in spectra]), axis=1)
    if lam.ndim != 2 or lam.shape[0] != ts.size:
        raise ValueError(f"need one equal-length spectrum per t, got {lam.shape} for {ts.size} ts")
    scale = np.max(np.abs(lam), axis=1)
    overlaps = _normal_overlaps(eigvecs, normal_basis, ts, spectra)
    ranks = []
    for j in range(lam.shape[1]):
        fit = fit_rate(ts, lam[:, j], tol=tol, scale=scale, floor=floor)
        kind = _kind(fit, tol)
        ov = None if overlaps is None else float(overlaps[j])
        if ov is not None and ov < 0.5 and kind in (DECAYING, NON_DEGENERATE, GROWING):
            kind = TANGENTIAL_RANK
        ranks.append(RankReading(j, fit, kind, ov))
    if target is None and k is not None:
        target = 2.0 * k - 2.0
    admissible = [r for r in ranks if r.kind in (NON_DEGENERATE, DECAYING)]
    chosen, reason = _choose(admissible, target, tol)
    if chosen is None:
        return Selection(tuple(ranks), target, None, None, None, None, REACH_EXCEEDED, reason)
    kk = round((chosen.fit.slope + 2) / 2)
    ranks[chosen.rank] = attrs.evolve(chosen, kind=TRANSVERSAL)
    local = None
    if overlaps is not None:
        n_nd = sum(1 for r in ranks if r.kind == NON_DEGENERATE)
        local = n_nd / 2 + 1 / (2 * kk)
    return Selection(tuple(ranks), target, chosen.rank, int(kk), 1 / (2 * kk), local, PASS, reason)


def _choose(admissible, target, tol):
    if not admissible:
        return None, "no rank with an asymptotic, above-floor, non-growing rate"
    if target is not None:
        best = min(admissible, key=lambda r: abs(r.fit.slope - target))
        if abs(best.fit.slope - target) <= tol:
            return best, ""
        return None, (f"no admissible rank within ±{tol} of the predicted rate {target:g} "
                      f"(closest: rank {best.rank} at {best.fit.slope:.3f})")
    best = max(admissible, key=lambda r: r.fit.slope)
    kf = (best.fit.slope + 2) / 2
    if abs(2 * (kf - round(kf))) <= tol:
        return best, "no prediction given: steepest admissible rank taken"
    return None, f"steepest admissible slope {best.fit.slope:.3f} is not 2k - 2 for an integer k"


def _normal_overlaps(eigvecs, normal_basis, ts, spectra):
    """Squared norm of each rank's eigenvector (at the smallest t) inside the normal space."""
    if eigvecs is None or normal_basis is None:
        return None
    i = int(np.argmin(ts))
    order = np.argsort(np.asarray(spectra[i], float))
    V = np.asarray(eigvecs[i], float)[:, order]
    Q, _ = np.linalg.qr(np.asarray(normal_basis, float).reshape(V.shape[0], -1))
    return np.sum((Q.T @ V) ** 2, axis=0)


def fisher_sweep(family, path, ts):
    """Eigen-decompose ``family.fisher(path(t))`` on the grid.

    Returns
    -------
    spectra : list of (dim,) ascending eigenvalue arrays; eigvecs : list of (dim, dim) arrays.
    """
    spectra, vecs = [], []
    for t in ts:
        w, V = np.linalg.eigh(family.fisher(path(t)))
        spectra.append(w)
        vecs.append(V)
    return spectra, vecs
