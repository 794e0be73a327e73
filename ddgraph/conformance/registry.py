"""The claim registry: one entry per graph-level claim of the paper, and a generic runner.

A :class:`Claim` holds the paper's statement (its formula reconstructed; THEORY §9), a function that
builds the model, makes the measurement and computes three things, and the tolerance used:

* ``paper``: the paper's claim, written as a predicate from its statement, evaluated on the measurement
  (True: the measurement satisfies it); with ``exact``: whether the paper fixes the measured value (False
  for a bracket, an empirical constant or a purely negative statement);
* ``engine``: ddgraph's prediction against the same measurement (True: agrees, False: disagrees, None: the
  engine makes no prediction, the quantity is outside the calculus); ``engine_applies`` is False for the
  few claims that are not about an engine output at all (a constant of a proof, a loss-side statement);
* the measurement itself, shown in the document.

One function, :func:`verdict`, turns them into the verdict:

``FAIL``              the engine's prediction disagrees with the measurement (a rule to fix);
``paper disagrees``   the measurement contradicts the paper's claim (as reconstructed); the engine
                      agrees with the measurement or makes no prediction;
``out of reach``      the paper's claim holds; the engine makes no prediction (outside the calculus);
``closed by engine``  the paper's claim holds but does not fix the value (a bracket, an empirical
                      constant); the engine gives the value and the measurement agrees with it;
``confirmed``         the paper's claim holds and fixes the value, and the engine agrees (or, for a
                      claim that is not about an engine output, the paper's claim alone holds).
"""
from __future__ import annotations

import itertools
import math
from typing import Callable

import attrs
import numpy as np
import torch

import ddgraph
from ddgraph.compare.checks import TOL
from ddgraph.core.graph import PRIMITIVE
from ddgraph.core.primitives import BUILTIN
from ddgraph.models import zoo
from ddgraph.probing.observables import LN_RATIO_MAX, holds_kernel

SMOOTH_TOL = BUILTIN["act_smooth"].band  # the finite-t band smooth activations declare
from ddgraph.conformance import measure as M

CONFIRMED, CLOSED, PAPER_DISAGREES, OUT_OF_REACH, FAIL = (
    "confirmed", "closed by engine", "paper disagrees", "out of reach", "FAIL")
#: Exponent that makes a dead entry exactly zero in fp64 on any grid below 1e-2 (t**200 underflows).
ZERO_ALPHA = 200.0


@attrs.frozen
class Settings:
    """Sample sizes and grids; ``quick`` is the CI setting the committed document is produced with."""

    quick: bool
    n_samples: int
    grid: tuple[float, ...]
    n_mc: int  # Monte Carlo samples for exact constants

    @classmethod
    def make(cls, quick: bool) -> "Settings":
        if quick:
            return cls(True, 1500, (1e-2, 1e-3, 1e-4, 1e-5), 200_000)
        return cls(False, 20000, tuple(float(t) for t in np.geomspace(1e-2, 1e-5, 7)), 1_000_000)


def verdict(paper: bool, engine: bool | None, *, exact: bool = True, engine_applies: bool = True) -> str:
    """The verdict from the three computed things (see the module docstring); every outcome is reachable.

    ``paper``: the paper's claim holds on the measurement; ``exact``: the paper fixes the measured value;
    ``engine``: the engine's prediction agrees with the measurement (None: no prediction);
    ``engine_applies``: the claim is about an engine output (False: ``engine`` must be None).
    """
    if not engine_applies:
        if engine is not None:
            raise ValueError("a claim that is not about an engine output has no engine comparison")
        return CONFIRMED if paper else PAPER_DISAGREES
    if engine is False:
        return FAIL
    if not paper:
        return PAPER_DISAGREES
    if engine is None:
        return OUT_OF_REACH
    return CONFIRMED if exact else CLOSED


@attrs.frozen
class Outcome:
    predicted: str
    measured: str
    verdict: str
    note: str = ""
    #: The computed inputs of :func:`verdict` (None for a claim that raised).
    paper: bool | None = None
    engine: bool | None = None
    exact: bool = True
    engine_applies: bool = True


def outcome(predicted: str, measured: str, *, paper: bool, engine: bool | None, exact: bool = True,
            engine_applies: bool = True, note: str = "") -> Outcome:
    """An :class:`Outcome` whose verdict is :func:`verdict` of the three computed things."""
    return Outcome(predicted, measured, verdict(paper, engine, exact=exact, engine_applies=engine_applies),
                   note, paper, engine, exact, engine_applies)


@attrs.frozen
class Claim:
    id: str
    result: str  # the paper's result number(s)
    title: str
    paper: str  # the paper's statement, reconstructed
    run: Callable[[Settings], Outcome] = attrs.field(repr=False)
    tol: float = TOL
    why: str = ""  # standing explanation used when the verdict is not 'confirmed'


CLAIMS: list[Claim] = []


def claim(id, result, title, paper, tol=TOL, why=""):
    def deco(fn):
        if any(c.id == id for c in CLAIMS):
            raise ValueError(f"claim {id} registered twice")
        CLAIMS.append(Claim(id, result, title, paper, fn, tol, why))
        return fn
    return deco


# --- helpers -------------------------------------------------------------------------------------

def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, tuple):
        return f"[{_fmt(x[0])},{_fmt(x[1])}]"
    if math.isinf(x) or x >= 2 * ZERO_ALPHA:
        return "0 exactly"
    return f"{x:g}"


def _fmt_list(xs) -> str:
    return ",".join(_fmt(x) for x in xs)


def _check(build, s: Settings, **kw):
    torch.manual_seed(0)
    model, inputs = build()
    return ddgraph.check(model, inputs, n_samples=s.n_samples, grid=list(s.grid), progress=False, **kw)


def _engine_ok(c) -> bool:
    if c.status != "in-reach":
        return False
    if c.verdict == "pass":
        return True
    return isinstance(c.predicted, float) and c.predicted >= 2 * ZERO_ALPHA and c.fit.status == "floor"


@attrs.frozen
class Ladder:
    """Per direction: predicted and measured A and G over the weight nodes, in graph order."""

    params: list
    pred: dict  # (factor, j) -> list
    meas: dict  # (factor, j) -> list of slopes (inf for exact zero)
    se: float
    engine_ok: bool
    bad: list
    diff: object


