"""Predictions read off the valuations: the rate ladder, the KL order, LN kernels, stream sites."""
from __future__ import annotations

import math

import attrs
import torch

from ddgraph import __version__
from ddgraph.compare.verdicts import Status
from ddgraph.core.approach import Approach
from ddgraph.core.engine import (
    SCALE_ORDERS,
    SCALE_ORDERS_EVENTS,
    VALUATION,
    VALUATION_EVENTS,
    VALUATION_INVARIANT,
    pair,
)
from ddgraph.core.graph import CLASSES, PRIMITIVE, ROLES, WEIGHT, Graph
from ddgraph.core.rules import RuleSet

IN_REACH, BRACKET, NO_RULE = Status


@attrs.frozen
class NodePrediction:
    """Predicted K-FAC rates of one weight node, per dead direction (index 0 = direction 1)."""

    node: str
    param: str
    module: str | None
    primitive: str
    kind: str
    a_rates: tuple  # per direction: (lo, hi) pairs; (None, None) when no rule reached it
    g_rates: tuple
    status: str
    lemmas: tuple[str, ...]  # a_lemmas and g_lemmas together
    rules: tuple[str, ...]
    reason: str = ""
    a_lemmas: tuple[str, ...] = ()  # cites of the rule blocks the A-rate rests on (forward, into the input)
    g_lemmas: tuple[str, ...] = ()  # cites of the rule blocks the G-rate rests on (backward, into the output)
    # eps regimes (THEORY §3.8), when they differ: the rates above every crossover, and the crossover
    # scales (t*_lo, t*_hi) of the normalisers around the node (None: a normaliser's floor is unknown)
    invariant: tuple | None = None  # (a_rates, g_rates) in the invariant regime
    crossover: tuple | None = None

    @property
    def a_rate(self):
        return _point(self.a_rates[0])

    @property
    def g_rate(self):
        return _point(self.g_rates[0])


def _point(p):
    """A number, ``inf``, a ``(lo, hi)`` bracket, or ``None``."""
    lo, hi = p
    if lo is None or hi is None:
        return None
    return lo if lo == hi else (lo, hi)


def _json_rate(p):
    v = _point(p)
    if v is None or isinstance(v, tuple):
        return None
    return "inf" if math.isinf(v) else v


@attrs.frozen
class Prediction:
    """Everything ddgraph predicts for one model under one approach."""

    model: str
    approach: Approach
    kl_order: object  # number, (lo, hi) or None
    nodes: tuple[NodePrediction, ...]
    ln_kernels: tuple[dict, ...]
    stream_sites: tuple[dict, ...]
    unknown_ops: tuple[dict, ...]  # ops with no rule that some weight row depends on
    graph: Graph = attrs.field(repr=False, eq=False)
    tracer: str = ""
    overridden: tuple[str, ...] = ()  # built-in rules a user directory replaced, "old -> new"
    bands: dict = attrs.field(factory=dict)  # rule file -> finite-t band, for rules that declare one
    inert_ops: tuple[dict, ...] = ()  # ops with no rule that no weight row depends on (position ids...)
    crossovers: tuple[dict, ...] = ()  # per normaliser and scale order: its eps crossover t* (THEORY §3.8)
    kl_order_above: object = None  # the KL order above every crossover, when it differs from kl_order

    @property
    def fisher_rate(self):
        k = self.kl_order
        if k is None or isinstance(k, tuple):
            return None if k is None else (2 * k[0] - 2, 2 * k[1] - 2)
        return math.inf if math.isinf(k) else 2 * k - 2

    @property
    def rlct(self):
        k = self.kl_order
        if k is None or isinstance(k, tuple):
            return None if k is None else (1 / (2 * k[1]), 1 / (2 * k[0]))
        return 0.0 if math.isinf(k) else 1 / (2 * k)

    @property
    def timings(self) -> dict:
        """Seconds each stage took on this prediction's graph: ``trace``, ``label``, ``predict`` (None for
        a stage run elsewhere, as the trace of a graph passed in)."""
        g = self.graph.nx.graph
        return {stage: g.get(f"{stage}_seconds") for stage in ("trace", "label", "predict")}

    def counts(self) -> dict[str, int]:
        out = {IN_REACH: 0, BRACKET: 0, NO_RULE: 0}
        for n in self.nodes:
            out[n.status] += 1
        return out

    def to_json(self) -> dict:
        """The JSON contract other tools read (keys documented in the README)."""
        def num(x):
            if x is None or isinstance(x, tuple):
                return None
            return "inf" if math.isinf(x) else x
        nodes = []
        for n in self.nodes:
            bracket = None
            if n.status == BRACKET:
                bracket = {"a_rate": list(n.a_rates[0]), "g_rate": list(n.g_rates[0])}
            nodes.append({
                "node": n.node, "param": n.param, "module": n.module, "primitive": n.primitive,
                "kind": n.kind, "a_rate": _json_rate(n.a_rates[0]), "g_rate": _json_rate(n.g_rates[0]),
                "status": n.status, "bracket": bracket, "lemmas": list(n.lemmas),
                "a_lemmas": list(n.a_lemmas), "g_lemmas": list(n.g_lemmas),
                "rules": list(n.rules), "reason": n.reason,
                "directions": [{"a_rate": _json_rate(a), "g_rate": _json_rate(g)}
                               for a, g in zip(n.a_rates, n.g_rates)],
                "regimes": _json_regimes(n),
            })
        return {
            "ddgraph_version": __version__, "model": self.model, "tracer": self.tracer,
            "regime": self.approach.regime, "loss": self.approach.loss, "fisher": self.approach.fisher,
            "kl_order": num(self.kl_order), "fisher_rate": num(self.fisher_rate), "rlct": num(self.rlct),
            "kl_order_bracket": list(self.kl_order) if isinstance(self.kl_order, tuple) else None,
            "kl_order_above_crossovers": num(self.kl_order_above),
            "nodes": nodes, "crossovers": list(self.crossovers),
            "ln_kernels": list(self.ln_kernels), "stream_sites": list(self.stream_sites),
            "unknown_ops": list(self.unknown_ops), "inert_unknown_ops": list(self.inert_ops),
            "counts": self.counts(),
            "rules_overridden": list(self.overridden),
            "notes": list(self.graph.nx.graph.get("notes", ())),
        }

    def to_frame(self):
        """The ladder as a pandas DataFrame, one row per weight node (needs pandas)."""
        from ddgraph.output.frames import prediction_frame

        return prediction_frame(self)


