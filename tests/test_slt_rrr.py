"""Reduced-rank regression: closed form vs rate reading (ddgraph.slt.rrr)."""
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ddgraph.slt.rrr import UPPER_BOUND, aoyagi_rlct, rrr_rate_rlct

dims = st.integers(1, 5)


@settings(max_examples=60, deadline=None)
@given(M=dims, N=dims, H=dims, r=st.integers(0, 5))
def test_aoyagi_bounds(M, N, H, r):
    assume(r <= min(H, M, N))
    lam, m = aoyagi_rlct(M, N, H, r)
    assert 0 < lam <= Fraction(min(H * (M + N), M * N), 2) or (lam == 0 and r == 0 and False)
    assert m in (1, 2)
    # the true rank-r matrices form a smooth set of dimension r(M+N-r): lambda is at least half it
    assert lam >= Fraction(r * (M + N - r), 2)


@settings(max_examples=30, deadline=None)
@given(M=dims, N=dims, H=dims)
def test_aoyagi_full_rank_teacher_is_regular(M, N, H):
    assume(H <= min(M, N))
    assert aoyagi_rlct(M, N, H, H) == (Fraction(H * (M + N - H), 2), 1)


def test_invalid_rank():
    with pytest.raises(ValueError):
        aoyagi_rlct(2, 2, 1, 2)


@settings(max_examples=10, deadline=None)
@given(M=st.integers(1, 4), N=st.integers(1, 4), r=st.integers(0, 3), dead=st.integers(0, 1))
def test_rate_reading_equals_closed_form_in_reach(M, N, r, dead):
    assume(r <= min(M, N))
    H = r + dead
    assume(H >= 1)
    R = rrr_rate_rlct(M, N, H, r)
    assert R.verdict == "pass"
    assert R.d_nd == r * (M + N - r)
    assert (R.lam, R.m) == aoyagi_rlct(M, N, H, r)


@pytest.mark.parametrize("setting", [(4, 4, 3, 1), (3, 3, 3, 0), (2, 5, 4, 1)])
def test_interacting_dead_units_give_an_upper_bound(setting):
    R = rrr_rate_rlct(*setting)
    assert R.verdict == UPPER_BOUND and R.lam is None and R.m is None
    assert R.upper >= aoyagi_rlct(*setting)[0]
