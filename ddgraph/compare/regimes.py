"""Which eps regime a probe window sits in, and the rates to check there (docs/THEORY.md §3.8)."""
from __future__ import annotations

from ddgraph.prediction import BRACKET, NO_RULE, NodePrediction

#: A window is in a regime when it stays this factor clear of every crossover scale (t* is a scale).
MARGIN = 10.0
LINEAR, INVARIANT, CROSSOVER = "linear", "invariant", "crossover"


def regime(node: NodePrediction, window: tuple[float, float]) -> str:
    """``linear`` (below every t*), ``invariant`` (above every t*), ``crossover`` (neither), or ``""``
    when the node's rates do not depend on the regime."""
    if node.invariant is None:
        return ""
    if node.crossover is None:
        return CROSSOVER  # a normaliser's floor is unknown: no window is known to be clear of it
    lo, hi = min(window), max(window)
    if hi * MARGIN <= node.crossover[0]:
        return LINEAR
    if lo >= node.crossover[1] * MARGIN:
        return INVARIANT
    return CROSSOVER


def in_window(node: NodePrediction, window: tuple[float, float]) -> tuple[tuple, tuple, str, str]:
    """``(a_rates, g_rates, status, regime)`` to check on ``window``: across a crossover, the bracket of
    the two regimes' rates, with status ``bracket``."""
    which = regime(node, window)
    if which in ("", LINEAR):
        return node.a_rates, node.g_rates, node.status, which
    if which == INVARIANT:
        return node.invariant[0], node.invariant[1], node.status, which
    hull = tuple(tuple(_hull(p, q) for p, q in zip(lin, inv))
                 for lin, inv in zip((node.a_rates, node.g_rates), node.invariant))
    return hull[0], hull[1], BRACKET if node.status != NO_RULE else node.status, which


def _hull(p, q):
    if None in p or None in q:
        return (None, None)
    return (min(p[0], q[0]), max(p[1], q[1]))
