"""Theorem 89 and Remarks 90-95: per-component KL orders of a normal crossing from trajectory rates.

Given a point ``theta0`` where smooth components ``{n_i . (theta - theta0) = 0}`` cross, each
component described by an orthonormal set of normals (its codimension ``c_i`` is their number),
the protocol fits

- one **anchored** rate per normal: along ``theta0 + t n + eps * sum_{j != i} n_j`` the Fisher
  quadratic form in ``n`` decays as ``t^(2 k_i - 2)`` (Thm 89 (b));
- one **eps-scan** per component: at fixed small t, the leading coefficient of a reference
  component's anchored Fisher scales as ``eps_j^(2 k_j)`` (Thm 89 (c)(iii));
- one **generic-transversal** rate along ``sum_i n_i / sqrt(n)``: ``t^(2 sum k_i - 2)`` (Thm 89 (a)),
  the consistency check.

With the uniform prior the zeta function ``int prod |x_i|^(2 k_i z) dx`` has its largest pole at
``lambda = min_i c_i / (2 k_i)`` of order ``m = #argmin`` (Remark 93; ``c_i = 1`` gives
``1 / (2 max k)`` and ``m`` = the number of components attaining the largest order).
"""
from __future__ import annotations

from fractions import Fraction

import attrs
import numpy as np

from ddgraph.probing.fit import FIT_OK, PASS, Fit, fit_rate
from ddgraph.slt.direction import integer_order, unit

INCONSISTENT = "inconsistent"


@attrs.frozen
class ComponentReading:
    """Rates of one component: anchored fits (one per normal) and its eps-scan."""

    codim: int
    anchored: tuple[Fit, ...]
    k: int | None
    scan: Fit | None
    k_scan: int | None

    def as_dict(self) -> dict:
        return {"codim": self.codim, "k": self.k, "k_scan": self.k_scan,
                "anchored_slopes": [f.slope for f in self.anchored],
                "scan_slope": None if self.scan is None else self.scan.slope}


@attrs.frozen
class CrossingReading:
    """The recovered tuple, the consistency check and Watanabe's pair ``(lambda, m)``."""

    components: tuple[ComponentReading, ...]
    generic: Fit
    k_sum: int | None
    ks: tuple[int | None, ...]
    consistent: bool
    lam: Fraction | None
    m: int | None
    verdict: str
    reason: str = ""

    def as_dict(self) -> dict:
        return {"ks": list(self.ks), "k_sum": self.k_sum, "consistent": self.consistent,
                "lambda": None if self.lam is None else str(self.lam), "m": self.m,
                "verdict": self.verdict, "reason": self.reason,
                "generic_slope": self.generic.slope,
                "components": [c.as_dict() for c in self.components]}


def rlct_from_orders(ks, codims=None):
    """``(lambda, m)`` of ``prod_i |x_i|^(2 k_i)`` with ``x_i`` of dimension ``c_i``, uniform prior.

    Examples
    --------
    >>> rlct_from_orders([1, 2, 2])
    (Fraction(1, 4), 2)
    """
    codims = [1] * len(ks) if codims is None else list(codims)
    poles = [Fraction(c, 2 * k) for c, k in zip(codims, ks)]
    lam = min(poles)
    return lam, sum(1 for p in poles if p == lam)


def _normals(comp) -> np.ndarray:
    N = np.atleast_2d(np.asarray(comp, float))
    return np.array([unit(n) for n in N])


def _quad(family, theta, v) -> tuple[float, float]:
    I = family.fisher(theta)
    return float(v @ I @ v), max(float(np.linalg.eigvalsh(I)[-1]), 1e-300)


def _sweep(family, points, v, xs, tol):
    q, s = zip(*(_quad(family, p, v) for p in points))
    return fit_rate(xs, q, tol=tol, scale=s)


def read_crossing(family, theta0, components, *, ts=tuple(np.geomspace(1e-3, 1e-2, 5)),
                  eps: float = 0.2, eps_grid=tuple(np.geomspace(0.05, 0.2, 4)),
                  t_scan: float = 1e-3, tol: float = 0.05) -> CrossingReading:
    """Run Theorem 89's protocol.

    Parameters
    ----------
    family : object with ``fisher(theta)`` (see :mod:`ddgraph.slt.families`).
    theta0 : the crossing point.
    components : one entry per component: a normal vector, or a ``(c_i, dim)`` array of
        orthonormal normals spanning the component's normal space.
    ts : t-grid of the anchored and generic sweeps. eps : anchor offset of the other components.
    eps_grid : offsets of the eps-scan. t_scan : t of the eps-scan. tol : slope tolerance.

    Returns
    -------
    CrossingReading
        ``verdict`` is ``pass`` when every fit is asymptotic, every normal of a component gives the
        same order, the eps-scans agree with the anchored orders and the generic rate equals
        ``2 sum k_i - 2``; otherwise ``inconsistent`` (or the failing fit status).
    """
    theta0 = np.asarray(theta0, float)
    comps = [_normals(c) for c in components]
    heads = [c[0] for c in comps]
    ts = np.asarray(ts, float)

    def anchor(i, offsets):
        return theta0 + sum(offsets[j] * heads[j] for j in range(len(comps)) if j != i)

    readings = []
    base = [eps] * len(comps)
    for i, normals in enumerate(comps):
        fits = tuple(_sweep(family, [anchor(i, base) + t * n for t in ts], n, ts, tol)
                     for n in normals)
        ks = {integer_order(f, offset=-2.0, tol=tol) for f in fits}
        k = ks.pop() if len(ks) == 1 else None
        scan = None
        if len(comps) > 1:
            ref = (i + 1) % len(comps)  # read component i's order off another component's rate
            pts = []
            for e in eps_grid:
                off = list(base)
                off[i] = e
                pts.append(anchor(ref, off) + t_scan * heads[ref])
            scan = _sweep(family, pts, heads[ref], np.asarray(eps_grid, float), tol)
        k_scan = None if scan is None else integer_order(scan, tol=tol)
        readings.append(ComponentReading(len(normals), fits, k, scan, k_scan))
    g = unit(np.sum(heads, axis=0))
    generic = _sweep(family, [theta0 + t * g for t in ts], g, ts, tol)
    k_sum = integer_order(generic, offset=-2.0, tol=tol)
    ks = tuple(r.k for r in readings)
    bad = [f for r in readings for f in r.anchored + ((r.scan,) if r.scan else ())
           if f.status != FIT_OK] + ([generic] if generic.status != FIT_OK else [])
    consistent = (None not in ks and k_sum == sum(ks)
                  and all(r.k_scan in (None, r.k) for r in readings)
                  and all(r.scan is None or r.k_scan is not None for r in readings))
    if None in ks:
        return CrossingReading(tuple(readings), generic, k_sum, ks, False, None, None,
                               bad[0].status if bad else INCONSISTENT,
                               "a component's normals give no common integer order")
    lam, m = rlct_from_orders(ks, [r.codim for r in readings])
    verdict = PASS if consistent and not bad else (bad[0].status if bad else INCONSISTENT)
    reason = "" if consistent else (f"generic order {k_sum} vs sum {sum(ks)}; "
                                    f"scans {[r.k_scan for r in readings]} vs anchored {list(ks)}")
    return CrossingReading(tuple(readings), generic, k_sum, ks, consistent, lam, m, verdict, reason)