def _ladder(d, observables=("dd",), factors=("A", "G")) -> Ladder:
    pred, meas, se, bad = {}, {}, 0.0, []
    params = []
    for c in d.checks:
        if c.observable not in observables or c.factor not in factors:
            continue
        if c.observable == "dd":
            if c.factor == factors[0] and c.direction == 1:
                params.append(c.param)
            pred.setdefault((c.factor, c.direction), []).append(c.predicted)
            meas.setdefault((c.factor, c.direction), []).append(c.fit.slope)
            if math.isfinite(c.fit.se):
                se = max(se, c.fit.se)
        if not _engine_ok(c):
            bad.append(f"{c.param} {c.factor}{c.direction} {c.observable}: predicted {_fmt(c.predicted)}, "
                       f"measured {c.fit.slope:.2f} ({c.verdict})")
    return Ladder(params, pred, meas, se, not bad, bad, d)


def _mfmt(xs) -> str:
    return ",".join("0 exactly" if math.isinf(x) else ("nan" if not math.isfinite(x) else f"{round(x, 2) + 0.0:.2f}")
                    for x in xs)



def _ladder_text(lad: Ladder, which: dict) -> tuple[str, str]:
    p, m = [], []
    for key in sorted(lad.pred):
        f, j = key
        if (f, j) not in which and which:
            continue
        tag = f"{f}" + (f"{j}" if any(k[1] > 1 for k in lad.pred) else "")
        p.append(f"{tag} {_fmt_list(lad.pred[key])}")
        m.append(f"{tag} {_mfmt(lad.meas[key])}")
    return "; ".join(p), "; ".join(m) + f" (max se {lad.se:.1e})"


def _agree(paper, measured, tol) -> bool:
    for a, b in zip(paper, measured):
        if a is None:
            continue
        if math.isinf(a) or a >= 2 * ZERO_ALPHA:
            if not math.isinf(b):
                return False
        elif not (math.isfinite(b) and abs(a - b) <= tol):
            return False
    return True


def ladder_outcome(lad: Ladder, paper: dict, tol: float, *, closed: bool = False, why: str = "",
                   show: dict | None = None, extra_note: str = "") -> Outcome:
    """Compare the paper's per-factor lists ``{(factor, j): [...]}`` with the measurement."""
    pred, meas = _ladder_text(lad, show or {})
    ok = all(_agree(v, lad.meas[k], tol) for k, v in paper.items())
    if not lad.engine_ok:
        note = "engine vs measurement: " + "; ".join(lad.bad)
    else:
        note = ((why if closed or not ok else "") + extra_note)
    return outcome(pred, meas, paper=ok, engine=lad.engine_ok, exact=not closed, note=note)


def chain_paper(L: int, alpha=None) -> dict:
    a = alpha or [1.0] * L
    return {("A", 1): [2 * sum(a[:l]) for l in range(L)], ("G", 1): [2 * sum(a[l + 1:]) for l in range(L)]}


def _feat(model, width=8):
    return lambda: (model(), torch.randn(4, width))


def _tok(model, width=8):
    return lambda: (model(), torch.randn(4, 6, width))


SMOOTH_WHY = ("smooth activations carry an O(t) finite-t correction per layer (GELU: phi'(h) = 1/2 + O(h); "
              "tanh: O(h^2)); held to the wider band ±{tol}")

# --- Thm 21: the K-FAC ladder -------------------------------------------------------------------------

for _act in ("linear", "relu", "gelu", "tanh"):
    for _L in (2, 3, 4, 5, 6):
        def _run(s, act=_act, L=_L):
            lad = _ladder(_check(_feat(lambda: zoo.chain(L, act)), s))
            tol = SMOOTH_TOL if act in ("gelu", "tanh") else TOL
            out = ladder_outcome(lad, chain_paper(L), tol)
            prod = [a + g for a, g in zip(lad.meas[("A", 1)], lad.meas[("G", 1)])]
            note = out.note
            if max(abs(p - 2 * (L - 1)) for p in prod) > 2 * tol:
                note += f" A+G not constant: {_mfmt(prod)}"
            if act in ("gelu", "tanh"):
                dev = max(abs(m - p) for k in lad.meas for m, p in zip(lad.meas[k], lad.pred[k]))
                note += f"finite-t: largest |measured - integer rate| = {dev:.3f} (band ±{tol})"
            return attrs.evolve(out, note=note)
        claim(f"thm21-{_act}-L{_L}", "Thm 21, Cor 25", f"{_act} chain, L = {_L}",
              f"A_l = 2(l-1), G_l = 2(L-l), A_l + G_l = 2(L-1) = {2 * (_L - 1)}",
              tol=SMOOTH_TOL if _act in ("gelu", "tanh") else TOL)(_run)


for _act in ("gelu", "tanh"):
    @claim(f"thm21-{_act}-finite-t", "Thm 21", f"{_act} L = 4 on a coarse grid t = 0.3 .. 0.01",
           "smooth activations add a finite-t correction that vanishes as t -> 0 (GELU O(t), tanh O(t^2))",
           tol=SMOOTH_TOL)
    def _smooth(s, act=_act):
        torch.manual_seed(0)
        d = ddgraph.check(zoo.chain(4, act), torch.randn(4, 8), n_samples=s.n_samples,
                          grid=[0.3, 0.1, 0.03, 0.01], progress=False)
        lad = _ladder(d)
        dev = max(abs(m - p) for k in lad.meas for m, p in zip(lad.meas[k], lad.pred[k]))
        worst = max((c for c in d.primary), key=lambda c: abs(c.fit.slope - c.predicted))
        ts = sorted(d.measurement.grid)
        loc = ", ".join(f"{v:.2f} @ {math.sqrt(a * b):.2g}" for v, a, b in
                        reversed(list(zip(worst.fit.local_slopes, ts, ts[1:]))))
        pred, meas = _ladder_text(lad, {})
        # engine: its integer rate against the local slope at the smallest t
        engine = all(c.fit.local_slopes and abs(c.fit.local_slopes[0] - c.predicted) <= SMOOTH_TOL
                     for c in d.primary)
        # paper: the correction to the Thm 21 rate vanishes as t -> 0 (smaller at the small end than the large)
        ladder = chain_paper(4)
        paper = True
        for c in d.primary:
            rate = ladder[(c.factor, 1)][lad.params.index(c.param)]
            small, large = (abs(c.fit.local_slopes[i] - rate) for i in (0, -1))
            paper &= small <= SMOOTH_TOL and small <= large + 0.01
        outside = [math.sqrt(a * b) for c in d.primary for v, a, b in zip(c.fit.local_slopes, ts, ts[1:])
                   if abs(v - c.predicted) > SMOOTH_TOL]
        where = (f"local slopes leave the ±{SMOOTH_TOL} band only at t ~ {max(outside):.2g}; below t = "
                 f"{max(t for t in ts if t < max(outside)):g} every local slope is inside it" if outside
                 else f"every local slope is inside ±{SMOOTH_TOL}")
        return outcome(pred, meas, paper=paper, engine=engine,
                       note=f"largest |fit - integer rate| = {dev:.3f} ({worst.param} {worst.factor}: local slopes "
                            f"{loc}); {where}")


