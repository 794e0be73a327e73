"""Watanabe's triple without sampling: (lambda, m) from Theorem 89, nu from Theorem 96,
and reduced-rank regression against Aoyagi-Watanabe's closed form.

Run: python examples/slt_watanabe_triple.py
"""
import numpy as np

from ddgraph.slt import models
from ddgraph.slt.crossing import read_crossing
from ddgraph.slt.fluctuation import nu0, nu_monte_carlo, nu_quadrature
from ddgraph.slt.rrr import aoyagi_rlct, rrr_rate_rlct


def main():
    for ks in ((1, 2), (2, 2), (1, 2, 3)):
        fam = models.crossing_toy(ks)
        cr = read_crossing(fam, fam.theta_star, list(np.eye(len(ks))))
        print(f"crossing {ks}: read {cr.ks}, generic slope {cr.generic.slope:.3f}, "
              f"lambda = {cr.lam}, m = {cr.m}, {cr.verdict}")
    for k in (1, 2, 3):
        mc = nu_monte_carlo(k, datasets=5000)
        print(f"nu({k}): data-free {nu0(k):.4f}, quadrature {nu_quadrature(k):.4f}, "
              f"Monte Carlo {mc.nu:.4f} ± {mc.se:.4f}")
    for s in ((3, 3, 2, 1), (3, 4, 2, 1), (4, 4, 3, 1)):
        R = rrr_rate_rlct(*s)
        print(f"RRR M,N,H,r={s}: Aoyagi {aoyagi_rlct(*s)}, ddgraph lambda={R.lam} m={R.m} "
              f"upper={R.upper} ({R.verdict})")


if __name__ == "__main__":
    main()
