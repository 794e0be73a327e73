"""Probe cost, measured in one run: per t-point vs a bare forward+backward, vs curvlinops' K-FAC,
on an MLP and a GPT-2-style transformer, how it grows with width, depth and samples, and peak memory
as the sample count grows tenfold.

MLP: depth 6, width 64, ReLU, fp64, 20,000 Gaussian samples, 2 threads. Targets: probe per t-point /
curvlinops' KFACLinearOperator (empirical Fisher) <= 0.75; peak memory flat in the sample count.
Transformer: transformers' GPT-2 (4 blocks, width 256, vocabulary 1024, 3.4M parameters), fp64,
``--lm-samples`` sequences of 6 tokens (a comma-separated list measures each count; default 256 and 2048),
a 5-point sweep; target: probe per t-point / bare forward+backward <= 1.3. A t-point has a part that does
not grow with the sample (the factors' observables), so the ratio falls as the sample grows: docs/SCALING.md
gives where it crosses 1.3.
curvlinops' K-FAC does not take GPT-2's Conv1D layers, so GPT-2 has no curvlinops column; transformers'
GPT-Neo is the same architecture with nn.Linear layers (same sizes, global attention in every block) and
has one (every linear weight, one loss term per token, empirical Fisher). ``--repeat 0`` skips the MLP.

The references and the probe take turns (interleaved, ``--repeat`` rounds; each probe round sweeps a
pinned grid and gives its median per t-point, the first t-point left out); ratios are of medians, wall and process CPU (CPU time
does not count waiting for a busy machine).

curvlinops is a benchmark-only dependency. Install it without letting pip replace torch:
    pip install --no-deps curvlinops-for-pytorch backpack-for-pytorch einops linear_operator \\
        unfoldNd einconv opt-einsum

    python benchmarks/probe_overhead.py [--samples 20000] [--lm-samples 256,2048] [--lm-archs gpt2,gpt-neo]
                                        [--threads 2] [--repeat 5]
                                        [--scaling] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

import ddgraph
from ddgraph.models.zoo import chain

DEPTH, WIDTH = 6, 64
#: a pinned sweep as long as a typical adaptive one; the first t-point (which computes every block) is
#: not in the per-t-point median, the last (which recomputes every carried block to verify it) is
GRID = [10.0 ** (-2 - k / 2) for k in range(7)]


def timed(fn) -> tuple[float, float]:
    """Wall and process-CPU seconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def interleaved(runs: dict, repeat: int) -> dict:
    """``{name: (median wall, median cpu)}`` of callables run in turn ``repeat`` times after a warm-up.
    A callable with a ``last`` attribute reports its own ``(wall, cpu)`` there (the probe's per-t-point
    medians, which leave out its first t-point: it needs no warm-up)."""
    for fn in runs.values():
        if not hasattr(fn, "last"):
            fn()
    out = {name: ([], []) for name in runs}
    for _ in range(repeat):
        for name, fn in runs.items():
            t = timed(fn)
            own = fn.last if hasattr(fn, "last") else None
            w, c = own if own is not None else t
            out[name][0].append(w)
            out[name][1].append(c)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in out.items()}


def bare_pass(model, x, y):
    def step():
        model.zero_grad(set_to_none=True)
        loss = 0.5 * ((model(x) - y) ** 2).sum() / x.shape[0]
        loss.backward()
    return step


def bare_lm_pass(model, ids, labels):
    def step():
        model.zero_grad(set_to_none=True)
        logits = model(ids)
        logits = getattr(logits, "logits", logits)  # a transformers output, or the logits themselves
        nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)).backward()
    return step


def curvlinops_kfac(model, loss, params, x, y, terms: int = 1):
    """One computation of curvlinops' K-FAC factors (empirical Fisher) on ``(x, y)``, ``terms`` loss terms
    per example; None when curvlinops is not installed."""
    try:
        from curvlinops import KFACLinearOperator
    except ImportError:
        return None

    def step():
        op = KFACLinearOperator(model, loss, params, [(x, y)], fisher_type="empirical", check_deterministic=False,
                                num_data=x.shape[0], num_per_example_loss_terms=terms)
        op.compute_kronecker_factors()
    return step


class ProbeRun:
    """One probe sweep over ``grid``; ``last`` holds its median (wall, cpu) seconds per t-point."""

    def __init__(self, model, example, n, chunk, grid=GRID):
        self.model, self.example, self.n, self.chunk, self.grid, self.last = model, example, n, chunk, grid, None

    def __call__(self):
        m = ddgraph.probe(self.model, self.example, n_samples=self.n, chunk=self.chunk, grid=self.grid,
                          progress=False)
        self.last = (m.seconds_per_t, m.cpu_seconds_per_t)