@claim("thm21-gauge", "Thm 21", "raw full Fisher vs K-FAC blocks (linear, L = 3, width 4)",
       "the raw full Fisher has (L-1) w^2 gauge zeros; the K-FAC factors have none (their bottom "
       "eigenvalues carry the rate)")
def _gauge(s):
    r = M.full_fisher_gauge()
    ok = r["zeros"] == r["gauge_dim"] and min(r["kfac_min_rel"]) > 1e-12
    return outcome(f"not an engine output; the paper's count: {r['gauge_dim']} gauge zeros of {r['params']}",
                   f"{r['zeros']} zeros at 1e-12 x lambda_max; K-FAC A lambda_min/lambda_max = "
                   + ", ".join(f"{v:.1e}" for v in r["kfac_min_rel"]) + " at t = 1e-2",
                   paper=ok, engine=None, engine_applies=False)


# --- Remark 23: noise-free shift ---------------------------------------------------------------------

for _act in ("linear", "relu"):
    @claim(f"rem23-{_act}", "Remark 23, paper §12", f"noise-free MSE, {_act} L = 4",
           "every G rate shifts by 2L = 8: G_l = 2(L-l) + 2L; A unchanged")
    def _r23(s, act=_act):
        lad = _ladder(_check(_feat(lambda: zoo.chain(4, act)), s, regime="noise-free"))
        p = chain_paper(4)
        p[("G", 1)] = [g + 8 for g in p[("G", 1)]]
        return ladder_outcome(lad, p, TOL)


# --- Thm 36, Cor 39: cross-entropy ---------------------------------------------------------------------

@claim("thm36", "Thm 36", "CE, expected Fisher, ReLU L = 4", "same ladder as noisy MSE: G = 6,4,2,0; A = 0,2,4,6")
def _t36(s):
    return ladder_outcome(_ladder(_check(_feat(lambda: zoo.chain(4, "relu")), s, loss="ce")), chain_paper(4), TOL)


@claim("cor39-canonical", "Cor 39", "CE, empirical Fisher (fixed labels) on the canonical approach, ReLU L = 4",
       "the empirical Fisher collapses only under memorisation; the canonical approach does not memorise, "
       "so the ladder stands")
def _c39a(s):
    lad = _ladder(_check(_feat(lambda: zoo.chain(4, "relu")), s, loss="ce", fisher="empirical"))
    return ladder_outcome(lad, chain_paper(4), TOL)


@claim("cor39-memorise", "Cor 39", "memorising classifier (logits s z, margin >= 1), s = 1, 2, 4, 8",
       "empirical Fisher -> 0 under perfect memorisation, faster than the expected Fisher")
def _c39b(s):
    r = M.memorisation([1, 2, 4, 8])
    ratio = [a / b for a, b in zip(r["empirical"], r["expected"])]
    ok = all(b < a for a, b in zip(ratio, ratio[1:])) and ratio[-1] < 1e-4
    return outcome("not an engine output (a loss-side statement)",
                   "tr F_emp = " + ", ".join(f"{v:.1e}" for v in r["empirical"]) + "; tr F_emp / tr F_exp = "
                   + ", ".join(f"{v:.1e}" for v in ratio), paper=ok, engine=None, engine_applies=False,
                   note="per sample |p - e_y|^2 ~ (1 - p_y)^2 against 1 - |p|^2 ~ 2(1 - p_y): the ratio decays "
                        "like (1 - p_y)/2")


# --- Thm 43, Cor 44-48: residual DAGs ----------------------------------------------------------------

def _dist_paper(G, A):
    return {("G", 1): G, ("A", 1): A}


@claim("thm43-cor48-k2", "Thm 43, Cor 48, Def 41", "ReLU L = 4, skip over weights 2-3",
       "G_l = 2 d(l), d = shortest weighted path to the output (weights 1, skips 0): G = 2,4,2,0; "
       "forward dual A = 0,2,4,2")
def _t43a(s):
    lad = _ladder(_check(_feat(lambda: zoo.ResidualMLP(4, 1, 3)), s))
    return ladder_outcome(lad, _dist_paper([2, 4, 2, 0], [0, 2, 4, 2]), TOL)


@claim("thm43-cor48-k3", "Thm 43, Cor 48", "ReLU L = 5, skip over weights 2-4",
       "d(l) = d_post + (k - position inside block); G = 2,6,4,2,0; A = 0,2,4,6,2")
def _t43b(s):
    lad = _ladder(_check(_feat(lambda: zoo.ResidualMLP(5, 1, 4)), s))
    return ladder_outcome(lad, _dist_paper([2, 6, 4, 2, 0], [0, 2, 4, 6, 2]), TOL)


@claim("cor47", "Cor 47", "per-layer residual at every layer, ReLU L = 4",
       "d(l) = 0 for every l: G = 0,0,0,0 (the rate signal is a finite-t correction); A = 0,0,0,0")
def _c47(s):
    lad = _ladder(_check(_feat(lambda: zoo.PerLayerResidual(4)), s))
    return ladder_outcome(lad, _dist_paper([0] * 4, [0] * 4), TOL)


@claim("cor44", "Cor 44", "Schur complement on the residual DAG (skip over weights 2-3)",
       "under complement genericity the Schur complement has the same rate as the dead entry: G = 2,4,2,0")
def _c44(s):
    d = _check(_feat(lambda: zoo.ResidualMLP(4, 1, 3)), s)
    lad = _ladder(d, observables=("dd", "schur"))
    schur = [c.fit.slope for c in d.checks if c.observable == "schur" and c.factor == "G"]
    out = ladder_outcome(lad, _dist_paper([2, 4, 2, 0], [0, 2, 4, 2]), TOL, show={("G", 1): 1})
    paper = out.paper and _agree([2, 4, 2, 0], schur, TOL)  # the claim is about the Schur complement
    return outcome(out.predicted, f"Schur G {_mfmt(schur)}; dd {out.measured}", paper=paper,
                   engine=out.engine, note=out.note)


