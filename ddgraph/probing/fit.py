"""Log-log slope fits with the asymptotic-window and floor checks of THEORY §7.5.

A fit turns a sweep ``(t_i, y_i)`` into a rate: the slope of ``log y`` against ``log t``. It also reports
the local slopes between neighbouring grid points, so a caller can tell a clean power law from a
sweep that has not reached its asymptotic window, and flags observables that sit at the numerical
floor (relative to a reference scale such as the largest eigenvalue).
"""
from __future__ import annotations

import math

import attrs
import numpy as np

from ddgraph.compare.verdicts import FitStatus, Verdict

#: Verdicts a fit can carry by itself (``pass``/``fail`` need a prediction: see :func:`judge`).
FIT_OK, NOT_ASYMPTOTIC, FLOOR, UNFITTABLE = FitStatus

#: Relative level below which an observable is at the numerical floor (fp64).
FP64_FLOOR = 1e-12
#: The default band a fitted rate must fall in (THEORY §7.6).
TOL = 0.05
#: Spread of log y (about 1%) below which a series is flat: its R^2 is undefined.
FLAT = 0.01
#: Absolute level at or below which a value has underflowed (fp64's smallest normal number is 2.2e-308;
#: a sum of squares loses digits well before it).
TINY = 1e-280


@attrs.frozen
class Fit:
    """The fitted rate of one observable over a t-grid."""

    slope: float
    se: float
    r2: float
    window: tuple[float, float]
    local_slopes: tuple[float, ...]
    status: str  # FIT_OK, NOT_ASYMPTOTIC, FLOOR or UNFITTABLE
    reason: str = ""
    n_points: int = 0

    def as_dict(self) -> dict:
        return {
            "slope": _num(self.slope), "se": _num(self.se), "r2": _num(self.r2),
            "window": list(self.window), "local_slopes": [_num(s) for s in self.local_slopes],
            "status": self.status, "reason": self.reason, "n_points": self.n_points,
        }