def _json_regimes(n: NodePrediction) -> dict | None:
    """Below and above the crossover scales, when the regimes give different rates (THEORY §3.8)."""
    if n.invariant is None:
        return None
    return {"t_star": None if n.crossover is None else list(n.crossover),
            "below": {"regime": "linear", "a_rate": _json_rate(n.a_rates[0]), "g_rate": _json_rate(n.g_rates[0])},
            "above": {"regime": "invariant", "a_rate": _json_rate(n.invariant[0][0]),
                      "g_rate": _json_rate(n.invariant[1][0])}}


def crossovers(graph: Graph) -> list[dict]:
    """Every normaliser's crossover scale ``t* = floor**(1/k)``, one per order ``k`` of its input's scale, on
    generic rows (``event`` None) or on the rows where a ReLU cuts every bulk channel (THEORY §3.11)."""
    out = []
    for n in graph.order():
        d = graph[n]
        floor = d.get("scale_floor")
        worlds = [(None, d.get(SCALE_ORDERS, ()))] + list(d.get(SCALE_ORDERS_EVENTS, {}).items())
        for event, ks in worlds:
            for k in ks:
                out.append({"node": n, "module": d.get("module"), "primitive": d[PRIMITIVE], "scale_floor": floor,
                            "order": k, "t_star": None if floor is None else floor ** (1 / k), "event": event})
    return out


def _worlds(d: dict) -> list[tuple]:
    """A node's valuations per world, generic rows first: ``(linear, invariant)``, the invariant one the
    linear one where that world has no crossover (THEORY §3.8, §3.11)."""
    pairs = [(d[VALUATION], d.get(VALUATION_INVARIANT))] + list(d.get(VALUATION_EVENTS, {}).values())
    return [(lin, inv or lin) for lin, inv in pairs]


def _min_pair(pairs):
    """The lowest order over worlds of ``(lo, hi)`` pairs (an expectation of squares: no cancellation
    between rows); None absorbs."""
    if any(p[0] is None or p[1] is None for p in pairs):
        return (None, None)
    return (min(p[0] for p in pairs), min(p[1] for p in pairs))


def _why(d: dict, kind: str, dirs) -> frozenset:
    """The rule blocks a node's ``kind`` order rests on (THEORY §3.6), in the first world (generic rows
    first) that attains its lowest value in the linear regime."""
    out = frozenset()
    for j in dirs:
        vals = [(pair(getattr(lin, kind), j)[0], lin.why.get((kind, j), frozenset())) for lin, _ in _worlds(d)]
        finite = [v for v, _ in vals if v is not None]
        low = min(finite) if finite else None
        out |= next((w for v, w in vals if v == low), vals[0][1])
    return out