@claim("cor46", "Cor 46", "no skips (pure feedforward), ReLU L = 4", "d(l) = L - l: recovers Thm 21, G = 6,4,2,0")
def _c46(s):
    return ladder_outcome(_ladder(_check(_feat(lambda: zoo.ResidualMLP(4, 0, 0)), s)), chain_paper(4), TOL)


@claim("cor58", "Cor 58", "residual stream of 2 pre-norm transformer blocks (generic LN affine)",
       "sigma_min^2 of the stream has rate 0 at every block output")
def _c58(s):
    d = _check(_tok(lambda: zoo.PreNormStack(2)), s)
    preds = [x["predicted"] for x in d.streams]
    meas = [x["measured"] for x in d.streams]
    ok = all(x["verdict"] == "pass" for x in d.streams)
    paper_ok = all(m is not None and abs(m) <= TOL for m in meas)
    return outcome(f"{len(preds)} sites: " + _fmt_list(preds),
                   ", ".join("nan" if m is None else f"{round(m, 2) + 0.0:.2f}" for m in meas),
                   paper=paper_ok, engine=ok)


# --- Thm 30: composition additivity ---------------------------------------------------------------------

for _kinds in ("AM", "MA", "AA", "MM"):
    @claim(f"thm30-{_kinds}", "Thm 30", f"block pair {_kinds} (A = attention, M = 2-weight MLP), no skips",
           "block rates r = 2 add: G at block 1's output = 2 r_2 = 4; A at block 2's input = 2 r_1 = 4")
    def _t30(s, kinds=_kinds):
        lad = _ladder(_check(_tok(lambda: zoo.BlockStack(kinds)), s))
        n1 = 4 if kinds[0] == "A" else 2
        paper = {("G", 1): [None] * (n1 - 1) + [4.0], ("A", 1): [None] * n1 + [4.0]}
        return ladder_outcome(lad, paper, TOL)


@claim("thm30-mlp3", "Thm 30, Cor 31", "3 ReLU MLP blocks (6 weights)",
       "G at the input of block b = 2 sum of later block rates: reduces to Thm 21, G = 10,8,6,4,2,0")
def _t30m(s):
    return ladder_outcome(_ladder(_check(_feat(lambda: zoo.chain(6, "relu")), s)), chain_paper(6), TOL)


# --- Thm 66/67: standalone attention --------------------------------------------------------------------

@claim("thm66-67", "Thm 66, Thm 67", "standalone single-head attention block",
       "forward block rate 2 (output dead ~ t^2) and backward block rate 2 (input gradient dead ~ t^2)")
def _t66(s):
    torch.manual_seed(0)
    model, x = zoo.Attention(8), torch.randn(4, 6, 8)
    pred = ddgraph.predict(model, x)
    r = M.block_orders(pred, x, s.grid, n=s.n_samples)
    k, w = pred.kl_order, M.input_gradient_order(pred)
    meas = f"forward {M.fmt_fit(r['forward'])} (= 2k); backward {M.fmt_fit(r['backward'])} (= 2w)"
    ok = abs(r["forward"].slope - 2 * k) <= TOL and abs(r["backward"].slope - 2 * w) <= TOL
    # the paper: amplitude orders 2 and 2, i.e. measured slopes 4 and 4
    paper = abs(r["forward"].slope - 4) <= TOL and abs(r["backward"].slope - 4) <= TOL
    return outcome(f"forward k = {_fmt(k)}, backward w = {_fmt(w)}", meas, paper=paper, engine=ok)


# --- Prop 54 / 69: attention chains -----------------------------------------------------------------------

def attn_band(rate) -> float:
    """Fit band for attention-chain rates: ±0.05, widened to 2% of the rate above 2.5 (rates reach 22; the
    local log-slopes of an observable spanning ~90 decades jitter by up to ~0.2 from fp64 rounding in the
    softmax backward, without trend). Neighbouring candidate rates differ by 4, far outside the band."""
    return max(TOL, 0.02 * rate) if isinstance(rate, float) and math.isfinite(rate) else TOL


def _attn_rows(d):
    """Per block: predicted and measured G of q, k, v, o, refitted with :func:`attn_band`."""
    from ddgraph.probing.fit import fit_rate, judge

    out = {}
    grid = d.measurement.grid
    for c in d.primary:
        if c.factor != "G":
            continue
        band = attn_band(c.predicted)
        fit = fit_rate(grid, d.measurement.weights[c.node].series["G"]["dd"][1], tol=band)
        c = attrs.evolve(c, fit=fit, verdict=judge(c.predicted, fit, tol=band), tol=band)
        b, comp = c.param.split(".")[1], c.param.split(".")[2]
        out.setdefault(int(b), {})[comp] = (c.predicted, c.fit.slope, c)
    return out


ATTN_DEEP_GRID = {True: (1e-5, 1e-6, 1e-7, 1e-8), False: tuple(float(t) for t in np.geomspace(1e-5, 1e-8, 7))}


def _attn_chain(L, s):
    # deep chains: the rate-12 path of block 2 at L = 6 overtakes the rate-16 path only below t ~ 3e-5
    grid = s.grid if L <= 3 else ATTN_DEEP_GRID[s.quick]
    torch.manual_seed(0)
    model, x = zoo.AttentionChain(L), torch.randn(4, 6, 8)
    return ddgraph.check(model, x, n_samples=s.n_samples, grid=list(grid), progress=False)


_ATTN: dict = {}


def _attn(L, s):
    key = (L, s)
    if key not in _ATTN:
        _ATTN[key] = _attn_chain(L, s)
    return _ATTN[key]


