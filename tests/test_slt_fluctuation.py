"""Singular fluctuation nu(k) (ddgraph.slt.fluctuation)."""
import math

import numpy as np
import pytest
from scipy import integrate

from ddgraph.slt.fluctuation import HALF_LINE, LINE, functional_variance, nu0, nu_monte_carlo, nu_quadrature


def direct_variance(k, xi, domain):
    """Var(u^k) under exp(xi u^k - u^(2k)/2) by adaptive quadrature in u (independent route)."""
    lo = 0.0 if domain == HALF_LINE else -np.inf
    f = lambda u, j: u ** (k * j) * math.exp(xi * u**k - u ** (2 * k) / 2)
    m = [integrate.quad(f, lo, np.inf, args=(j,), epsabs=0, epsrel=1e-11, limit=200)[0]
         for j in range(3)]
    return m[2] / m[0] - (m[1] / m[0]) ** 2


@pytest.mark.parametrize("k,xi,domain", [(1, 0.7, LINE), (2, -1.3, LINE), (3, 2.0, LINE),
                                         (3, 0.5, HALF_LINE), (4, -0.4, HALF_LINE)])
def test_functional_variance_matches_direct_integration(k, xi, domain):
    assert functional_variance(k, xi, domain)[0] == pytest.approx(direct_variance(k, xi, domain),
                                                                  rel=1e-7)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("domain", [LINE, HALF_LINE])
def test_nu0_is_the_variance_at_zero_fluctuation(k, domain):
    assert nu0(k, domain) == pytest.approx(direct_variance(k, 0.0, domain) / 2, rel=1e-7)


def test_regular_anchor():
    assert nu_quadrature(1, LINE) == pytest.approx(0.5, abs=1e-9)


def test_data_average_exceeds_data_free_beyond_k1():
    for k in (2, 3):
        assert nu_quadrature(k, LINE) > nu0(k, LINE) + 0.02


def test_quadrature_converged():
    assert nu_quadrature(3, LINE, nodes=100) == pytest.approx(nu_quadrature(3, LINE, nodes=240),
                                                              rel=1e-6)


@pytest.mark.parametrize("model", ["bernoulli", "gaussian"])
def test_monte_carlo_agrees_with_quadrature(model):
    mc = nu_monte_carlo(2, LINE, model=model, datasets=3000, seed=1)
    assert abs(mc.nu - nu_quadrature(2, LINE)) <= 4 * mc.se + 2e-3


def test_bad_arguments():
    with pytest.raises(ValueError):
        nu0(0)
    with pytest.raises(ValueError):
        nu0(2, "circle")
    with pytest.raises(ValueError):
        nu_monte_carlo(2, model="cauchy")