def mlp_case(n: int, repeat: int, depth: int = DEPTH, width: int = WIDTH, with_curvlinops: bool = True) -> dict:
    torch.manual_seed(0)
    model = chain(depth, "relu", width=width).double()
    x = torch.randn(n, width, dtype=torch.float64)
    y = torch.randn(n, width, dtype=torch.float64)
    runs = {"bare": bare_pass(model, x, y),
            "probe": ProbeRun(chain(depth, "relu", width=width), x[:4].float(), n, n)}
    kfac = curvlinops_kfac(model, nn.MSELoss(reduction="sum"), [p for p in model.parameters() if p.requires_grad],
                           x, y) if with_curvlinops else None
    if kfac:
        runs["curvlinops"] = kfac
    return interleaved(runs, repeat)


def gpt2_model(layers: int = 4, width: int = 256, heads: int = 4, vocab: int = 1024):
    from ddgraph.models.architectures import gpt2_small
    return gpt2_small(layers=layers, width=width, heads=heads, vocab=vocab)


def gpt_neo_model(layers: int = 4, width: int = 256, heads: int = 4, vocab: int = 1024):
    """transformers' GPT-Neo, GPT-2's architecture with ``nn.Linear`` layers (which curvlinops' K-FAC takes),
    global attention in every block, no dropout, the same sizes as :func:`gpt2_model`."""
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    torch.manual_seed(0)
    config = GPTNeoConfig(vocab_size=vocab, max_position_embeddings=16, hidden_size=width, num_layers=layers,
                          num_heads=heads, attention_types=[[["global"], layers]], intermediate_size=4 * width,
                          bos_token_id=0, eos_token_id=0, embed_dropout=0.0, attention_dropout=0.0,
                          resid_dropout=0.0)
    return GPTNeoForCausalLM(config).eval(), (torch.randint(0, vocab, (1, 6)),)


LMS = {"gpt2": gpt2_model, "gpt-neo": gpt_neo_model}


