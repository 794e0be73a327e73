"""The paper's worked cases, each run end to end and returned as plain rows (dicts).

Every row carries what the theory predicts, what ddgraph measured and the verdict; the report
(:mod:`ddgraph.slt.report`), the examples and the tests all read these rows.
"""
from __future__ import annotations

import itertools

import numpy as np

from ddgraph.slt import models
from ddgraph.slt.crossing import read_crossing, rlct_from_orders
from ddgraph.slt.direction import read_direction, unit
from ddgraph.slt.fluctuation import HALF_LINE, LINE, nu0, nu_monte_carlo, nu_quadrature
from ddgraph.slt.rrr import aoyagi_rlct, dead_unit_direction, rrr_problem, rrr_rate_rlct
from ddgraph.slt.selection import fisher_sweep, select_transversal

TS = tuple(np.geomspace(2e-3, 2e-2, 6))


def _slope(fit):
    return round(fit.slope, 4) + 0.0  # + 0.0: no '-0.0'


def fisher_kl_ratio(reading) -> float | None:
    """``I(t) / KL''(t)`` at the smallest t, with ``KL'' = 2k(2k-1) KL / t^2`` for ``KL ~ t^(2k)``.

    The score expansion gives ``I ~ k^2 E[l_k^2] t^(2k-2)`` and ``KL ~ E[l_k^2] t^(2k) / 2``, so the
    ratio is ``k / (2k - 1)`` for every family: 1 only in the regular case (Fisher = KL Hessian).
    """
    k = reading.k
    if k is None:
        return None
    i = int(np.argmin(reading.ts))
    t = reading.ts[i]
    return round(float(reading.fisher[i] * t**2 / (2 * k * (2 * k - 1) * reading.kl[i])), 4)


def gaussian_dead_direction(ks=(1, 2, 3)) -> list[dict]:
    """paper §4.2: ``N(theta^k, 1)``; Fisher slope ``2k - 2``, RLCT contribution ``1/(2k)``."""
    rows = []
    for k in ks:
        fam = models.gaussian_power(k)
        r = read_direction(fam, fam.theta_star, [1.0], ts=TS)
        rows.append({"k": k, "predicted_slope": 2 * k - 2, "fisher_slope": _slope(r.fisher_fit),
                     "kl_slope": _slope(r.kl_fit), "k_measured": r.k_measured,
                     "lambda": r.lambda_contribution, "verdict": r.verdict,
                     "fisher_kl_ratio": fisher_kl_ratio(r)})
    return rows


def dead_unit_network(depths=(2, 3), acts=("linear", "relu")) -> list[dict]:
    """paper §4.3: a dead hidden unit moved through every layer; KL order = depth."""
    rows = []
    for depth in depths:
        for act in acts:
            fam, v = models.dead_unit_net(depth, act)
            r = read_direction(fam, fam.theta_star, v, ts=TS, k=depth)
            rows.append({"depth": depth, "act": act, "k": depth, "predicted_slope": 2 * depth - 2,
                         "fisher_slope": _slope(r.fisher_fit), "kl_slope": _slope(r.kl_fit),
                         "k_measured": r.k_measured, "lambda": r.lambda_contribution,
                         "verdict": r.verdict})
    return rows


def _spectrum_row(name, fam, theta0, d, k, ts=TS, normal_basis=None):
    d = unit(d)
    r = read_direction(fam, theta0, d, ts=ts)
    spectra, vecs = fisher_sweep(fam, lambda t: theta0 + t * d, ts)
    sel = select_transversal(ts, spectra, k=k, eigvecs=None if normal_basis is None else vecs,
                             normal_basis=normal_basis)
    slope = None if sel.transversal is None else _slope(sel.ranks[sel.transversal].fit)
    return {"family": name, "true_k": k, "true_lambda": 1 / (2 * k), "direction_kl_order": r.k,
            "fisher_kl_ratio": fisher_kl_ratio(r),
            "direction_fisher_slope": _slope(r.fisher_fit), "transversal_slope": slope,
            "k": sel.k, "lambda": sel.lambda_contribution, "local_rlct": sel.local_rlct,
            "kinds": sel.kinds(), "verdict": sel.verdict}


def table8() -> list[dict]:
    """Table 8: selection-rule recovery on the mixture merges and deep-linear RRR.

    The mixture merges (fixed weights) are isolated singular points, so the whole space is normal
    and the selection also returns Theorem 3 (c)'s local RLCT ``n_nd / 2 + 1 / (2k)``.
    """
    rows = []
    fam, d = models.gmm2_merge(0.3)
    rows.append(_spectrum_row("2-component Gaussian mixture (merge, w=0.3)", fam, fam.theta_star, d,
                              2, normal_basis=np.eye(2)))
    fam, d = models.gmm3_pair_merge()
    rows.append(_spectrum_row("3-component Gaussian mixture (one-pair merge)", fam, fam.theta_star,
                              d, 2, normal_basis=np.eye(3)))
    P = rrr_problem(4, 4, 3, 1)
    rows.append(_spectrum_row("reduced-rank regression (deep linear L=2, M=N=4, H=3, r=1)",
                              P.family, P.family.theta_star, dead_unit_direction(P), 2))
    fam, d = models.dead_unit_net(3, "linear")
    rows.append(_spectrum_row("deep linear L=3 (dead unit through both hidden layers)",
                              fam, fam.theta_star, d, 3))
    fam, d = models.dead_unit_net(3, "linear", width=6, d_in=5, d_out=3)
    rows.append(_spectrum_row("deep linear L=3, dead unit absorbable (live rank = output dim): "
                              "assumption (ii) fails", fam, fam.theta_star, d, 3))
    return rows


