"""Theorem 2 readings on explicit families (ddgraph.slt.direction)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ddgraph.slt import models
from ddgraph.slt.direction import TANGENTIAL, read_direction
from ddgraph.slt.families import DensityFamily


@pytest.mark.parametrize("k", [1, 2, 3])
def test_gaussian_power_slopes_and_prefactor(k):
    fam = models.gaussian_power(k)
    r = read_direction(fam, [0.0], [1.0])
    assert r.verdict == "pass"
    assert abs(r.fisher_fit.slope - (2 * k - 2)) < 1e-3
    assert abs(r.kl_fit.slope - 2 * k) < 1e-3
    assert r.k == r.k_measured == r.k_from_fisher == k
    assert r.lambda_contribution == pytest.approx(1 / (2 * k))
    # Fisher of N(theta^k, 1) is (d theta^k / d theta)^2 = k^2 theta^(2k-2); KL is theta^(2k)/2
    t = r.ts[0]
    assert r.fisher[0] == pytest.approx(k**2 * t ** (2 * k - 2), rel=1e-6)
    assert r.kl[0] == pytest.approx(t ** (2 * k) / 2, rel=1e-6)


@settings(max_examples=8, deadline=None)
@given(k=st.integers(1, 4), a=st.floats(0.3, 3.0))
def test_order_independent_of_coefficient(k, a):
    fam = DensityFamily(lambda x, th: -0.5 * (x - a * th[0] ** k) ** 2 - 0.5 * math.log(2 * math.pi),
                        [0.0])
    r = read_direction(fam, [0.0], [1.0], ts=np.geomspace(5e-3, 3e-2, 5))
    assert r.k_measured == k and r.verdict == "pass"


def test_wrong_prediction_fails():
    fam = models.gaussian_power(2)
    r = read_direction(fam, [0.0], [1.0], k=3)
    assert r.verdict == "fail" and "differs" in r.reason


def test_weight_boundary_mean_is_tangential():
    fam, approach, direction, _ = models.weight_boundary(1.0)
    r = read_direction(fam, fam.theta_star, direction, approach=approach)
    assert r.verdict == TANGENTIAL
    assert r.k is None and r.lambda_contribution is None


def test_approach_other_than_direction_gives_no_rule():
    fam, d = models.gmm2_merge(0.3)
    r = read_direction(fam, fam.theta_star, d, approach=[1.0, 1.0])
    assert r.verdict == "no-rule" and r.predicted_rate is None


def test_dead_unit_relu_network():
    fam, v = models.dead_unit_net(2, "relu", n=500)
    r = read_direction(fam, fam.theta_star, v)
    assert r.verdict == "pass" and r.k_measured == 2


def test_from_module_matches_manual_fisher():
    net = torch.nn.Linear(3, 2, bias=False, dtype=torch.float64)
    X = torch.randn(50, 3, dtype=torch.float64)
    from ddgraph.slt.families import RegressionFamily
    fam = RegressionFamily.from_module(net, X, sigma=2.0)
    # y = W x: the Fisher over vec(W) (row-major) is kron(I, X^T X / n) / sigma^2
    expect = np.kron(np.eye(2), (X.T @ X / 50).numpy()) / 4.0
    assert np.allclose(fam.fisher(fam.theta_star), expect)


def test_classifier_dead_unit_cross_entropy():
    """Expected-Fisher cross-entropy: a dead hidden unit of a 2-layer tanh classifier has k = 2."""
    from ddgraph.slt.families import ClassifierFamily
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False), torch.nn.Tanh(),
                              torch.nn.Linear(3, 5, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.randn(3, 4, generator=g, dtype=torch.float64))
        net[2].weight.copy_(torch.randn(5, 3, generator=g, dtype=torch.float64))
        net[0].weight[-1] = 0
        net[2].weight[:, -1] = 0
    X = torch.randn(400, 4, generator=g, dtype=torch.float64)
    fam = ClassifierFamily.from_module(net, X)
    assert fam.param_slices["2.weight"] == slice(12, 27)
    w0 = np.zeros((3, 4))
    w0[-1] = np.random.default_rng(0).standard_normal(4)
    w2 = np.zeros((5, 3))
    w2[:, -1] = np.random.default_rng(1).standard_normal(5)
    d = np.concatenate([w0.ravel(), w2.ravel()])
    r = read_direction(fam, fam.theta_star, d)
    assert r.k_measured == 2 and r.verdict == "pass"
    # at the truth the Fisher is the Hessian of the KL: v^T F v = lim 2 KL(theta* + h v) / h^2
    v = np.random.default_rng(2).standard_normal(fam.dim)
    h = 1e-4
    assert v @ fam.fisher(fam.theta_star) @ v == pytest.approx(
        2 * fam.kl(fam.theta_star + h * v) / h**2, rel=1e-3)


@pytest.mark.parametrize("weight", [0.2, 0.5])
def test_fisher_is_not_the_kl_hessian_on_a_dead_direction(weight):
    from ddgraph.slt.cases import fisher_kl_ratio
    fam, d = models.gmm2_merge(weight)
    r = read_direction(fam, fam.theta_star, d)
    assert r.k == 2
    assert fisher_kl_ratio(r) == pytest.approx(2 / 3, abs=2e-3)
