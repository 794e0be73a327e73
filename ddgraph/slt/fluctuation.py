"""Theorem 96: the singular fluctuation ``nu(k)`` of a 1D dead direction of KL order k.

With n samples and a uniform prior, the posterior on the dead line, in the renormalised coordinate
``u = n^(1/(2k)) w`` (times the model's leading coefficient, which cancels: the universality), is

    p_xi(u)  proportional to  exp(xi u^k - u^(2k) / 2),     xi ~ N(0, 1) (the data fluctuation),

and the functional variance is ``Var_{p_xi}(u^k)``. Watanabe's singular fluctuation is half its
data average, ``nu(k) = E_xi[Var_{p_xi}(u^k)] / 2``. Freezing ``xi = 0`` gives the
data-fluctuation-free component ``nu0(k)`` in closed form.

The parameter domain matters for odd k: on the full line ``u^k`` is odd and ``E_0[u^k] = 0``; on a
half-line (e.g. a mixture weight) it is not. For even k the two coincide. In the moment variable
``g = u^k`` the density is ``|g|^(1/k - 1) exp(xi g - g^2 / 2)``, whose moments are parabolic
cylinder functions: ``int_0^inf g^(a-1) exp(xi g - g^2/2) dg = Gamma(a) exp(xi^2/4) D_{-a}(-xi)``.

Two independent numerical routes to ``nu(k)``:

- :func:`nu_quadrature`: Gauss-Hermite over xi of the exact inner moments (parabolic cylinder);
- :func:`nu_monte_carlo`: finite-n Monte Carlo over data sets of the functional variance of a
  concrete power model (Bernoulli ``p(y=1 | w) = sigmoid(c w^k)`` or Gaussian ``N(c w^k, 1)``)
  with a grid posterior over w, from the full per-sample log-likelihood (no renormalisation, no
  Gaussian limit). Two different models landing on the same value is the universality check.
"""
from __future__ import annotations

import math

import attrs
import numpy as np

LINE, HALF_LINE = "line", "half-line"


def _check(k, domain):
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    if domain not in (LINE, HALF_LINE):
        raise ValueError(f"domain must be {LINE!r} or {HALF_LINE!r}, got {domain!r}")


def nu0(k: int, domain: str = LINE) -> float:
    """Closed-form data-fluctuation-free component ``Var_{p_0}(u^k) / 2``.

    With ``a = 1/(2k)``: ``E_0[u^(2k)] = 1/k`` and ``E_0[|u|^k] = sqrt(2) Gamma(a + 1/2) / Gamma(a)``,
    so ``nu0 = 1/(2k)`` for odd k on the line and ``(1/k - 2 (Gamma(a+1/2)/Gamma(a))^2) / 2``
    otherwise.

    Examples
    --------
    >>> nu0(1), round(nu0(1, "half-line"), 4)
    (0.5, 0.1817)
    """
    _check(k, domain)
    if domain == LINE and k % 2:
        return 1.0 / (2 * k)
    a = 1.0 / (2 * k)
    ratio = math.exp(math.lgamma(a + 0.5) - math.lgamma(a))
    return 0.5 * (1.0 / k - 2.0 * ratio**2)


def _moments(k, domain, xi):
    """``M_j(xi) / Gamma-free normaliser`` for j = 0, 1, 2 in the variable ``g = u^k``."""
    from scipy import special

    a = 1.0 / k
    out = []
    for j in range(3):
        v = -(a + j)
        plus = special.pbdv(v, -xi)[0]
        m = plus
        if domain == LINE and k % 2:
            m = plus + (-1) ** j * special.pbdv(v, xi)[0]
        out.append(math.gamma(a + j) * m)
    return out


def functional_variance(k: int, xi, domain: str = LINE) -> np.ndarray:
    """``Var_{p_xi}(u^k)`` for an array of data fluctuations ``xi``."""
    _check(k, domain)
    xi = np.atleast_1d(np.asarray(xi, float))
    m0, m1, m2 = _moments(k, domain, xi)
    return m2 / m0 - (m1 / m0) ** 2


def nu_quadrature(k: int, domain: str = LINE, nodes: int = 160) -> float:
    """``nu(k) = E_xi[Var_{p_xi}(u^k)] / 2`` by Gauss-Hermite quadrature over ``xi ~ N(0,1)``."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    keep = np.abs(x) <= 12.0  # beyond, the Gaussian weight is below 1e-31
    return float(0.5 * np.sum(w[keep] * functional_variance(k, x[keep], domain)) / math.sqrt(2 * math.pi))


@attrs.frozen
class MonteCarloNu:
    """Finite-n Monte Carlo estimate of ``nu`` with its standard error."""

    nu: float
    se: float
    n: int
    datasets: int
    model: str


MODELS = ("bernoulli", "gaussian")


def nu_monte_carlo(k: int, domain: str = LINE, *, model: str = "bernoulli", n: int = 10_000,
                   datasets: int = 20_000, coef: float = 1.0, grid: int = 2001, seed: int = 0,
                   chunk: int = 2000) -> MonteCarloNu:
    """Functional-variance Monte Carlo on a power model at its truth ``w = 0``.

    Data sets enter through exact draws of their sufficient statistics: for ``bernoulli``
    (``p(y=1|w) = sigmoid(g)``, ``g = coef w^k``) the count S ~ Binomial(n, 1/2), and
    ``sum_i Var_w[log p(y_i|w)] = S (Var g - 2 Cov(g, L)) + n Var L`` with ``L = log(1 + e^g)``;
    for ``gaussian`` (``N(g, 1)``) the sum S ~ N(0, n) and ``Q = sum x_i^2`` (``S^2/n`` plus an
    independent chi-square with n - 1 degrees of freedom), and the functional variance is
    ``Q Var g - S Cov(g, g^2) + n Var(g^2) / 4``. The posterior is exact on a uniform w-grid.
    ``nu`` is half the mean functional variance over data sets.
    """
    _check(k, domain)
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    rng = np.random.default_rng(seed)
    half_width = (32.0 / (math.sqrt(n) * coef)) ** (1.0 / k)  # u^k = 16 covers |xi| <= 6
    w = np.linspace(0.0 if domain == HALF_LINE else -half_width, half_width, grid)
    g = coef * w**k
    if model == "bernoulli":
        S = rng.binomial(n, 0.5, size=datasets).astype(float)
        Q = None
        loglik_base = np.logaddexp(0.0, g)
    else:
        S = rng.normal(0.0, math.sqrt(n), size=datasets)
        Q = S**2 / n + rng.chisquare(n - 1, size=datasets)
        loglik_base = 0.5 * g**2
    V = np.empty(datasets)
    for lo in range(0, datasets, chunk):
        s = S[lo:lo + chunk, None]
        logpost = s * g - n * loglik_base
        p = np.exp(logpost - logpost.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        eg, eb = p @ g, p @ loglik_base
        var_g = p @ g**2 - eg**2
        var_b = p @ loglik_base**2 - eb**2
        cov = p @ (g * loglik_base) - eg * eb
        if model == "bernoulli":
            V[lo:lo + chunk] = s[:, 0] * (var_g - 2 * cov) + n * var_b
        else:
            V[lo:lo + chunk] = Q[lo:lo + chunk] * var_g - 2 * s[:, 0] * cov + n * var_b
    return MonteCarloNu(float(V.mean() / 2), float(V.std(ddof=1) / 2 / math.sqrt(datasets)), n,
                        datasets, model)