class _Logits(nn.Module):
    """A causal LM's logits, one row per token (the shape curvlinops' loss takes)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, x):
        out = self.lm(x, use_cache=False).logits
        return out.reshape(-1, out.shape[-1])


def lm_case(n: int, repeat: int, arch: str = "gpt2") -> dict:
    model, example = LMS[arch]()
    ref, _ = LMS[arch]()
    ref = ref.double()
    gen = torch.Generator().manual_seed(0)
    vocab = ref.config.vocab_size
    ids = torch.randint(0, vocab, (n, example[0].shape[1]), generator=gen)
    labels = torch.randint(0, vocab, ids.shape, generator=gen)
    runs = {"bare": bare_lm_pass(ref, ids, labels), "probe": ProbeRun(model, example, n, min(n, 512), GRID[:5])}
    linears = list({id(m.weight): m.weight for m in ref.modules() if isinstance(m, nn.Linear)}.values())
    kfac = curvlinops_kfac(_Logits(ref), nn.CrossEntropyLoss(), linears, ids, labels.reshape(-1), ids.shape[1]) \
        if arch != "gpt2" else None  # curvlinops does not take GPT-2's Conv1D
    if kfac:
        runs["curvlinops"] = kfac
    out = interleaved(runs, repeat)
    out["params"] = sum(p.numel() for p in ref.parameters())
    return out


def ratios(res: dict, ref: str) -> list | None:
    return [p / r for p, r in zip(res["probe"], res[ref])] if ref in res else None


def peak_rss_mb(n: int, cache_mb: float) -> float:
    """Peak resident memory of a fresh process probing the model with ``n`` samples."""
    code = (
        "import resource, torch, ddgraph; from ddgraph.models.zoo import chain; torch.manual_seed(0); "
        f"ddgraph.probe(chain({DEPTH}, 'relu', width={WIDTH}), torch.randn(4, {WIDTH}), n_samples={n}, "
        f"chunk=4096, cache_mb={cache_mb}, progress=False, grid=[1e-2, 1e-3, 1e-4]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def scaling(n: int, repeat: int) -> list[dict]:
    """Probe per t-point and its ratio to bare forward+backward as width, depth and samples grow."""
    points = [("width", dict(width=w)) for w in (32, 64, 128, 256)]
    points += [("depth", dict(depth=d)) for d in (3, 6, 12)]
    points += [("samples", dict(n=m)) for m in (n // 4, n, 4 * n)]
    rows = []
    for axis, kw in points:
        args = dict(n=n, depth=DEPTH, width=WIDTH) | kw
        res = mlp_case(args["n"], repeat, args["depth"], args["width"], with_curvlinops=False)
        rows.append({"axis": axis, **args, "probe_s": res["probe"], "bare_s": res["bare"],
                     "probe_over_bare": ratios(res, "bare")})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--lm-samples", default="256,2048", help="sequences for the transformer (comma-separated: each)")
    ap.add_argument("--lm-archs", default="gpt2,gpt-neo",
                    help="transformers for the transformer cases (comma-separated: gpt2, gpt-neo)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--lm-repeat", type=int, default=2, help="rounds for the transformer (slow: minutes each)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scaling", action="store_true", help="also measure growth with width, depth and samples")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = args.samples
    mlp = mlp_case(n, args.repeat) if args.repeat else None
    lms = {(arch, m): lm_case(m, args.lm_repeat, arch) for arch in args.lm_archs.split(",") if arch
           for m in (int(x) for x in args.lm_samples.split(",") if x)}
    mem = {} if args.no_memory else {m: {c: peak_rss_mb(m, c) for c in (0, 256)} for m in (n, 10 * n)}
    grow = scaling(n, max(1, args.repeat // 2)) if args.scaling else []
    result = {"mlp": mlp and {"bare_forward_backward_s": mlp["bare"], "probe_per_t_s": mlp["probe"],
                              "curvlinops_kfac_s": mlp.get("curvlinops"), "probe_over_bare": ratios(mlp, "bare"),
                              "probe_over_curvlinops": ratios(mlp, "curvlinops")},
              "transformer": [{"arch": arch, "params": lm["params"], "sequences": m,
                               "bare_forward_backward_s": lm["bare"], "probe_per_t_s": lm["probe"],
                               "curvlinops_kfac_s": lm.get("curvlinops"), "probe_over_bare": ratios(lm, "bare"),
                               "probe_over_curvlinops": ratios(lm, "curvlinops")}
                              for (arch, m), lm in lms.items()],
              "peak_rss_mb": {str(k): v for k, v in mem.items()}, "scaling": grow}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{torch.get_num_threads()} threads; ratios wall / cpu")
    if mlp:
        print(f"ReLU MLP depth {DEPTH}, width {WIDTH}, fp64, {n} samples")
        _line("bare forward+backward", mlp["bare"])
        _line("probe, one t-point", mlp["probe"], ratios(mlp, "bare"), "vs bare")
        if "curvlinops" in mlp:
            _line("curvlinops KFAC (empirical)", mlp["curvlinops"], ratios(mlp, "curvlinops"),
                  "probe vs curvlinops (target <= 0.75)")
        else:
            print("curvlinops not installed: see the module docstring for the install line")
    for (arch, m), lm in lms.items():
        print(f"{arch}, {lm['params']:,} parameters, fp64, {m} sequences of 6 tokens")
        _line("bare forward+backward", lm["bare"])
        _line("probe, one t-point", lm["probe"], ratios(lm, "bare"), "vs bare (target <= 1.3)")
        if "curvlinops" in lm:
            _line("curvlinops KFAC (empirical)", lm["curvlinops"], ratios(lm, "curvlinops"), "probe vs curvlinops")
    for m, row in mem.items():
        print(f"peak RSS, {m:>7} samples       no cache {row[0]:7.0f} MB   256 MB cache {row[256]:7.0f} MB")
    if mem:
        print(f"peak memory x{mem[10 * n][0] / mem[n][0]:.2f} for x10 samples without the cache (target: flat)")
    for r in grow:
        print(f"scaling {r['axis']:>7}: depth {r['depth']:>2} width {r['width']:>3} samples {r['n']:>6}   "
              f"probe {r['probe_s'][1]:7.3f} s cpu   bare {r['bare_s'][1]:7.3f} s cpu   "
              f"ratio {r['probe_over_bare'][0]:.2f} / {r['probe_over_bare'][1]:.2f}")


def _line(label, t, ratio=None, what=""):
    tail = f"   {ratio[0]:5.2f} / {ratio[1]:5.2f}  {what}" if ratio else ""
    print(f"{label:31s}{t[0]:8.4f} {t[1]:8.4f}{tail}")


if __name__ == "__main__":
    main()