def _num(x: float):
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def fit_rate(ts, ys, *, tol: float = TOL, scale=None, floor: float = FP64_FLOOR,
             exact_zero: float = 0.0) -> Fit:
    """Fit the slope of ``log ys`` against ``log ts``.

    Parameters
    ----------
    ts, ys : sequences of positive floats, one value per grid point.
    tol : local slopes must agree with the fitted slope within this band, or the status is
        ``not-asymptotic``.
    scale : optional reference magnitudes (same length as ``ys``), e.g. the largest eigenvalue of
        the matrix the observable was read from. Points with ``ys <= floor * scale`` are at the floor.
    floor : relative floor level.
    exact_zero : values ``<= exact_zero`` count as exactly zero (they are not rate observables).

    Returns
    -------
    Fit
        ``r2`` is NaN for a series constant to rounding (R^2 is undefined there). ``status`` is ``floor`` when more than half the points are at the floor or fewer than three
        remain above ``TINY`` (underflow), ``unfittable`` when a value is not finite, ``not-asymptotic`` when local slopes
        stray beyond ``tol`` from the fit, else ``ok``.

    Examples
    --------
    >>> f = fit_rate([1e-1, 1e-2, 1e-3], [1e-2, 1e-4, 1e-6])
    >>> round(f.slope, 6), f.status
    (2.0, 'ok')
    """
    t = np.asarray(ts, dtype=float)
    y = np.asarray(ys, dtype=float)
    if t.shape != y.shape or t.ndim != 1:
        raise ValueError(f"ts and ys must be 1-D of equal length, got {t.shape} and {y.shape}")
    window = (float(np.min(t)), float(np.max(t))) if t.size else (math.nan, math.nan)
    bad = ~np.isfinite(y)
    if bad.any():
        return Fit(math.nan, math.nan, math.nan, window, (), UNFITTABLE,
                   f"{int(bad.sum())} of {y.size} values are NaN or infinite", int(y.size))
    if np.all(np.abs(y) <= exact_zero):
        return Fit(math.inf, 0.0, math.nan, window, (), FLOOR, "zero at every t: exactly zero, or under the fp64 "
                   "floor (a large rate needs larger t, e.g. --grid geom:0.9:0.3:7)", int(y.size))
    if scale is not None:
        s = np.asarray(scale, dtype=float)
        at_floor = y <= floor * np.abs(s)
        if at_floor.sum() * 2 > y.size:
            return Fit(math.nan, math.nan, math.nan, window, (), FLOOR,
                       f"{int(at_floor.sum())}/{y.size} points below {floor:g} x reference scale",
                       int(y.size))
        keep = ~at_floor
        t, y = t[keep], y[keep]
    above = y > TINY
    if above.sum() < 3:
        return Fit(math.nan, math.nan, math.nan, window, (), FLOOR, floor_advice(t, above), int(above.sum()))
    t, y = t[above], y[above]
    order = np.argsort(t)
    lt, ly = np.log(t[order]), np.log(y[order])
    slope, intercept = np.polyfit(lt, ly, 1)
    resid = ly - (slope * lt + intercept)
    n = lt.size
    sxx = float(np.sum((lt - lt.mean()) ** 2))
    se = float(math.sqrt(np.sum(resid**2) / max(n - 2, 1) / sxx)) if sxx > 0 else math.inf
    sst = float(np.sum((ly - ly.mean()) ** 2))
    # a series constant to rounding has no variance to explain: its R^2 is undefined (NaN), not a number
    # made of rounding noise (it came out as -3.17 beside an exact slope 0)
    # nor has a series that moves by less than 1% over the window (a rate-0 observable): R^2 would
    # compare rounding-sized residuals with a variation that is not there (it read -1.14)
    flat = float(np.ptp(ly)) <= FLAT
    r2 = math.nan if flat or sst <= 0 else 1.0 - float(np.sum(resid**2)) / sst
    local = tuple(float(s) for s in np.diff(ly) / np.diff(lt))
    window = (float(t[order][0]), float(t[order][-1]))
    spread = max(abs(s - slope) for s in local)
    if spread > tol:
        return Fit(float(slope), se, r2, window, local, NOT_ASYMPTOTIC,
                   f"local slopes range {min(local):.3f}..{max(local):.3f}, beyond ±{tol} of the fit",
                   n)
    return Fit(float(slope), se, r2, window, local, FIT_OK, "", n)


def floor_advice(ts, above) -> str:
    """Why a series has too few points above the floor, and where to measure it instead."""
    t = np.asarray(ts, dtype=float)
    above = np.asarray(above, dtype=bool)
    if not above.any():
        return (f"under the fp64 floor at every t in [{t.min():.0e}, {t.max():.0e}]; a rate this large needs "
                "larger t (e.g. --grid geom:0.9:0.3:7)")
    low = float(t[above].min())
    hi = min(0.9, float(t.max()) * 10)
    return (f"above the fp64 floor at only {int(above.sum())} of {t.size} points (t >= {low:.0e}): it underflows "
            f"below; measure on larger t (e.g. --grid geom:{hi:.2g}:{low:.0e}:7)")


PASS, FAIL, INSIDE_BRACKET, NO_RULE = Verdict.PASS, Verdict.FAIL, Verdict.INSIDE_BRACKET, Verdict.NO_RULE


def judge(predicted, fit: Fit, *, tol: float = TOL) -> Verdict:
    """Verdict for a predicted rate (a number, ``inf``, a ``(lo, hi)`` bracket, or ``None``).

    ``None`` means no rule reached the observable; ``inf`` means it is predicted exactly zero.
    """
    if predicted is None:
        return NO_RULE
    if fit.status == UNFITTABLE:
        return Verdict.UNFITTABLE
    if isinstance(predicted, tuple):
        lo, hi = predicted
        if lo == hi:
            predicted = lo
        else:
            if fit.status != FIT_OK:
                return Verdict(fit.status)
            return INSIDE_BRACKET if lo - tol <= fit.slope <= hi + tol else FAIL
    if predicted == math.inf:
        # An exactly-zero observable shows up as a floor fit; anything else is a failure.
        return PASS if fit.status == FLOOR else FAIL
    if fit.status != FIT_OK:
        return Verdict(fit.status)
    return PASS if abs(fit.slope - predicted) <= tol else FAIL
