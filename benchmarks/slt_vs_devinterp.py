"""Reduced-rank regression: closed-form RLCT vs ddgraph's rate reading vs devinterp's SGLD LLC.

For each (output M, input N, hidden H, true rank r) setting it reports Aoyagi-Watanabe's RLCT and
multiplicity, ddgraph's sampling-free rate-based value (:func:`ddgraph.slt.rrr.rrr_rate_rlct`) and
devinterp's local learning coefficient estimated by SGLD at the canonical true parameter, with the
wall-clock time of each method.

devinterp is optional and is not a ddgraph dependency. It pulls transformers, datasets and a newer
click, so install it in its own environment sharing the system torch::

    python -m venv --system-site-packages /tmp/devinterp-venv
    /tmp/devinterp-venv/bin/pip install devinterp
    /tmp/devinterp-venv/bin/python benchmarks/slt_vs_devinterp.py [--quick] [--json]

Without devinterp the LLC column is empty and the script says why.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings

import numpy as np
import torch

from ddgraph.slt.rrr import COMPARISON_SETTINGS, QUICK_COMPARISON_SETTINGS, aoyagi_rlct, rrr_problem, rrr_rate_rlct

MISSING = ("devinterp is not installed in this interpreter: install it in a separate venv "
           "(see this script's docstring) and run the script with that venv's python")


def devinterp_available() -> bool:
    try:
        import devinterp.optim  # noqa: F401
    except ImportError:
        return False
    return True


class _RRR(torch.nn.Module):
    def __init__(self, A, B):
        super().__init__()
        self.A = torch.nn.Parameter(torch.as_tensor(A, dtype=torch.float64).clone())
        self.B = torch.nn.Parameter(torch.as_tensor(B, dtype=torch.float64).clone())

    def forward(self, x):
        return x @ self.A.T @ self.B.T


def llc_devinterp(M, N, H, r, *, n=20_000, chains=4, steps=3000, burnin=1000, batch=1000,
                  lr=1e-4, localization=10.0, seed=0) -> dict:
    """devinterp SGLD estimate ``n beta (E_w[L_n(w)] - L_n(w*))`` at the canonical true parameter,
    ``n beta = n / log n`` (Lau et al. 2025). SGLD steps use minibatch gradients; ``L_n`` at each
    draw is the full-data loss, which removes the minibatch noise from the estimate."""
    from devinterp.optim import SGMCMC

    P = rrr_problem(M, N, H, r, seed)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, N, generator=g, dtype=torch.float64)
    C = torch.as_tensor(P.B0 @ P.A0)
    Y = X @ C.T + torch.randn(n, M, generator=g, dtype=torch.float64)

    def loss(model, idx):
        return 0.5 * ((Y[idx] - model(X[idx])) ** 2).sum(1).mean()

    nbeta = n / math.log(n)
    with torch.no_grad():
        init = float(loss(_RRR(P.A0, P.B0), slice(None)))
    per_chain = []
    for c in range(chains):
        model = _RRR(P.A0, P.B0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = SGMCMC.sgld(model.parameters(), lr=lr, localization=localization, nbeta=nbeta)
        gc = torch.Generator().manual_seed(1000 * seed + c)
        torch.manual_seed(1000 * seed + c)
        losses = []
        for s in range(steps):
            idx = torch.randint(0, n, (batch,), generator=gc)
            opt.zero_grad()
            L = loss(model, idx)
            L.backward()
            opt.step()
            if s >= burnin:
                with torch.no_grad():
                    losses.append(float(loss(model, slice(None))))
        per_chain.append(nbeta * (np.mean(losses) - init))
    return {"llc": float(np.mean(per_chain)), "llc_std": float(np.std(per_chain, ddof=1)),
            "chains": chains, "steps": steps, "burnin": burnin, "n": n, "batch": batch, "lr": lr,
            "localization": localization}


def run(settings, *, quick=False) -> dict:
    """Run all methods on each setting; returns a JSON-ready dict."""
    have = devinterp_available()
    rows = []
    for M, N, H, r in settings:
        lam, m = aoyagi_rlct(M, N, H, r)
        t0 = time.perf_counter()
        reading = rrr_rate_rlct(M, N, H, r)
        t_dd = time.perf_counter() - t0
        row = {"M": M, "N": N, "H": H, "r": r, "aoyagi_lambda": str(lam), "aoyagi_m": m,
               "ddgraph": reading.as_dict(), "ddgraph_seconds": t_dd}
        if have:
            t0 = time.perf_counter()
            row["devinterp"] = llc_devinterp(M, N, H, r, **({"steps": 1000, "burnin": 300,
                                                            "chains": 2} if quick else {}))
            row["devinterp_seconds"] = time.perf_counter() - t0
        rows.append(row)
    return {"devinterp": "available" if have else MISSING, "quick": quick, "rows": rows}


def _fmt(x):
    return "-" if x is None else x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="three settings, short chains")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    out = run(QUICK_COMPARISON_SETTINGS if args.quick else COMPARISON_SETTINGS, quick=args.quick)
    if args.json:
        print(json.dumps(out))
        return 0
    if out["devinterp"] != "available":
        print(out["devinterp"], file=sys.stderr)
    print("| M N H r | Aoyagi (lambda, m) | ddgraph | s | devinterp LLC | s |")
    for row in out["rows"]:
        dd = row["ddgraph"]
        val = dd["lambda"] if dd["lambda"] is not None else f"<= {dd['upper']} ({dd['verdict']})"
        di = row.get("devinterp")
        llc = "-" if di is None else f"{di['llc']:.2f} ± {di['llc_std']:.2f}"
        print(f"| {row['M']} {row['N']} {row['H']} {row['r']} | {row['aoyagi_lambda']}, "
              f"{row['aoyagi_m']} | {val}, m={_fmt(dd['m'])} | {row['ddgraph_seconds']:.2f} | "
              f"{llc} | "
              f"{row.get('devinterp_seconds', float('nan')):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
