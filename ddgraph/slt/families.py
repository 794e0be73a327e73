"""Explicit statistical families with a population (or large-sample) Fisher and KL divergence.

A family is anything with ``dim``, ``fisher(theta)`` (a ``dim x dim`` fp64 array) and
``kl(theta)`` (the KL divergence from the truth to the model at ``theta``). Two concrete kinds:

- :class:`DensityFamily`: a log-density ``logpdf(x, theta)`` integrated on fixed quadrature nodes
  (deterministic, so the same nodes serve every point of a t-grid: common random numbers by design);
- :class:`RegressionFamily`: a mean function ``f(theta, X)`` with Gaussian noise of scale ``sigma``
  on a fixed input sample (or an exact design, e.g. ``sqrt(N) I`` for isotropic linear models), whose
  Fisher is the Gauss-Newton form ``J^T J / (n sigma^2)``;
- :class:`ClassifierFamily`: logits ``f(theta, X)`` with a categorical (softmax) noise model, whose
  Fisher is the expected Fisher ``mean_i J_i^T (diag p_i - p_i p_i^T) J_i`` (labels from the model).

Both take a torch ``nn.Module`` through ``from_module`` (theta = its parameters, flattened in
``named_parameters`` order; the module's current parameters are the truth).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch


def _as_theta(theta) -> torch.Tensor:
    return torch.as_tensor(np.asarray(theta, dtype=float), dtype=torch.float64)


def gauss_grid(lo: float = -12.0, hi: float = 12.0, n: int = 4001):
    """Trapezoid nodes and weights on ``[lo, hi]`` (spectrally accurate for Gaussian tails).

    Returns
    -------
    nodes : (n,) array; weights : (n,) array.
    """
    x = np.linspace(lo, hi, n)
    w = np.full(n, x[1] - x[0])
    w[0] = w[-1] = w[0] / 2
    return x, w


class DensityFamily:
    """A parametric density integrated on fixed quadrature nodes.

    Parameters
    ----------
    logpdf : callable ``(x, theta) -> log p(x | theta)``, torch, vectorised over the nodes ``x``.
    theta_star : a parameter whose density is the truth (a point of the singular set).
    nodes, weights : quadrature rule over the sample space (default: :func:`gauss_grid`).
    """

    def __init__(self, logpdf: Callable, theta_star, nodes=None, weights=None):
        if nodes is None:
            nodes, weights = gauss_grid()
        self.logpdf = logpdf
        self.x = torch.as_tensor(np.asarray(nodes, dtype=float))
        self.w = torch.as_tensor(np.asarray(weights, dtype=float))
        self.theta_star = np.asarray(theta_star, dtype=float)
        self.dim = self.theta_star.size
        self._logq = logpdf(self.x, _as_theta(self.theta_star)).detach()

    def scores(self, theta) -> torch.Tensor:
        """Per-node score vectors ``d log p(x_i | theta) / d theta``, shape ``(nodes, dim)``."""
        return torch.func.jacfwd(lambda th: self.logpdf(self.x, th))(_as_theta(theta))

    def fisher(self, theta) -> np.ndarray:
        """Population Fisher ``E_{p_theta}[s s^T]`` by quadrature."""
        th = _as_theta(theta)
        s = self.scores(th)
        p = torch.exp(self.logpdf(self.x, th))
        return ((self.w * p)[:, None] * s).T.mm(s).numpy()

    def kl(self, theta) -> float:
        """``KL(q || p_theta)`` as ``E_q[r - 1 - log r]``, ``r = p_theta / q``: each term >= 0."""
        delta = self.logpdf(self.x, _as_theta(theta)).detach() - self._logq
        return float(torch.sum(self.w * torch.exp(self._logq) * (torch.expm1(delta) - delta)))


class RegressionFamily:
    """Gaussian-noise regression ``y = f(theta, X) + sigma * noise`` on a fixed design ``X``.

    Parameters
    ----------
    mean : callable ``(theta, X) -> outputs`` (torch, any shape with leading sample axis).
    X : the design (torch tensor or array), reused at every theta.
    theta_star : the true parameter (a point of the singular set).
    sigma : noise scale.
    """

    def __init__(self, mean: Callable, X, theta_star, sigma: float = 1.0):
        self.mean = mean
        self.X = torch.as_tensor(X, dtype=torch.float64)
        self.theta_star = np.asarray(theta_star, dtype=float)
        self.dim = self.theta_star.size
        self.sigma = float(sigma)
        self.n = self.X.shape[0]
        self._target = mean(_as_theta(self.theta_star), self.X).detach()

    def jacobian(self, theta) -> torch.Tensor:
        """Jacobian of the flattened outputs with respect to theta, shape ``(outputs, dim)``."""
        return torch.func.jacfwd(lambda th: self.mean(th, self.X).reshape(-1))(_as_theta(theta))

    def fisher(self, theta) -> np.ndarray:
        """Per-sample Fisher ``J^T J / (n sigma^2)`` (exact for Gaussian noise)."""
        J = self.jacobian(theta)
        return (J.T.mm(J) / (self.n * self.sigma**2)).numpy()

    def kl(self, theta) -> float:
        """Per-sample KL ``mean ||f(theta) - f(theta*)||^2 / (2 sigma^2)``."""
        d = self.mean(_as_theta(theta), self.X).detach() - self._target
        return float(torch.sum(d**2) / (2 * self.n * self.sigma**2))

    @classmethod
    def from_module(cls, module: torch.nn.Module, X, sigma: float = 1.0) -> "RegressionFamily":
        """Wrap a torch module (see the module docstring)."""
        fn, theta, slices = _functional(module)
        fam = cls(fn, X, theta, sigma)
        fam.param_slices = slices
        return fam


class ClassifierFamily:
    """Softmax classifier ``y ~ Categorical(softmax(f(theta, X)))`` on a fixed design ``X``.

    Parameters
    ----------
    logits : callable ``(theta, X) -> (n, classes)`` logits (torch).
    X : the design. theta_star : the true parameter.
    """

    def __init__(self, logits: Callable, X, theta_star):
        self.logits = logits
        self.X = torch.as_tensor(X, dtype=torch.float64)
        self.theta_star = np.asarray(theta_star, dtype=float)
        self.dim = self.theta_star.size
        self.n = self.X.shape[0]
        self._logq = torch.log_softmax(logits(_as_theta(self.theta_star), self.X), -1).detach()

    def fisher(self, theta) -> np.ndarray:
        """Expected Fisher ``mean_i J_i^T (diag p_i - p_i p_i^T) J_i``."""
        th = _as_theta(theta)
        J = torch.func.jacfwd(lambda t: self.logits(t, self.X))(th)  # (n, C, d)
        p = torch.softmax(self.logits(th, self.X), -1).detach()
        pJ = torch.einsum("nc,ncd->nd", p, J)
        F = torch.einsum("nc,ncd,nce->de", p, J, J) - pJ.T.mm(pJ)
        return (F / self.n).numpy()

    def kl(self, theta) -> float:
        """Per-sample ``KL(q || p_theta)`` as ``E_q[r - 1 - log r]`` (non-negative terms)."""
        delta = torch.log_softmax(self.logits(_as_theta(theta), self.X), -1).detach() - self._logq
        return float(torch.sum(torch.exp(self._logq) * (torch.expm1(delta) - delta)) / self.n)

    @classmethod
    def from_module(cls, module: torch.nn.Module, X) -> "ClassifierFamily":
        """Wrap a torch module returning logits (see the module docstring)."""
        fn, theta, slices = _functional(module)
        fam = cls(fn, X, theta)
        fam.param_slices = slices
        return fam


def _functional(module: torch.nn.Module):
    """``(fn(theta, X), theta0, {name: slice})`` for a module's flattened parameters."""
    names, shapes = zip(*[(n, p.shape) for n, p in module.named_parameters()])
    sizes = [int(np.prod(s)) for s in shapes]

    def fn(theta, X):
        parts = torch.split(theta, sizes)
        params = {n: t.reshape(s) for n, t, s in zip(names, parts, shapes)}
        return torch.func.functional_call(module, params, (X,))

    theta = torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])
    return fn, theta.numpy(), dict(zip(names, _slices(sizes)))


def _slices(sizes):
    out, start = [], 0
    for s in sizes:
        out.append(slice(start, start + s))
        start += s
    return out
