"""Adaptive windows (THEORY §7.5): where the sweep puts t, when it stops, which points each fit uses.

The sweep walks a geometric lattice, three points a decade, whose points 1e-2..1e-4 are the old fixed
grid. It starts at 1e-2, or higher when the largest predicted rate would put an observable under the
fp64 floor there, measures down to 1e-4, then adds smaller t one point at a time while an observable
that drives it is still moving: until each has settled on its prediction or reached the floor, or
t reaches ``T_MIN``. The common random numbers make every new point comparable with the old ones.

Each observable then fits on its own window, chosen without looking at the prediction: the
deepest run of at least ``MIN_RUN`` consecutive points above the floor whose local slopes all lie
within half the band of the run's last one, extended toward larger t while they still do.
"""
from __future__ import annotations

import math

import attrs
import numpy as np

from ddgraph.probing.fit import FIT_OK, FLOOR, FP64_FLOOR, NOT_ASYMPTOTIC, TINY, TOL, Fit, fit_rate, floor_advice

MIN_RUN = 4  # points in a window: three local slopes that agree
STEP = 1 / 3  # decades between lattice points
T_MIN = 1e-8  # the sweep goes no lower
K_TOP_MAX = -5  # the highest lattice point, t = 10**(-1/3) (k = 0 is t = 1e-2)
K_FIXED_END = 6  # the first segment always reaches t = 1e-4
REACH = -math.log10(TINY)  # decades an observable of order 1 may fall before it underflows


@attrs.frozen
class Expected:
    """What one measured series is expected to do: its predicted rate (a number, ``inf``, a ``(lo, hi)``
    bracket, or ``None``) and the band its fit is judged in."""

    predicted: object = None
    tol: float = TOL


def lattice(k: int) -> float:
    """The k-th lattice point: ``10**(-2 - k/3)`` (k = 0..6 is the old default grid)."""
    return float(10.0 ** (-2 - k * STEP))


def first_segment(rates) -> list[float]:
    """The first points of the sweep, largest t first: 1e-2..1e-4, started higher when a predicted rate
    is so large that the observable would leave fewer than ``MIN_RUN`` points above the floor."""
    finite = [r for r in rates if r is not None and math.isfinite(r) and r > 0]
    k_top = 0
    if finite:
        k_top = min(0, math.floor((REACH / max(finite) - 2) / STEP) - (MIN_RUN - 1))
    return [lattice(k) for k in range(max(k_top, K_TOP_MAX), K_FIXED_END + 1)]


def next_point(grid) -> float | None:
    """The next lattice point below the smallest measured t, or ``None`` past ``T_MIN``."""
    k = round((-math.log10(min(grid)) - 2) / STEP) + 1
    t = lattice(k)
    return t if t >= T_MIN * (1 - 1e-9) else None


def fit_window(ts, ys, *, tol: float = TOL, scale=None) -> Fit:
    """Fit ``log ys`` against ``log ts`` on the observable's own window (see the module docstring).

    Values at or below ``TINY`` (or ``FP64_FLOOR`` times ``scale``) are at the floor. No window and
    fewer than ``MIN_RUN`` points above the floor: ``floor``, with advice; no window otherwise:
    ``not-asymptotic``, fitted on every point above the floor.
    """
    t = np.asarray(ts, dtype=float)
    y = np.asarray(ys, dtype=float)
    order = np.argsort(-t)
    t, y = t[order], y[order]
    if not np.isfinite(y).all() or not (y != 0).any():
        return fit_rate(t, y, tol=tol, scale=scale)  # NaN: unfittable; exactly zero: floor, as on a fixed grid
    usable = _usable(y, scale)
    run = _deepest_run(t, y, usable, tol / 2)
    if run is not None:
        i, j = run
        fit = fit_rate(t[i:j + 1], y[i:j + 1], tol=tol)
        return attrs.evolve(fit, status=FIT_OK, reason="") if fit.status == NOT_ASYMPTOTIC else fit
    if usable.sum() < MIN_RUN:
        return Fit(math.nan, math.nan, math.nan, (float(t[-1]), float(t[0])), (), FLOOR,
                   floor_advice(t, usable), int(usable.sum()))
    fit = fit_rate(t[usable], y[usable], tol=tol)
    reason = (f"local slopes still drift ({min(fit.local_slopes):.3f}..{max(fit.local_slopes):.3f}) down to "
              f"t = {float(t[usable][-1]):.0e}: no {MIN_RUN} consecutive points agree within ±{tol / 2:g}")
    return attrs.evolve(fit, status=NOT_ASYMPTOTIC, reason=reason)


def _usable(y, scale) -> np.ndarray:
    ok = y > TINY
    if scale is not None:
        ok &= y > FP64_FLOOR * np.abs(np.asarray(scale, dtype=float))
    return ok


def _deepest_run(t, y, usable, half: float):
    """``(i, j)``: the deepest run of consecutive usable points whose local slopes lie within ``half``
    of its last one, at least ``MIN_RUN`` long and extended toward larger t; ``None`` if there is none."""
    lt, ly = np.log(t), np.log(np.where(usable, y, 1.0))
    slopes = np.diff(ly) / np.diff(lt)  # slopes[m] joins points m and m + 1
    for j in range(len(t) - 1, MIN_RUN - 2, -1):
        if not usable[j - MIN_RUN + 1:j + 1].all():
            continue
        last = slopes[j - 1]
        if np.all(np.abs(slopes[j - MIN_RUN + 1:j] - last) <= half):
            i = j - MIN_RUN + 1
            while i > 0 and usable[i - 1] and abs(slopes[i - 1] - last) <= half:
                i -= 1
            return i, j
    return None


def settled(ts, ys, expected: Expected, scale=None) -> bool:
    """Whether a driving series needs no smaller t: it is non-finite or exactly zero, its last point is
    under the floor, or its deepest points form a window whose slope matches its prediction."""
    y = np.asarray(ys, dtype=float)
    if not np.isfinite(y).all() or not (y != 0).any():
        return True
    if expected.predicted == math.inf:
        return True  # predicted exactly zero: smaller t cannot help
    usable = _usable(y, scale)
    if not usable[-1]:
        return True  # under the floor: smaller t only goes deeper
    fit = fit_window(ts, ys, tol=expected.tol, scale=scale)
    if fit.status != FIT_OK or fit.window[0] != min(ts):
        return False
    p = expected.predicted
    if p is None:
        return True
    if isinstance(p, tuple):
        return p[0] - expected.tol <= fit.slope <= p[1] + expected.tol
    return abs(fit.slope - p) <= expected.tol

