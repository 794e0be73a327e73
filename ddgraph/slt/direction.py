"""Theorem 2 on an explicit family: the KL order of a direction and its directional Fisher rate.

Along ``theta(t) = theta0 + t * a`` (``a`` the approach, by default the direction ``v`` itself) we
measure ``KL(theta(t))`` (slope ``2k``: the KL order by definition) and the directional Fisher
``v^T I(theta(t)) v`` (Theorem 2 predicts slope ``2k - 2``), fit both with :func:`ddgraph.probing.fit.fit_rate`
and judge the Fisher slope against the KL order with :func:`ddgraph.probing.fit.judge`. A direction along
which the KL is identically zero lies inside the singular set (tangential): it has no KL order and
no RLCT contribution, whatever its Fisher slope says.
"""
from __future__ import annotations

import attrs
import numpy as np

from ddgraph.probing.fit import FIT_OK, FLOOR, NO_RULE, Fit, fit_rate, judge

#: Verdict for a direction inside the singular set (KL identically zero along it).
TANGENTIAL = "tangential"

#: Absolute level (nats) at or below which a KL value counts as zero.
KL_FLOOR = 1e-26

DEFAULT_TS = tuple(np.geomspace(2e-3, 2e-2, 6))


def unit(v) -> np.ndarray:
    """``v / |v|`` as fp64."""
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v)
    if n == 0:
        raise ValueError("direction must be non-zero")
    return v / n


def integer_order(fit: Fit, *, per: float = 2.0, offset: float = 0.0, tol: float = 0.05):
    """The integer ``k`` with ``fit.slope = per * k + offset`` within ``tol``, else ``None``."""
    if fit.status != FIT_OK:
        return None
    k = (fit.slope - offset) / per
    kr = round(k)
    return int(kr) if abs(per * (k - kr)) <= tol else None


def kl_fit(family, theta0, direction, ts, *, tol: float = 0.05) -> Fit:
    """Fit ``KL(theta0 + t v)`` against t; ``floor`` when the KL is numerically zero.

    The KL is a sum of non-negative terms of size ``delta^2`` where ``delta`` is the log-density
    deviation, computed to about 1e-13 absolute; so ``KL <= KL_FLOOR = 1e-26`` nats is zero.
    """
    theta0, v = np.asarray(theta0, float), unit(direction)
    ts = np.asarray(ts, float)
    kls = np.array([family.kl(theta0 + t * v) for t in ts])
    return fit_rate(ts, kls, tol=tol, scale=np.ones_like(ts), floor=KL_FLOOR), kls


@attrs.frozen
class DirectionReading:
    """Theorem 2 read on one direction: KL order, Fisher rate, verdict, RLCT contribution."""

    ts: tuple[float, ...]
    kl: tuple[float, ...]
    fisher: tuple[float, ...]
    kl_fit: Fit
    fisher_fit: Fit
    k: int | None  # the KL order (given, else measured)
    k_measured: int | None  # from the KL slope
    k_from_fisher: int | None  # from the Fisher slope, (slope + 2) / 2
    predicted_rate: float | None
    verdict: str
    lambda_contribution: float | None
    reason: str = ""

    def as_dict(self) -> dict:
        return {
            "k": self.k, "k_measured": self.k_measured, "k_from_fisher": self.k_from_fisher,
            "predicted_rate": self.predicted_rate, "verdict": self.verdict,
            "lambda_contribution": self.lambda_contribution, "reason": self.reason,
            "kl_fit": self.kl_fit.as_dict(), "fisher_fit": self.fisher_fit.as_dict(),
        }


def read_direction(family, theta0, direction, *, approach=None, ts=DEFAULT_TS, k=None,
                   tol: float = 0.05) -> DirectionReading:
    """Measure the KL order of ``direction`` at ``theta0`` and its Fisher rate along the approach.

    Parameters
    ----------
    family : an object with ``fisher(theta)`` and ``kl(theta)`` (see :mod:`ddgraph.slt.families`).
    theta0 : a point of the singular set.
    direction : the direction ``v`` whose Fisher quadratic form ``v^T I v`` is read.
    approach : the path tangent ``a`` (default ``v``). When ``a != v`` Theorem 2 does not apply; the
        reading still classifies ``v`` (tangential or not) but gives no rate prediction.
    ts : the t-grid. k : the expected KL order, if known (else the measured one is used).
    tol : slope tolerance.

    Returns
    -------
    DirectionReading
        ``verdict`` is ``tangential`` when the KL is identically zero along ``v``; otherwise
        :func:`ddgraph.probing.fit.judge` of the predicted rate ``2k - 2`` against the Fisher fit.

    Examples
    --------
    >>> import math
    >>> from ddgraph.slt.families import DensityFamily
    >>> fam = DensityFamily(lambda x, th: -0.5 * (x - th[0] ** 2) ** 2 - 0.5 * math.log(2 * math.pi),
    ...                     [0.0])
    >>> r = read_direction(fam, [0.0], [1.0])
    >>> r.k, r.verdict, r.lambda_contribution
    (2, 'pass', 0.25)
    """
    theta0, v = np.asarray(theta0, float), unit(direction)
    a = v if approach is None else unit(approach)
    ts = np.asarray(ts, float)
    same = np.allclose(a, v)
    kfit, kls = kl_fit(family, theta0, v, ts, tol=tol)
    quad, scale = [], []
    for t in ts:
        I = family.fisher(theta0 + t * a)
        quad.append(float(v @ I @ v))
        scale.append(max(float(np.linalg.eigvalsh(I)[-1]), 1e-300))
    ffit = fit_rate(ts, quad, tol=tol, scale=scale)
    k_meas = integer_order(kfit, tol=tol)
    k_fis = integer_order(ffit, offset=-2.0, tol=tol)
    common = dict(ts=tuple(ts), kl=tuple(kls), fisher=tuple(quad), kl_fit=kfit, fisher_fit=ffit,
                  k_measured=k_meas, k_from_fisher=k_fis)
    if kfit.status == FLOOR:
        return DirectionReading(**common, k=None, predicted_rate=None, verdict=TANGENTIAL,
                                lambda_contribution=None,
                                reason="KL is identically zero along the direction: it lies in the "
                                       "singular set, so it has no KL order and no RLCT claim")
    if not same:
        return DirectionReading(**common, k=k_meas, predicted_rate=None, verdict=NO_RULE,
                                lambda_contribution=None,
                                reason="approach differs from the direction: Theorem 2 gives no rate")
    kk = k if k is not None else k_meas
    if kk is None:
        return DirectionReading(**common, k=None, predicted_rate=None, verdict=kfit.status if
                                kfit.status != FIT_OK else "non-integer-order",
                                lambda_contribution=None,
                                reason=f"KL slope {kfit.slope:.3f} gives no integer order")
    pred = 2.0 * kk - 2.0
    verdict = judge(pred, ffit, tol=tol)
    reason = "" if k is None or k_meas == k else f"measured KL order {k_meas} differs from given {k}"
    lam = 1.0 / (2 * kk) if verdict == "pass" else None
    return DirectionReading(**common, k=kk, predicted_rate=pred, verdict=verdict,
                            lambda_contribution=lam, reason=reason)