def _rates(g, x, n, regime: int, dirs) -> tuple[tuple, tuple]:
    """``(a_rates, g_rates)`` of a row reading ``x``'s v and ``n``'s w, the lowest over worlds, in the
    linear (0) or invariant (1) regime."""
    xs, ns = _worlds(g.nodes[x]), _worlds(g.nodes[n])
    a = tuple(_min_pair([_double(pair(w[regime].v, j)) for w in xs]) for j in dirs)
    gr = tuple(_min_pair([_double(pair(w[regime].w, j)) for w in ns]) for j in dirs)
    return a, gr


def _relatives(graph: Graph, marked: set):
    """``related(n)``: the nodes of ``marked`` that are ``n``, an ancestor or a descendant of ``n``.

    One pass each way in graph order, each node carrying the marked nodes above (below) it as the bits
    of an integer, so the cost grows with the graph's size, not with its size times its weights."""
    g, order = graph.nx, graph.order()
    if not marked:
        return lambda n: frozenset()
    bit = {m: 1 << i for i, m in enumerate(m for m in order if m in marked)}
    up: dict[str, int] = {}
    for n in order:
        up[n] = bit.get(n, 0)
        for p in g.predecessors(n):
            up[n] |= up.get(p, 0)
    down: dict[str, int] = {}
    for n in reversed(order):
        down[n] = bit.get(n, 0)
        for c in g.successors(n):
            down[n] |= down.get(c, 0)

    def related(n: str) -> frozenset:
        bits = up.get(n, 0) | down.get(n, 0)
        return frozenset(m for m, b in bit.items() if bits & b)

    return related


def _regimes(g, x, n, rates, crosses, near) -> dict:
    """``invariant`` and ``crossover`` of a row whose rates ``(a, g)`` read ``x``'s v and ``n``'s w."""
    dirs = range(1, len(rates[0]) + 1)
    inv = _rates(g, x, n, 1, dirs)
    if inv == rates:
        return {}
    stars = [c["t_star"] for c in crosses if c["node"] in near]
    known = stars and None not in stars
    return {"invariant": inv, "crossover": (min(stars), max(stars)) if known else None}


def _kl_order(graph: Graph, regime: int):
    """The lowest deviation order of the model output (the KL order k) over worlds, in the linear (0) or
    invariant (1) regime; None for the invariant regime when no world has one."""
    g = graph.nx
    out_node = next(iter(graph.nodes_exposing("kl")), None)
    if out_node is None or not g.nodes[out_node][ROLES]:
        return None
    x = g.nodes[out_node][ROLES][0][1]
    invariants = [g.nodes[x].get(VALUATION_INVARIANT)] + [inv for _, inv in g.nodes[x].get(VALUATION_EVENTS, {}).values()]
    if VALUATION not in g.nodes[x] or (regime and all(inv is None for inv in invariants)):
        return None
    los, his = [], []
    for world in _worlds(g.nodes[x]):
        dd = world[regime].d
        los += [dd[c][0] for c in g.nodes[x][CLASSES]]
        his += [dd[c][1] for c in g.nodes[x][CLASSES]]
    if any(v is None for v in los + his):
        return None
    lo, hi = min(los), min(his)
    return lo if lo == hi else (lo, hi)


def _double(p):
    lo, hi = p
    return (None if lo is None else 2 * lo, None if hi is None else 2 * hi)


def _status(*pairs) -> str:
    if any(p[0] is None or p[1] is None for p in pairs):
        return NO_RULE
    if any(p[0] != p[1] for p in pairs):
        return BRACKET
    return IN_REACH


def ln_kernel(graph: Graph, node: str) -> dict:
    d = graph[node]
    name = d.get("norm_weight")
    entry = {"module": d.get("module") or node, "node": node}
    width = d["shape"][-1]
    if name is None:
        entry["direction"] = [1 / math.sqrt(width)] * width
        entry["source"] = "no affine weight: the kernel is the all-ones direction"
        return entry
    gamma = graph.gm.get_parameter(name).detach()
    if gamma.device.type == "meta":
        entry["direction"] = None
        entry["source"] = f"{name} lives on the meta device: the direction 1/gamma needs real weights"
        return entry
    gamma = gamma.double().flatten() + d.get("norm_gain_offset", 0.0)  # Gemma's gain is 1 + w
    zero = gamma == 0
    u = torch.where(zero, torch.ones_like(gamma), torch.zeros_like(gamma)) if zero.any() else 1 / gamma
    entry["direction"] = (u / u.norm()).tolist()
    entry["source"] = f"1/{name}" if not zero.any() else f"e_i where {name}_i = 0"
    return entry


