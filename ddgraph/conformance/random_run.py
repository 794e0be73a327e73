"""The engine against the probe on random architectures (``ddgraph.models.random_arch``).

Every seed builds a model, runs ``ddgraph.check`` on it and sorts each of its checks into an outcome:

rate checks (the primary, dead-entry check of every weight node's A and G factor)
    ``pass``            in reach, measured slope within tolerance of the prediction (or predicted
                        ``inf`` and measured exactly zero);
    ``not-asymptotic``  in reach, local slopes stray beyond the band: the grid is not in the asymptotic
                        window of this observable, no verdict on the rate (THEORY §7.5);
    ``floor``           in reach, predicted ``inf`` is a pass; this is a finite prediction whose
                        observable is at the numerical floor (reported, never seen so far);
    ``out-of-reach``    status ``no-rule`` or ``bracket``: the engine says the theory does not decide
                        the rate (an op without a rule reaches the node, THEORY §3.7);
    disagreements       ``fail`` (asymptotic slope outside the band), ``inf-but-moves`` (predicted
                        exactly zero, measured moving), ``unfittable`` (NaN, or too few points).
structural checks (THEORY §5.3: LayerNorm kernel, RMSNorm no-kernel, residual-stream sigma_min)
    ``pass`` / ``no-rule`` as above;
    disagreements       any other non-pass structural verdict; a block the engine called constant in t
                        that moved (``moved``).

Run it as ``python -m ddgraph.conformance.random_run --seeds 200 --out RANDOM.md``.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from collections import Counter

import attrs
import numpy as np
import torch

import ddgraph
from ddgraph.compare.verdicts import FitStatus, Status, Verdict
from ddgraph.core.engine import VALUATION
from ddgraph.models import random_arch

#: The grid: 5 points from 1e-3 to 1e-6 (geometric). The default 1e-2..1e-4 grid is not asymptotic for
#: every LayerNorm/attention depth or smooth-activation stack the generator draws; one decade lower is.
GRID = tuple(float(t) for t in np.geomspace(1e-3, 1e-6, 5))
N_SAMPLES = 2000

PASS, NOT_ASYMPTOTIC, FLOOR, OUT_OF_REACH = "pass", "not-asymptotic", "floor", "out-of-reach"
FAIL, INF_BUT_MOVES, UNFITTABLE, MOVED, CRASH = "fail", "inf-but-moves", "unfittable", "moved", "crash"
NO_RULE = "no-rule"
#: Outcomes that are a documented reason, not a disagreement.
DOCUMENTED = frozenset({NOT_ASYMPTOTIC, FLOOR, OUT_OF_REACH, NO_RULE})
#: Everything that is not ``pass`` or documented is an unexplained disagreement.
OK_OUTCOMES = DOCUMENTED | {PASS}


@attrs.frozen
class Outcome:
    kind: str  # 'rate', 'ln', 'stream', 'moved'
    node: str
    what: str  # e.g. 'A', 'G', the structural claim
    category: str
    predicted: object = None
    measured: object = None
    detail: str = ""


@attrs.frozen
class SeedResult:
    seed: int
    description: random_arch.Description
    outcomes: tuple[Outcome, ...]
    seconds: float
    crash: str = ""  # the traceback when anything raised

    def counts(self) -> Counter:
        c = Counter(o.category for o in self.outcomes)
        if self.crash:
            c[CRASH] += 1
        return c

    @property
    def disagreements(self) -> list[Outcome]:
        """Outcomes that are neither a pass, a documented reason nor a known failure."""
        return [o for o in self.outcomes if o.category not in OK_OUTCOMES]


def rate_category(check) -> str:
    """The outcome of one primary (dead-entry) check of a :class:`~ddgraph.compare.checks.Check`."""
    if check.status != Status.IN_REACH:
        return OUT_OF_REACH
    v = check.verdict
    if v == Verdict.PASS:
        return PASS
    if check.predicted == math.inf and check.fit.status != FitStatus.FLOOR:
        return INF_BUT_MOVES
    if v == Verdict.NOT_ASYMPTOTIC:
        return NOT_ASYMPTOTIC
    if v == Verdict.FLOOR:
        return FLOOR
    if v == Verdict.UNFITTABLE:
        return UNFITTABLE
    return FAIL


def _ln_category(diff, rec) -> str:
    if rec["verdict"] == Verdict.PASS:
        return PASS
    val = diff.prediction.graph[rec["node"]].get(VALUATION)
    if rec["verdict"] == Verdict.NO_RULE or val is None or val.v.get(0, [None])[0] is None:
        return NO_RULE  # the normaliser sits downstream of an op with no rule: outside the theory's reach
    return FAIL


def _stream_category(diff, rec) -> str:
    if rec["verdict"] == Verdict.PASS:
        return PASS
    if rec["verdict"] == Verdict.NO_RULE or rec["predicted"] is None:
        return NO_RULE
    return FAIL


def outcomes(diff) -> list[Outcome]:
    """Every check of a :class:`~ddgraph.compare.checks.Diff` as an :class:`Outcome`."""
    out = [Outcome("rate", c.node, c.factor, rate_category(c), c.predicted,
                   None if not math.isfinite(c.fit.slope) else round(c.fit.slope, 3), c.fit.reason)
           for c in diff.primary]
    out += [Outcome("ln", r["node"], r["claim"], _ln_category(diff, r), None, r["max_ratio"],
                    f"min cosine {r['min_cosine']:.3f}") for r in diff.ln]
    out += [Outcome("stream", r["node"], r["claim"], _stream_category(diff, r), r["predicted"], r["measured"])
            for r in diff.streams]
    out += [Outcome("moved", n, "constant block", MOVED) for n in diff.measurement.moved]
    return out


def run_seed(seed: int, *, n_samples: int = N_SAMPLES, grid=GRID) -> SeedResult:
    """Build ``random_arch.make(seed)``, check it and sort its outcomes; a crash is caught and kept."""
    model, inputs, desc = random_arch.make(seed)
    t0 = time.perf_counter()
    try:
        diff = ddgraph.check(model, inputs, n_samples=n_samples, grid=list(grid), progress=False)
    except Exception:  # noqa: BLE001 - a crash is an outcome to report, not to hide
        return SeedResult(seed, desc, (), time.perf_counter() - t0, traceback.format_exc())
    return SeedResult(seed, desc, tuple(outcomes(diff)), time.perf_counter() - t0)


COLUMNS = (PASS, NOT_ASYMPTOTIC, OUT_OF_REACH, NO_RULE, FLOOR, FAIL,
           INF_BUT_MOVES, UNFITTABLE, MOVED, CRASH)


def feature_table(results: list[SeedResult]) -> list[tuple[str, int, Counter]]:
    """Per composition feature: the seeds that have it and the outcome counts over their checks."""
    rows = []
    for feat in random_arch.FEATURES:
        mine = [r for r in results if feat in r.description.features]
        total: Counter = Counter()
        for r in mine:
            total.update(r.counts())
        rows.append((feat, len(mine), total))
    total = Counter()
    for r in results:
        total.update(r.counts())
    rows.append(("all seeds", len(results), total))
    return rows


def _cols(rows) -> list[str]:
    return [c for c in COLUMNS if c in (PASS, NOT_ASYMPTOTIC, OUT_OF_REACH, FAIL) or any(t[c] for _, _, t in rows)]


def render_text(results) -> str:
    rows = feature_table(results)
    cols = _cols(rows)
    head = f"{'feature':20s} {'seeds':>5s} " + " ".join(f"{c:>{max(len(c), 5)}s}" for c in cols)
    lines = [head]
    for feat, n, tot in rows:
        lines.append(f"{feat:20s} {n:5d} " + " ".join(f"{tot[c]:>{max(len(c), 5)}d}" for c in cols))
    return "\n".join(lines)


def render_markdown(results, *, start: int, n_samples: int, grid, seconds: float) -> str:
    rows = feature_table(results)
    cols = _cols(rows)
    lines = [
        "# Random architectures: the engine against the probe",
        "",
        "The record of one run of `python -m ddgraph.conformance.random_run "
        f"--start {start} --seeds {len(results)} --samples {n_samples} --out ...` "
        "(models from `ddgraph/models/random_arch.py`, outcomes defined in `ddgraph/conformance/random_run.py`); "
        "`docs/generate.py` does not rebuild it (the run takes minutes): rerun the command to reproduce it.",
        "",
        f"- seeds {start}..{start + len(results) - 1} ({len(results)} models)",
        f"- samples per check: {n_samples}; grid: {len(grid)} points, geometric, {max(grid):g} to {min(grid):g}",
        f"- wall time: {seconds:.0f} s in all, {seconds / max(len(results), 1):.1f} s per model "
        f"(torch {torch.__version__}, {torch.get_num_threads()} threads)",
        "",
        "Counts are checks (primary rate checks of every weight's A and G factor, and the structural "
        "checks), summed over the seeds whose model has the feature; a model has several features, so a "
        "check counts in several rows.",
        "",
        "| feature | seeds | " + " | ".join(cols) + " |",
        "|---|---:|" + "---:|" * len(cols),
    ]
    for feat, n, tot in rows:
        lines.append(f"| {feat} | {n} | " + " | ".join(str(tot[c]) for c in cols) + " |")
    lines += ["", "## Every outcome that is not a pass", ""]
    by_cat: dict[str, list] = {}
    for r in results:
        if r.crash:
            by_cat.setdefault(CRASH, []).append((r, None))
        for o in r.outcomes:
            if o.category != PASS:
                by_cat.setdefault(o.category, []).append((r, o))
    if not by_cat:
        lines.append("None.")
    for cat in sorted(by_cat, key=lambda c: COLUMNS.index(c) if c in COLUMNS else 99):
        items = by_cat[cat]
        seeds = sorted({r.seed for r, _ in items})
        lines += [f"### {cat} ({len(items)} checks, {len(seeds)} seeds)", "", EXPLAIN.get(cat, ""), ""]
        shown = 0
        for r, o in items:
            if cat == OUT_OF_REACH:
                break
            if shown >= 12:
                lines.append(f"- ... and {len(items) - shown} more")
                break
            what = "crashed: " + r.crash.strip().splitlines()[-1] if o is None else \
                f"{o.kind} `{o.node}` {o.what}: predicted {o.predicted}, measured {o.measured}" + \
                (f" ({o.detail})" if o.detail else "")
            lines.append(f"- `{r.description}` {what}")
            shown += 1
        if cat == OUT_OF_REACH:
            lines.append(f"Seeds: {', '.join(map(str, seeds))}.")
        lines.append("")
    return "\n".join(lines)


EXPLAIN = {
    NOT_ASYMPTOTIC: "The local slopes stray beyond the band: the grid is not in this observable's asymptotic "
                    "window, so the fit gives no verdict on the rate (THEORY §7.5).",
    OUT_OF_REACH: "The engine gives no rate (status `no-rule` or `bracket`): an op without a rule reaches the "
                  "node, and everything downstream of it (THEORY §3.7). Measured for the record, not a verdict.",
    NO_RULE: "A structural check on a normaliser or stream site that no rule reaches (downstream of an op with "
             "no rule): outside the theory's reach. ddgraph's diff still gives such a normaliser check a "
             "pass/fail verdict; here it is counted as out of reach.",
    FLOOR: "A finite prediction whose observable is exactly zero at every t.",
    FAIL: "An asymptotic fit outside the tolerance of the prediction: a disagreement.",
    INF_BUT_MOVES: "The engine predicted exactly zero, the observable moves: a disagreement.",
    UNFITTABLE: "NaN or too few usable points for an in-reach prediction: a disagreement to look at.",
    MOVED: "A K-FAC block the engine called constant in t moved: a disagreement.",
    CRASH: "ddgraph raised: a disagreement.",
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ddgraph.conformance.random_run", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=200, help="how many seeds (default 200)")
    p.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--samples", type=int, default=N_SAMPLES, help=f"samples per check (default {N_SAMPLES})")
    p.add_argument("--out", default=None, help="write the Markdown summary here")
    p.add_argument("--quiet", action="store_true", help="do not print one line per seed")
    a = p.parse_args(argv)
    if a.seeds < 1 or a.samples < 1:
        p.error("--seeds and --samples must be positive")
    results, t0 = [], time.perf_counter()
    for seed in range(a.start, a.start + a.seeds):
        r = run_seed(seed, n_samples=a.samples)
        results.append(r)
        if not a.quiet:
            bad = [f"{o.category}:{o.node}" for o in r.outcomes if o.category != PASS]
            print(f"{r.seconds:5.1f}s {r.description}  {'CRASH ' if r.crash else ''}{' '.join(bad)}",
                  file=sys.stderr, flush=True)
        if a.out:  # after every seed: a long run stopped early keeps what it measured
            _write(a.out, render_markdown(results, start=a.start, n_samples=a.samples, grid=GRID,
                                          seconds=time.perf_counter() - t0))
    print(render_text(results))
    if a.out:
        print(f"wrote {a.out}", file=sys.stderr)
    return 1 if any(r.crash or r.disagreements for r in results) else 0


def _write(path: str, text: str) -> None:
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
