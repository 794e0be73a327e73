"""The operational selection rule on spectra (ddgraph.slt.selection)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddgraph.slt import models
from ddgraph.slt.selection import REACH_EXCEEDED, fisher_sweep, select_transversal

TS = np.geomspace(1e-3, 1e-2, 5)


def spectra(powers, consts=None, ts=TS):
    consts = np.ones(len(powers)) if consts is None else consts
    return [[c * t**p for c, p in zip(consts, powers)] for t in ts]


def test_classifies_and_selects():
    ts = np.geomspace(1e-2, 1e-1, 5)
    sel = select_transversal(ts, spectra([2, 4, 0, -1], ts=ts), k=3)
    kinds = {r.rank: r.kind for r in sel.ranks}
    assert sel.verdict == "pass" and sel.k == 3
    assert sel.lambda_contribution == pytest.approx(1 / 6)
    assert sorted(kinds.values()) == ["decaying", "growing", "non-degenerate", "transversal"]


def test_no_match_is_reach_exceeded():
    sel = select_transversal(TS, spectra([2, 0]), k=3)
    assert sel.verdict == REACH_EXCEEDED and sel.k is None and "closest" in sel.reason


def test_floor_ranks_are_excluded():
    # a slope-4 rank sitting below 1e-12 of the largest eigenvalue must not be selected
    sel = select_transversal(TS, spectra([4, 0], consts=[1e-6, 1.0]), k=3)
    assert sel.ranks[0].kind == "floor" and sel.verdict == REACH_EXCEEDED


def test_fibre_information_blocks_tangential_ranks():
    vecs = [np.eye(2)] * len(TS)
    blind = select_transversal(TS, spectra([2, 0]), k=2)
    informed = select_transversal(TS, spectra([2, 0]), k=2, eigvecs=vecs, normal_basis=[[0.0], [1.0]])
    assert blind.verdict == "pass"
    assert informed.verdict == REACH_EXCEEDED and informed.ranks[0].kind == "tangential"


def test_local_rlct_with_normal_basis():
    vecs = [np.eye(3)] * len(TS)
    sel = select_transversal(TS, spectra([2, 0, 0]), k=2, eigvecs=vecs, normal_basis=np.eye(3))
    assert sel.local_rlct == pytest.approx(2 / 2 + 1 / 4)


def test_without_prediction_needs_integer_order():
    assert select_transversal(TS, spectra([4, 0])).k == 3
    assert select_transversal(TS, spectra([1.5, 0])).verdict == REACH_EXCEEDED


def test_target_rate_for_kfac_ladders():
    sel = select_transversal(TS, spectra([6, 4, 2, 0]), target=4.0)
    assert sel.ranks[sel.transversal].fit.slope == pytest.approx(4.0)


def test_shape_errors():
    with pytest.raises(ValueError):
        select_transversal(TS[:3], spectra([2, 0]))


@settings(max_examples=25, deadline=None)
@given(powers=st.lists(st.sampled_from([0, 2, 4, 6]), min_size=2, max_size=5, unique=True),
       seed=st.integers(0, 1000))
def test_selected_rank_carries_the_target(powers, seed):
    rng = np.random.default_rng(seed)
    consts = rng.uniform(0.5, 2.0, len(powers))
    target = rng.choice(powers)
    ts = np.geomspace(3e-2, 3e-1, 5)  # keeps t^6 above the 1e-12 relative floor
    sel = select_transversal(ts, spectra(powers, consts, ts), target=float(target))
    assert sel.verdict == "pass"
    assert abs(sel.ranks[sel.transversal].fit.slope - target) < 1e-6


def test_gmm_merge_spectrum():
    fam, d = models.gmm2_merge(0.3)
    d = d / np.linalg.norm(d)
    sp, _ = fisher_sweep(fam, lambda t: fam.theta_star + t * d, TS)
    sel = select_transversal(TS, sp, k=2)
    assert sel.verdict == "pass" and sel.kinds() == {"transversal": 1, "non-degenerate": 1}


def test_weight_boundary_no_recovery_with_fibre():
    fam, approach, _, normals = models.weight_boundary(1.0)
    sp, vecs = fisher_sweep(fam, lambda t: fam.theta_star + t * approach, TS)
    sel = select_transversal(TS, sp, k=2, eigvecs=vecs, normal_basis=normals)
    assert sel.verdict == REACH_EXCEEDED
    assert "tangential" in [r.kind for r in sel.ranks]