def _cites(rules: RuleSet, why) -> tuple[str, ...]:
    """The citations of the rule blocks in ``why``, a set of ``(rule file, block)`` pairs (THEORY §3.6)."""
    by_source = {r.source: r for r in rules.rules}
    return tuple(sorted({c for src, block in why if src in by_source for c in by_source[src].cites.get(block, ())}))


def assemble(graph: Graph, rules: RuleSet, approach: Approach) -> Prediction:
    """Collect per-node predictions from a graph whose valuations have been computed."""
    g = graph.nx
    order = graph.order()
    nodes = []
    crosses = crossovers(graph)
    no_rule = {m for m in order if VALUATION in g.nodes[m] and g.nodes[m][VALUATION].rule is None
               and g.nodes[m][VALUATION].reason}
    related = _relatives(graph, no_rule | {c["node"] for c in crosses})
    for n in graph.nodes_exposing("kfac"):
        d = g.nodes[n]
        x = d[ROLES][0][1]
        vn = d[VALUATION]
        dirs = range(1, graph.n_dead + 1)
        a, gr = _rates(g, x, n, 0, dirs)
        status = _status(*a, *gr)
        near = related(n)
        a_why, g_why = _why(g.nodes[x], "v", dirs), _why(d, "w", dirs)
        used = ({vn.rule} if vn.rule else set()) | {src for src, _ in a_why | g_why}
        a_lem, g_lem = _cites(rules, a_why), _cites(rules, g_why)
        reasons = sorted({g.nodes[m][VALUATION].reason for m in near if m in no_rule})
        w = d[WEIGHT]
        nodes.append(NodePrediction(
            node=n, param=w.get("name") or w["param"], module=d.get("module"), primitive=d[PRIMITIVE], kind=w["kind"],
            a_rates=a, g_rates=gr, status=status, lemmas=tuple(sorted(set(a_lem) | set(g_lem))),
            rules=tuple(sorted(used)), reason="; ".join(reasons) if status == NO_RULE else "",
            a_lemmas=a_lem, g_lemmas=g_lem, **_regimes(g, x, n, (a, gr), crosses, near)))
        for sl in w.get("slices", ()):  # fused weights: one row per output slice (q, k, v)
            gs = _rates(g, x, sl["node"], 0, dirs)[1]
            s_why = _why(g.nodes[sl["node"]], "w", dirs)
            s_used = used | {src for src, _ in s_why}
            s_lem = _cites(rules, s_why)
            s_status = _status(*a, *gs)
            nodes.append(NodePrediction(
                node=f"{n}[{sl['name']}]", param=f"{w.get('name') or w['param']}[{sl['name']}]", module=d.get("module"),
                primitive=d[PRIMITIVE], kind=w["kind"], a_rates=a, g_rates=gs, status=s_status,
                lemmas=tuple(sorted(set(a_lem) | set(s_lem))),
                rules=tuple(sorted(s_used)), reason="; ".join(reasons) if s_status == NO_RULE else "",
                a_lemmas=a_lem, g_lemmas=s_lem, **_regimes(g, x, sl["node"], (a, gs), crosses, near)))
    kl, kl_above = _kl_order(graph, 0), _kl_order(graph, 1)
    lns = tuple(ln_kernel(graph, n) for n in graph.nodes_exposing("kernel"))
    sites = []
    for n in graph.nodes_exposing("stream"):
        d = g.nodes[n]
        v = d[VALUATION].v
        finite = [v[c][0] for c in d[CLASSES] if v[c][0] is not None and not math.isinf(v[c][0])]
        known = all(v[c][0] is not None for c in d[CLASSES])
        sites.append({"node": n, "module": d.get("module"),
                      "stream_rate": 2 * max(finite) if known and finite else None,
                      "lemmas": ["Cor 58"]})
    unknown = [{"node": n, "op": g.nodes[n].get("unknown_op", g.nodes[n]["target"]),
                "module": g.nodes[n].get("module")} for n in order if "unknown_op" in g.nodes[n]]
    reasons = " ".join(n.reason for n in nodes)  # an unknown op no row depends on is not worth naming
    felt = tuple(u for u in unknown if f"unrecognised op {u['op']}" in reasons)
    return Prediction(model=graph.model_name, approach=approach, kl_order=kl, nodes=tuple(nodes),
                      ln_kernels=lns, stream_sites=tuple(sites), unknown_ops=felt, graph=graph,
                      inert_ops=tuple(u for u in unknown if u not in felt), crossovers=tuple(crosses),
                      kl_order_above=kl_above if kl_above != kl else None,
                      tracer=graph.tracer, overridden=tuple(rules.overridden),
                      bands={r.source: r.band for r in rules.rules if r.band is not None})