def weight_boundary(mu: float = 1.0) -> dict:
    """paper §6 part (a): the vanishing component's mean is tangential; the rule must not claim k."""
    fam, approach, direction, normals = models.weight_boundary(mu)
    theta0 = fam.theta_star
    r = read_direction(fam, theta0, direction, approach=approach, ts=TS)
    out = {"mu": mu, "direction_verdict": r.verdict, "direction_reason": r.reason,
           "mu2_fisher_slope": _slope(r.fisher_fit), "windows": []}
    for lo, hi in ((1e-3, 1e-2), (1e-6, 1e-5)):
        ts = np.geomspace(lo, hi, 5)
        spectra, vecs = fisher_sweep(fam, lambda t: theta0 + t * approach, ts)
        with_fibre = select_transversal(ts, spectra, k=2, eigvecs=vecs, normal_basis=normals)
        blind = select_transversal(ts, spectra, k=2)
        out["windows"].append({
            "window": (lo, hi), "slopes": [_slope(x.fit) for x in with_fibre.ranks],
            "kinds": [x.kind for x in with_fibre.ranks],
            "with_fibre": with_fibre.verdict, "with_fibre_k": with_fibre.k,
            "without_fibre": blind.verdict, "without_fibre_k": blind.k})
    return out


def crossings(tuples=((1, 1), (1, 2), (2, 1), (2, 2), (1, 3), (2, 3), (3, 3), (1, 2, 3),
                      (2, 2, 1))) -> list[dict]:
    """Theorem 89 on the toy ``y = prod w_i^{k_i}``: recovered tuple, consistency, lambda, m."""
    rows = []
    for ks in tuples:
        fam = models.crossing_toy(ks)
        cr = read_crossing(fam, fam.theta_star, list(np.eye(len(ks))))
        lam, m = rlct_from_orders(ks)
        rows.append({"true_ks": tuple(ks), "ks": cr.ks, "k_sum": cr.k_sum,
                     "scan_ks": tuple(c.k_scan for c in cr.components),
                     "generic_slope": _slope(cr.generic), "predicted_generic": 2 * sum(ks) - 2,
                     "lambda": str(cr.lam), "true_lambda": str(lam), "m": cr.m, "true_m": m,
                     "consistent": cr.consistent, "verdict": cr.verdict})
    return rows


def fluctuation(ks=(1, 2, 3, 4, 5, 6), *, datasets: int = 20_000, domains=(LINE, HALF_LINE),
                models_=("bernoulli",)) -> list[dict]:
    """Theorem 96: nu0 closed form, nu by quadrature and by finite-n Monte Carlo.

    ``agree`` is ``|MC - quadrature| <= 3 se + 1e-3`` (the last term allows the O(1/n) finite-n
    bias of the Monte Carlo at n = 10^4).
    """
    rows = []
    for domain in domains:
        for k in ks:
            q = nu_quadrature(k, domain)
            for model in models_:
                mc = nu_monte_carlo(k, domain, model=model, datasets=datasets, seed=k)
                rows.append({"k": k, "domain": domain, "model": model,
                             "nu0": round(nu0(k, domain), 5), "nu_quadrature": round(q, 5),
                             "nu_mc": round(mc.nu, 4), "nu_mc_se": float(mc.se),
                             "diff": round(mc.nu - q, 4),
                             "agree": abs(mc.nu - q) <= 3 * mc.se + 1e-3})
    return rows


def rrr(settings=((1, 1, 1, 0), (2, 2, 1, 0), (3, 3, 2, 1), (3, 4, 2, 1), (4, 3, 3, 2),
                  (3, 3, 2, 2), (5, 5, 2, 1), (4, 4, 3, 1), (3, 3, 3, 0))) -> list[dict]:
    """Aoyagi-Watanabe vs ddgraph's rate-based RLCT on reduced-rank regression."""
    rows = []
    for s in settings:
        lam, m = aoyagi_rlct(*s)
        r = rrr_rate_rlct(*s)
        rows.append({"setting": s, "aoyagi_lambda": str(lam), "aoyagi_m": m,
                     "lambda": None if r.lam is None else str(r.lam), "m": r.m,
                     "upper": None if r.upper is None else str(r.upper), "d_nd": r.d_nd,
                     "verdict": r.verdict})
    return rows


def rrr_grid(max_dim: int = 5) -> dict:
    """Every (M, N, H, r) with dimensions up to ``max_dim``: how often ddgraph's reading (the
    exact value in reach, the upper bound beyond) equals Aoyagi-Watanabe's lambda (and m in reach),
    and whether any upper bound falls below it (impossible unless something is wrong)."""
    out = {"settings": 0, "in_reach": 0, "exact_in_reach": 0, "bounds": 0, "bound_attained": 0,
           "bound_violated": [], "mismatch": []}
    for M, N, H in itertools.product(range(1, max_dim + 1), repeat=3):
        for r in range(min(M, N, H) + 1):
            lam, m = aoyagi_rlct(M, N, H, r)
            R = rrr_rate_rlct(M, N, H, r)
            out["settings"] += 1
            if R.lam is not None:
                out["in_reach"] += 1
                if (R.lam, R.m) == (lam, m):
                    out["exact_in_reach"] += 1
                else:
                    out["mismatch"].append((M, N, H, r))
            elif R.upper is not None:
                out["bounds"] += 1
                out["bound_attained"] += R.upper == lam
                if R.upper < lam:
                    out["bound_violated"].append((M, N, H, r))
            else:
                out["mismatch"].append((M, N, H, r))
    return out