for _L in range(1, 7):
    @claim(f"prop54-L{_L}", "Prop 54", f"pure attention chain, L = {_L}: V - O offset per block",
           "G_V - G_O = 2 at every block")
    def _p54(s, L=_L):
        rows = _attn_rows(_attn(L, s))
        pd = [rows[b]["v"][0] - rows[b]["o"][0] for b in sorted(rows)]
        md = [rows[b]["v"][1] - rows[b]["o"][1] for b in sorted(rows)]
        checks = [rows[b][c][2] for b in rows for c in ("v", "o")]
        bad = [f"{c.param}: {_fmt(c.predicted)} vs {c.fit.slope:.2f} ({c.verdict})"
               for c in checks if not _engine_ok(c)]
        ok = all(abs(m - 2) <= 2 * attn_band(rows[b]["v"][0]) for b, m in zip(sorted(rows), md))
        return outcome(_fmt_list(pd), _mfmt(md), paper=ok, engine=not bad, note="; ".join(bad))

    @claim(f"prop69-L{_L}", "Prop 69, Remark 32", f"pure attention chain, L = {_L}: G of Q, K, O per block",
           "(a) G_O(b) = 4 min(D, D*), D = L - b, D* empirical; (c) G_Q = G_K = 4b - 2",
           why="the paper leaves the saturation depth D* empirical and independent of b; the contraction rule "
               "gives it in closed form, D*(b) = b + 1 (the gradient reaching block b through the Q/K "
               "contraction of block b + 1 caps G_O at 4(b + 1)), which the measurement confirms")
    def _p69(s, L=_L):
        rows = _attn_rows(_attn(L, s))
        blocks = sorted(rows)
        pq = [rows[b]["q"][0] for b in blocks]
        po = [rows[b]["o"][0] for b in blocks]
        mq = [rows[b]["q"][1] for b in blocks]
        mk = [rows[b]["k"][1] for b in blocks]
        mo = [rows[b]["o"][1] for b in blocks]
        checks = [rows[b][c][2] for b in blocks for c in ("q", "k", "o")]
        pred = f"Q=K {_fmt_list(pq)}; O {_fmt_list(po)}"
        meas = f"Q {_mfmt(mq)}; K {_mfmt(mk)}; O {_mfmt(mo)}"
        bad = [f"{c.param}: {_fmt(c.predicted)} vs {c.fit.slope:.2f} ({c.verdict})"
               for c in checks if not _engine_ok(c)]
        qk_ok = all(abs(m - (4 * (b + 1) - 2)) <= attn_band(4.0 * (b + 1) - 2)
                    for b, mb in zip(blocks, zip(mq, mk)) for m in mb)
        # the best single D* for the paper's form (a)
        best = min(range(0, 7), key=lambda ds: sum(abs(m - 4 * min(L - 1 - b, ds)) for b, m in zip(blocks, mo)))
        o_paper = [4 * min(L - 1 - b, best) for b in blocks]
        o_ok = all(abs(p - m) <= attn_band(float(p)) for p, m in zip(o_paper, mo))
        # the paper fixes G_O only where its empirical D* does not bind (best D* >= the largest D = L - 1)
        exact = best >= L - 1
        note = f"best single D* = {best} gives O = {_fmt_list(o_paper)}."
        if bad:
            note = "; ".join(bad)
        elif qk_ok and o_ok:
            note = "" if exact else note + " The engine closes D*: D*(b) = b + 1."
        else:
            note += (" No b-independent D* fits: the measured O rate saturates at 4(b + 1), i.e. D*(b) = b + 1, "
                     "which the engine derives from the contraction rule.")
        return outcome(pred, meas, paper=qk_ok and o_ok, engine=not bad, exact=exact, note=note)


# --- LayerNorm ----------------------------------------------------------------------------------------------

_LN_WHY = ("the paper proves only a bracket between the no-LN ladder and a reset (its closure is the "
           "finite-t Thm 122); the LayerNorm rule (mean leaks into the dead coordinate, order 0; the "
           "Jacobian mixes all classes) gives the exact asymptotic rates, which the measurement confirms")

def ln_bracket(L: int, positions) -> tuple[list[int], list[int]]:
    """Prop 60's bracket for G_l, l = 1..L, with LayerNorms after the layers in ``positions``: from the
    paper's statement alone (no engine): the no-LN ladder 2(L-l) as the upper end; a full reset (0) as the
    lower end wherever an LN sits at or above l; exact 2(L-l) where none does."""
    hi = [2 * (L - l) for l in range(1, L + 1)]
    lo = [h if all(p < l for p in positions) else 0 for l, h in zip(range(1, L + 1), hi)]
    return lo, hi


for _pos in (1, 2, 3):
    @claim(f"prop60-ln{_pos}", "Prop 60", f"linear L = 4, LayerNorm after layer {_pos}",
           "bracket: below the topmost LN, G_l lies between a full reset (0: LN's dense backward Jacobian) and "
           "the no-LN value 2(L-l); exact 2(L-l) with no LN above l", why=_LN_WHY)
    def _p60(s, pos=_pos):
        lad = _ladder(_check(_feat(lambda: zoo.NormedChain(4, pos, "layernorm")), s))
        lo, hi = ln_bracket(4, [pos])
        g = lad.meas[("G", 1)]
        outside = [l + 1 for l, (a, b, m) in enumerate(zip(lo, hi, g)) if not a - TOL <= m <= b + TOL]
        pred, meas = _ladder_text(lad, {})
        pred += f" (paper's G bracket [{_fmt_list(lo)}]..[{_fmt_list(hi)}])"
        if not lad.engine_ok:
            note = "engine vs measurement: " + "; ".join(lad.bad)
        elif outside:
            note = f"the measured G leaves the paper's bracket at l = {_fmt_list(outside)}"
        else:
            note = "" if lo == hi else _LN_WHY
        return outcome(pred, meas, paper=not outside, engine=lad.engine_ok, exact=lo == hi, note=note)


@claim("thm122", "Thm 122", "finite-t crossover, linear L = 4, LN after layer 1, t = 0.9 .. 1e-3",
       "at finite t the local log-slope crosses over (a rational function of t) before the asymptote",
       why="the engine predicts only the asymptote; the crossover shape is a finite-t statement")
def _t122(s):
    grid = (0.9, 0.5, 0.2, 0.1, 0.03, 1e-2, 1e-3)
    torch.manual_seed(0)
    d = ddgraph.check(zoo.NormedChain(4, 1, "layernorm"), torch.randn(4, 8), n_samples=s.n_samples,
                      grid=list(grid), progress=False)
    c = [c for c in d.primary if c.factor == "G"][1]
    ts = sorted(grid)
    loc = ", ".join(f"{v:.2f} @ {math.sqrt(a * b):.2g}" for v, a, b in reversed(list(zip(c.fit.local_slopes, ts, ts[1:]))))
    mids = [math.sqrt(a * b) for a, b in zip(ts, ts[1:])]  # local slopes, smallest t first
    ls = list(c.fit.local_slopes) or [math.nan]
    small, large = ls[0], ls[-1]
    # engine: only the asymptote; it has no prediction for the crossover (None) unless the asymptote is wrong
    engine = None if abs(small - c.predicted) <= TOL else False
    # paper: the local slope crosses over: it changes by more than the band across the grid and settles at
    # the small end (the two smallest-t local slopes agree)
    settled = len(ls) >= 2 and abs(ls[0] - ls[1]) <= TOL
    paper = settled and abs(large - small) > TOL
    inside = [t for t, v in zip(mids, ls) if abs(v - small) <= TOL]
    band_from = max(t for t, _ in zip(mids, itertools.takewhile(lambda v: abs(v - small) <= TOL, ls)))
    if engine is False:
        note = f"the smallest-t local slope {small:.2f} is not the engine's asymptote {_fmt(c.predicted)}"
    elif paper:
        note = (f"measured crossover: the local slope is {large:.2f} at t ~ {mids[-1]:.2g} and settles within "
                f"±{TOL} of {small:.2f} (the engine's asymptote) for t <= {band_from:.2g}; the engine predicts "
                f"only the asymptote, not the crossover's shape (Thm 122's rational function of t)")
    else:
        note = (f"no crossover measured: the local slopes stay within ±{TOL} of {small:.2f} over the grid"
                if inside == mids else "the local slopes do not settle at the small-t end of the grid")
    return outcome(f"asymptote G_2 = {_fmt(c.predicted)} (no finite-t prediction)",
                   f"local slope @ t (large t first): {loc}", paper=paper, engine=engine, note=note)


