"""pandas DataFrames of a prediction, a measurement and a diff (``.to_frame()`` on each).

One row per ladder row, per measured value and per check, with plain scalar columns, the way
weightwatcher's ``details`` frame reads. Rates are floats: ``inf`` for an observable that is exactly
zero, ``nan`` where there is no single number (no rule; a bracket, whose ends are in ``*_lo`` and
``*_hi``). pandas is optional: ``pip install pandas`` (or the ``frames`` extra).
"""
from __future__ import annotations

import math

from ddgraph._optional import require


def _pandas(what: str):
    return require("pandas", "frames", what)


def _float(x) -> float:
    return math.nan if x is None or isinstance(x, tuple) else float(x)


def _ends(pair) -> tuple[float, float]:
    lo, hi = pair
    return _float(lo), _float(hi)


PREDICTION_COLUMNS = ("node", "param", "module", "primitive", "kind", "a_rate", "g_rate", "a_lo", "a_hi",
                      "g_lo", "g_hi", "status", "lemmas", "rules", "reason")


def prediction_frame(pred):
    """One row per ladder row (weight node), direction 1; lemmas and rules joined by ``", "``."""
    pd = _pandas("Prediction.to_frame()")
    rows = []
    for n in pred.nodes:
        a_lo, a_hi = _ends(n.a_rates[0])
        g_lo, g_hi = _ends(n.g_rates[0])
        rows.append((n.node, n.param, n.module, n.primitive, n.kind, _float(n.a_rate), _float(n.g_rate),
                     a_lo, a_hi, g_lo, g_hi, n.status, ", ".join(n.lemmas), ", ".join(n.rules), n.reason))
    return pd.DataFrame.from_records(rows, columns=PREDICTION_COLUMNS)


DIFF_COLUMNS = ("node", "param", "factor", "direction", "observable", "predicted", "predicted_lo",
                "predicted_hi", "measured", "se", "r2", "window_lo", "window_hi", "n_points", "fit_status", "verdict",
                "tol", "status")


def diff_frame(d):
    """One row per check (node x factor x direction x observable): predicted rate, fitted slope
    (``measured``) with its standard error, R^2 and the window it was fitted on, the verdict, its
    tolerance and the prediction's status."""
    pd = _pandas("Diff.to_frame()")
    rows = []
    for c in d.checks:
        p = c.predicted
        lo, hi = p if isinstance(p, tuple) else (p, p)
        rows.append((c.node, c.param, c.factor, c.direction, c.observable, _float(p), _float(lo), _float(hi),
                     float(c.fit.slope), float(c.fit.se), float(c.fit.r2), float(c.fit.window[0]),
                     float(c.fit.window[1]), c.fit.n_points, c.fit.status,
                     c.verdict, float(c.tol), c.status))
    return pd.DataFrame.from_records(rows, columns=DIFF_COLUMNS)


MEASUREMENT_COLUMNS = ("site", "node", "param", "kind", "factor", "observable", "direction", "t", "value")


def measurement_rows(m) -> list[tuple]:
    """The measured values, one per node, factor, observable, direction and t.

    ``site`` is ``weight`` (K-FAC factor observables: dead entry ``dd``, Schur complement ``schur``,
    active ``lmin``), ``ln`` (the norm kernel check: ``ratio``, ``rayleigh`` and ``cosine``) or ``stream`` (the
    residual stream's smallest eigenvalue, ``lmin``); factor and direction are empty off weights.
    """
    rows = []
    for node, s in m.weights.items():
        for factor, observables in s.series.items():
            for name, by_direction in observables.items():
                for j, values in by_direction.items():
                    rows += [("weight", node, s.param, s.kind, factor, name, j, t, float(v))
                             for t, v in zip(m.grid, values)]
    for node, rec in m.ln.items():
        for name in ("ratio", "rayleigh", "cosine"):
            rows += [("ln", node, None, None, None, name, None, t, float(v)) for t, v in zip(m.grid, rec[name])]
    for node, values in m.streams.items():
        rows += [("stream", node, None, None, None, "lmin", None, t, float(v)) for t, v in zip(m.grid, values)]
    return rows


def measurement_frame(m):
    """One row per measured value: see :func:`measurement_rows`."""
    pd = _pandas("Measurement.to_frame()")
    return pd.DataFrame.from_records(measurement_rows(m), columns=MEASUREMENT_COLUMNS)
