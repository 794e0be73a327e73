"""Theorem 2 on your own family: KL order and Fisher rate of a direction, then the RLCT contribution.

Run: python examples/slt_dead_direction.py
"""
import math

import numpy as np
import torch

from ddgraph.slt import models
from ddgraph.slt.direction import read_direction
from ddgraph.slt.families import DensityFamily


def main():
    # 1. the paper's §4.2 family N(theta^k, 1), for k = 1, 2, 3
    for k in (1, 2, 3):
        fam = models.gaussian_power(k)
        r = read_direction(fam, [0.0], [1.0])
        print(f"N(theta^{k}, 1): Fisher slope {r.fisher_fit.slope:.3f} (predicted {2 * k - 2}), "
              f"KL order {r.k_measured}, 1/(2k) = {r.lambda_contribution:.4f}, {r.verdict}")

    # 2. any log-density: a Gaussian whose mean (theta^2) and variance (1 + theta^4) are linked
    def logpdf(x, th):
        mean, var = th[0] ** 2, 1 + th[0] ** 4
        return -0.5 * (x - mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)

    fam = DensityFamily(logpdf, [0.0])
    r = read_direction(fam, [0.0], [1.0])
    print(f"linked mean/variance: KL slope {r.kl_fit.slope:.3f}, Fisher slope "
          f"{r.fisher_fit.slope:.3f}, k = {r.k}, verdict {r.verdict}")

    # 3. the paper §4.3 dead unit of a two-layer ReLU network (a torch model with Gaussian noise)
    fam, v = models.dead_unit_net(2, "relu")
    r = read_direction(fam, fam.theta_star, v)
    print(f"dead ReLU unit: Fisher slope {r.fisher_fit.slope:.3f}, k = {r.k}, {r.verdict}")

    # 4. a direction inside the singular set has no KL order (paper §6 part (a))
    fam, approach, direction, _ = models.weight_boundary(1.0)
    r = read_direction(fam, fam.theta_star, direction, approach=approach)
    print(f"weight boundary, vanishing component's mean: {r.verdict} ({r.reason})")
    print("local slopes of its Fisher entry:", np.round(r.fisher_fit.local_slopes, 3))


if __name__ == "__main__":
    main()