for _norm in ("layernorm", "rmsnorm"):
    @claim(f"prop63-{_norm}", "Prop 63", f"{_norm} after layer 1 (random affine)",
           "LN output covariance has an exact zero eigenvalue along 1/gamma" if _norm == "layernorm"
           else "RMSNorm has no kernel direction")
    def _p63(s, norm=_norm):
        d = _check(_feat(lambda: zoo.NormedChain(4, 1, norm)), s)
        rec = d.ln[0]
        meas = (f"lambda_min/trace {rec['max_ratio']:.1e}, 1/gamma's Rayleigh quotient/trace "
                f"{rec['max_rayleigh']:.1e}, cosine with 1/gamma {rec['min_cosine']:.3f}")
        kernel = holds_kernel(rec["max_rayleigh"])  # measured
        pred = "kernel along 1/gamma" if rec["claim"].startswith("exact kernel") else "no kernel"
        paper = kernel if norm == "layernorm" else rec["max_ratio"] > LN_RATIO_MAX
        return outcome(pred, meas, paper=paper, engine=rec["verdict"] == "pass")


# --- Thm 103: rectangular widths --------------------------------------------------------------------------------

for _act in ("linear", "relu"):
    @claim(f"thm103-{_act}", "Thm 103", f"{_act} L = 4, widths 8-12-6-10-8",
           "the dead-entry G_l = 2(L-l) survives rectangular widths; A dual")
    def _t103(s, act=_act):
        lad = _ladder(_check(_feat(lambda: zoo.chain(4, act, widths=[8, 12, 6, 10, 8])), s))
        return ladder_outcome(lad, chain_paper(4), TOL)


# --- Thm 106, Cor 107-109 ---------------------------------------------------------------------------------------

@claim("cor107", "Cor 107", "ReLU L = 4, per-layer exponents a = (1,2,1,3)",
       "G_l = 2 sum_{m>l} a_m = 12,8,6,0; A_l = 2 sum_{m<l} a_m = 0,2,6,8")
def _c107(s):
    lad = _ladder(_check(_feat(lambda: zoo.chain(4, "relu")), s, alpha=[1, 2, 1, 3]))
    return ladder_outcome(lad, chain_paper(4, [1, 2, 1, 3]), TOL)


@claim("cor108", "Cor 108, Thm 106(c)", "ReLU L = 4, two dead directions, symmetric",
       "each direction carries the ladder G = 6,4,2,0 (dead entry and per-direction Schur complement)")
def _c108(s):
    d = _check(_feat(lambda: zoo.chain(4, "relu")), s, n_dead=2)
    lad = _ladder(d, observables=("dd", "schur"))
    p = chain_paper(4)
    p2 = {**p, ("A", 2): p[("A", 1)], ("G", 2): p[("G", 1)]}
    return ladder_outcome(lad, p2, TOL)


@claim("cor109", "Cor 109, Thm 106", "ReLU L = 4, two directions, exponents a = 1 (dir 1), 2 (dir 2)",
       "per direction j: G_l = 2 sum_{m>l} a_m^(j): dir 1 6,4,2,0; dir 2 12,8,4,0")
def _c109(s):
    params = [f"{i * 2}.weight" for i in range(4)]
    d = _check(_feat(lambda: zoo.chain(4, "relu")), s, n_dead=2, alpha={p: [1, 2] for p in params})
    lad = _ladder(d)
    p1, p2 = chain_paper(4), chain_paper(4, [2] * 4)
    return ladder_outcome(lad, {**p1, ("A", 2): p2[("A", 1)], ("G", 2): p2[("G", 1)]}, TOL)


# --- Thm 112: biases ---------------------------------------------------------------------------------------------

def _betas(L, b):
    return {f"biases.{i}": b for i in range(L)}


for _act in ("linear", "relu", "gelu"):
    @claim(f"thm112-A-{_act}", "Thm 112 case A", f"{_act} L = 4 with biases, dead bias entries at zero",
           "biases at zero are inert: the Thm 21 ladder", tol=SMOOTH_TOL if _act == "gelu" else TOL)
    def _b_a(s, act=_act):
        lad = _ladder(_check(_feat(lambda: zoo.BiasChain(4, 8, act)), s))
        return ladder_outcome(lad, chain_paper(4), SMOOTH_TOL if act == "gelu" else TOL)

    @claim(f"thm112-C-{_act}", "Thm 112 case C", f"{_act} L = 4, joint approach, beta = 1 on every bias",
           "G ladder unchanged: 6,4,2,0; the forward dead magnitude is capped by the bias: A_l = 2 min(l-1, beta)"
           + ("; smooth activations: bias correction O(t^beta) is finite-t" if _act == "gelu" else ""),
           tol=SMOOTH_TOL if _act == "gelu" else TOL)
    def _b_c(s, act=_act):
        lad = _ladder(_check(_feat(lambda: zoo.BiasChain(4, 8, act)), s, beta=_betas(4, 1.0)))
        tol = SMOOTH_TOL if act == "gelu" else TOL
        out = ladder_outcome(lad, {("G", 1): [6, 4, 2, 0], ("A", 1): [0, 2, 2, 2]}, tol)
        if act == "gelu":
            dev = max(abs(m - p) for m, p in zip(lad.meas[("G", 1)], [6, 4, 2, 0]))
            out = attrs.evolve(out, note=f"largest finite-t deviation {dev:.3f} on t in [{s.grid[-1]:g}, "
                                         f"{s.grid[0]:g}] (band ±{SMOOTH_TOL})")
        return out


