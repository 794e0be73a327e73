"""Theorem 89's protocol (ddgraph.slt.crossing)."""
from fractions import Fraction

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ddgraph.slt import models
from ddgraph.slt.crossing import INCONSISTENT, read_crossing, rlct_from_orders
from ddgraph.slt.families import RegressionFamily


@settings(max_examples=12, deadline=None)
@given(ks=st.lists(st.integers(1, 3), min_size=2, max_size=3))
def test_toy_recovers_tuple_lambda_and_m(ks):
    fam = models.crossing_toy(ks)
    cr = read_crossing(fam, fam.theta_star, list(np.eye(len(ks))))
    assert cr.verdict == "pass" and cr.consistent
    assert list(cr.ks) == ks and cr.k_sum == sum(ks)
    assert [c.k_scan for c in cr.components] == ks
    assert cr.lam == Fraction(1, 2 * max(ks))
    assert cr.m == ks.count(max(ks))


def test_codimension_enters_lambda():
    assert rlct_from_orders([1, 1], [2, 3]) == (Fraction(1), 1)
    assert rlct_from_orders([1, 2], [2, 4]) == (Fraction(1), 2)


def test_non_crossing_is_flagged():
    # y = w1 + w2^2: one smooth component, not a crossing of {w1=0} and {w2=0}
    fam = RegressionFamily(lambda th, X: X * (th[0] + th[1] ** 2), torch.ones(1, 1, dtype=torch.float64),
                           [0.0, 0.0])
    cr = read_crossing(fam, fam.theta_star, [[1.0, 0.0], [0.0, 1.0]])
    assert not cr.consistent and cr.verdict != "pass"
    assert cr.verdict == INCONSISTENT or cr.verdict in ("not-asymptotic", "floor", "unfittable")
