"""Singular learning theory from Fisher rates, without posterior sampling.

Modules, one job each:

- :mod:`~ddgraph.slt.families`: explicit families (log-density on quadrature nodes; torch mean
  function or ``nn.Module`` with Gaussian noise) exposing a population Fisher and KL;
- :mod:`~ddgraph.slt.direction`: Theorem 2 on one direction (KL order, Fisher rate, verdict,
  RLCT contribution ``1/(2k)``, tangential detection);
- :mod:`~ddgraph.slt.selection`: the selection rule on any spectrum sweep
  (``select_transversal(ts, spectra, k=..., target=...)``, also for K-FAC spectra);
- :mod:`~ddgraph.slt.crossing`: Theorem 89's protocol, ``(k_i)``, ``lambda`` and ``m``;
- :mod:`~ddgraph.slt.fluctuation`: the singular fluctuation ``nu(k)`` (closed-form data-free
  part, quadrature and Monte Carlo);
- :mod:`~ddgraph.slt.rrr`: reduced-rank regression, Aoyagi-Watanabe vs the rate reading;
- :mod:`~ddgraph.slt.models`, :mod:`~ddgraph.slt.cases`: the paper's worked families and cases;
- :mod:`~ddgraph.slt.report`, :mod:`~ddgraph.cli.slt`: ``ddgraph slt report`` (docs/SLT.md).
"""
from ddgraph.slt.crossing import read_crossing, rlct_from_orders
from ddgraph.slt.direction import read_direction
from ddgraph.slt.families import DensityFamily, RegressionFamily
from ddgraph.slt.fluctuation import nu0, nu_monte_carlo, nu_quadrature
from ddgraph.slt.rrr import aoyagi_rlct, rrr_rate_rlct
from ddgraph.slt.selection import select_transversal

__all__ = ["DensityFamily", "RegressionFamily", "aoyagi_rlct", "nu0", "nu_monte_carlo",
           "nu_quadrature", "read_crossing", "read_direction", "rlct_from_orders",
           "rrr_rate_rlct", "select_transversal"]