@claim("thm112-B", "Thm 112 case B", "ReLU L = 4, bias-only approach (dead weight entries held at 0, beta = 1)",
       "bias perturbations alone carry no rate: the G dead entry above the output layer is exactly zero")
def _b_b(s):
    d = _check(_feat(lambda: zoo.BiasChain(4, 8, "relu")), s, beta=_betas(4, 1.0), alpha=ZERO_ALPHA)
    lad = _ladder(d)
    return ladder_outcome(lad, {("G", 1): [math.inf, math.inf, math.inf, 0]}, TOL,
                          extra_note=f"(weights' dead entries set to t^{ZERO_ALPHA:g}, zero in fp64)")


# --- Prop 114: SwiGLU ----------------------------------------------------------------------------------------------

@claim("prop114-ladder", "Prop 114", "SwiGLU block W2 (silu(W1 x) * W3 x)",
       "forward order 3 gives the ladder W1, W3, W2: G = 4,4,0; A = 0,0,4")
def _p114a(s):
    lad = _ladder(_check(_feat(lambda: zoo.SwiGLU()), s))
    return ladder_outcome(lad, {("G", 1): [4, 4, 0], ("A", 1): [0, 0, 4]}, TOL)


@claim("prop114-order", "Prop 114", "SwiGLU forward order and its constant",
       "block output along the dead direction = t^3 x_d^2 / 2 (silu(h) = h/2 + O(h^2)): "
       "E[f_d^2] = t^6 E[x^4]/4 = 0.75 t^6")
def _p114b(s):
    torch.manual_seed(0)
    model, x = zoo.SwiGLU(), torch.randn(4, 8)
    pred = ddgraph.predict(model, x)
    r = M.block_orders(pred, x, s.grid, n=s.n_samples)
    c = M.swiglu_constant(pred, x, 1e-3, s.n_mc)
    se = 0.75 * math.sqrt(96 / 9 / s.n_mc)  # Var(x^4) = 105 - 9 = 96; relative se of E[x^4]/3
    ok_order = abs(r["forward"].slope - 2 * pred.kl_order) <= TOL
    paper = abs(r["forward"].slope - 6) <= TOL and abs(c - 0.75) <= 4 * se + 1e-3  # order 3, constant 3/4
    return outcome(f"k = {_fmt(pred.kl_order)} (E[f_d^2] slope {2 * pred.kl_order:g})",
                   f"slope {M.fmt_fit(r['forward'])}; E[f_d^2]/t^6 = {c:.4f} ± {se:.4f} at t = 1e-3",
                   paper=paper, engine=ok_order)


# --- Lemma 18 -------------------------------------------------------------------------------------------------------

@claim("lemma18", "Lemma 18", "ReLU Schur-cancellation constant, isotropic Gaussian pre-activations, t = 1e-3",
       "c^T B^-1 c / A_dd = n / (pi (n + pi - 1)) for n bulk coordinates, -> 1/pi; Schur >= (1 - 1/pi) A_dd")
def _l18(s):
    cells, ok = [], True
    for i, nb in enumerate((3, 7, 15, 63)):
        m, p = M.relu_schur_ratio(nb, s.n_mc, 1e-3, seed=i)
        cells.append(f"n={nb}: {m:.4f} vs {p:.4f}")
        ok &= abs(m - p) <= 0.02 * p + 3 / math.sqrt(s.n_mc)
    return outcome("not an engine output (a constant of the Schur reduction)", "; ".join(cells),
                   paper=ok, engine=None, engine_applies=False)


# --- Thm 2: directional Fisher along the approach -----------------------------------------------------------------------

for _name, _build, _x in (("relu-L4", lambda: zoo.chain(4, "relu"), (4, 8)), ("swiglu", lambda: zoo.SwiGLU(), (4, 8)),
                          ("attention", lambda: zoo.Attention(8), (4, 6, 8))):
    @claim(f"thm2-{_name}", "Thm 2", f"directional Fisher along the approach, {_name}",
           "E|df/dt|^2 ~ t^(2k-2) with k the KL (amplitude) order")
    def _t2(s, build=_build, shape=_x):
        torch.manual_seed(0)
        model, x = build(), torch.randn(*shape)
        pred = ddgraph.predict(model, x)
        r = M.block_orders(pred, x, s.grid, n=s.n_samples)
        ok = abs(r["fisher"].slope - pred.fisher_rate) <= TOL and abs(r["forward"].slope - 2 * pred.kl_order) <= TOL
        # the paper: Fisher slope = 2k - 2 with k read from the measured KL slope 2k (no engine involved)
        paper = abs(r["fisher"].slope - (r["forward"].slope - 2)) <= 2 * TOL
        return outcome(f"k = {_fmt(pred.kl_order)}, 2k-2 = {_fmt(pred.fisher_rate)}, RLCT 1/(2k) = {pred.rlct:.3g}",
                       f"Fisher {M.fmt_fit(r['fisher'])}; E|f_t - f_0|^2 {M.fmt_fit(r['forward'])}",
                       paper=paper, engine=ok)


# --- Prop 118/119: rotated dead directions --------------------------------------------------------------------------

ROTATIONS = (0.0, 0.1, 0.5, 1.0)  # theta, in units of pi/2


def _rotation_equivariant(pred) -> bool:
    """The labelled graph has no element-wise nonlinearity: its maps commute with a change of basis, so the
    canonical prediction transports to a rotated dead direction (Prop 118's argument, read off the graph)."""
    g = pred.graph.nx
    prims = g.graph["primitives"]
    return not any(prims[g.nodes[n][PRIMITIVE]].mask == "elementwise" for n in g)


def _combine(states) -> bool | None:
    """Per-theta engine comparisons into one: any disagreement is False, else any missing prediction None."""
    states = list(states)
    return False if False in states else (None if None in states else True)


for _act in ("linear", "relu", "gelu"):
    @claim(f"prop118-{_act}", "Prop 118" if _act == "linear" else "Prop 119",
           f"{_act} L = 4, dead direction rotated by theta = {', '.join(f'{t:g}' for t in ROTATIONS)} (x pi/2) "
           "off the coordinate axis",
           "linear: the ladder G = 6,4,2,0 holds for any rotation" if _act == "linear"
           else "nonlinear: the ladder G = 6,4,2,0 at theta = 0 (Thm 21); at theta > 0 it is not realised "
                "(some G_l differs from 2(L-l); no closed form)")
    def _p118(s, act=_act):
        torch.manual_seed(0)
        pred = ddgraph.predict(zoo.chain(4, act), torch.randn(4, 8))
        canon = [n.g_rate for n in pred.nodes]
        transported = _rotation_equivariant(pred)
        ladder = chain_paper(4)[("G", 1)]
        cells, paper, engine, kept = [], True, [], []
        for th in ROTATIONS:
            g = [f.slope for f in M.rotated_chain(act, th, s.grid, n=s.n_samples)["G"]]
            cells.append(f"theta={th:g}: G {_mfmt(g)}")
            holds = _agree(ladder, g, TOL)
            if th == 0.0 or act == "linear":
                paper &= holds
            else:
                paper &= not holds
                if holds:
                    kept.append(th)
            engine.append(_agree(canon, g, TOL) if th == 0.0 or transported else None)
        engine = _combine(engine)
        if transported:
            p = (f"G {_fmt_list(canon)} at every theta (the graph has no element-wise nonlinearity, so the "
                 "canonical prediction is transported by the rotation)")
        else:
            p = (f"G {_fmt_list(canon)} at theta = 0; theta > 0: no prediction (an element-wise activation does "
                 "not commute with the rotation, so the dead direction is not a channel coordinate)")
        if engine is False:
            note = "the measured G differs from the engine's prediction where it makes one"
        elif kept:
            note = f"at theta = {_fmt_list(kept)} the measured G keeps the canonical ladder"
        elif not paper:
            note = "the measured G leaves the ladder " + ("at some theta" if act == "linear" else "at theta = 0")
        elif act == "linear":
            note = ""
        else:
            note = ("measured: the canonical ladder holds at theta = 0 and is not realised at any theta > 0 "
                    "(the paper's negative result holds); the engine has no prediction for theta > 0")
        return outcome(p, "; ".join(cells), paper=paper, engine=engine, note=note)


# --- Cor 28: Kronecker lift ---------------------------------------------------------------------------------------------

_C28_WHY = ("the lift is the dead entry only where both factor rates are positive (interior layers, "
            "as the engine predicts); at layer 1 A = E[x x^T] and at layer L G (the noise covariance) have rate 0 "
            "on the dead unit, so their bottom eigenvector is a bulk direction and the paper's sentence 'canonical "
            "alignment sets both bottom factor eigenvectors to the dead unit' fails there")


@claim("cor28", "Cor 28", "Kronecker lift, linear L = 4: bottom eigenvectors of A_l and G_l at the smallest t",
       "the flattest direction of layer l is g_min a_min^T with both factors' bottom eigenvectors = the dead unit",
       why=_C28_WHY)
def _c28(s):
    d = _check(_feat(lambda: zoo.chain(4)), s)
    ws = [d.measurement.weights[n.node] for n in d.prediction.nodes]
    oa = [w.overlap["A"][1] for w in ws]
    og = [w.overlap["G"][1] for w in ws]
    pred = [(n.a_rate > 0, n.g_rate > 0) for n in d.prediction.nodes]
    ok = all((a > 0.999) == pa and (g > 0.999) == pg for (pa, pg), a, g in zip(pred, oa, og))
    # the paper: both bottom factor eigenvectors are the dead unit at every layer
    off = [f"{f} at l = {l}" for l, (a, g) in enumerate(zip(oa, og), 1) for f, v in (("A", a), ("G", g))
           if v <= 0.999]
    where = lambda i: ",".join(str(l) for l, p in enumerate(pred, 1) if p[i]) or "none"  # noqa: E731
    note = ("measured: the bottom eigenvector is not the dead unit (overlap <= 0.999) for " + ", ".join(off)
            + (". " + _C28_WHY[0].upper() + _C28_WHY[1:] if ok else "")) if off else ""
    return outcome(f"dead unit is bottom eigenvector where the factor rate > 0: A at l = {where(0)}, "
                   f"G at l = {where(1)}",
                   "overlap A " + ",".join(f"{v:.3f}" for v in oa) + "; G " + ",".join(f"{v:.3f}" for v in og),
                   paper=not off, engine=ok, note=note)


# --- paper §7.2: tied toy model of superposition ------------------------------------------------------------------------------

@claim("tms", "paper §7.2", "tied linear TMS x -> W^T W x (n = 6, m = 3), ray W0 + t e_d u^T, random u",
       "tying doubles the t-dependence: KL order 2; directional Fisher along the ray and the bottom (non-gauge) "
       "Fisher eigenvalue both ~ t^2 (the input-layer rate is lost in extraction)",
       why="per use of the tied weight the engine gives the untied L = 2 ladder (encoder G 2, decoder A 2); "
           "the full tied-parameter Fisher is not a K-FAC block, so it is measured here directly")
def _tms(s):
    torch.manual_seed(0)
    model, x = zoo.TiedAutoencoder(), torch.randn(4, 6)
    d = ddgraph.check(model, x, n_samples=s.n_samples, grid=list(s.grid), progress=False)
    lad = _ladder(d)
    r = M.tms_fisher(model, s.grid, n=s.n_samples)
    pk = d.prediction
    ok = lad.engine_ok and abs(r["directional"].slope - pk.fisher_rate) <= TOL and \
        abs(r["bottom"].slope - pk.fisher_rate) <= TOL
    # the paper: KL order 2, so both Fisher slopes 2k - 2 = 2; "non-gauge" presumes the O(m) gauge orbit
    paper = abs(r["directional"].slope - 2) <= TOL and abs(r["bottom"].slope - 2) <= TOL and \
        r["gauge_zeros"] == r["expected_gauge"]
    pred, meas = _ladder_text(lad, {})
    return outcome(f"k = {_fmt(pk.kl_order)}, Fisher rate {_fmt(pk.fisher_rate)}; per use {pred}",
                   f"directional {M.fmt_fit(r['directional'])}, bottom non-gauge {M.fmt_fit(r['bottom'])}, "
                   f"{r['gauge_zeros']} gauge zeros (m(m-1)/2 = {r['expected_gauge']}); per use {meas}",
                   paper=paper, engine=ok, note="" if lad.engine_ok else "; ".join(lad.bad))


def run_claim(c: Claim, s: Settings) -> Outcome:
    """Run one claim; an exception becomes a FAIL outcome that names it."""
    try:
        return c.run(s)
    except Exception as exc:  # noqa: BLE001 - reported in the document, never swallowed silently
        return Outcome("-", "-", FAIL, f"{type(exc).__name__}: {exc}")
