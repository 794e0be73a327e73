"""The rule engine: one forward and one backward min-plus sweep over a labelled graph.

The engine never names a primitive. For each node it asks the rule set for the node's rule,
evaluates the rule's expressions per class (bulk = 0, dead direction j = j), and combines
contributions at fan-out by ``min`` (a gradient is a sum over consumers; orders take the minimum).
A node without a rule gets ``None`` valuations, which absorb everything they reach, so "no rule"
propagates instead of defaulting. Bracket rules are handled by running the sweep in a lower and
an upper world: min and + are monotone, so the two runs bound every valuation. When a normaliser's input
scale vanishes (a rule's ``[invariant]`` regime applies, THEORY §3.8), the sweeps run once more with every
such rule in that regime; those valuations are stored under ``node[VALUATION_INVARIANT]``.

Signs (THEORY §3.11): a rule's forward block may give ``s``, the sign of a class's leading term on generic
rows; a class whose sign is the cut ``0`` is exactly zero there (v = d = inf) and passes no gradient back.
Event worlds: for each ReLU that clips (CLIPS) upstream of a normaliser whose scale mixes classes, the
sweeps run once more on the rows where it cuts every bulk channel (its bulk output exactly zero); those
valuations are stored under ``node[VALUATION_EVENTS][relu]``.
"""
from __future__ import annotations

import math

import attrs

from ddgraph.core import signs
from ddgraph.core.approach import Approach, resolve
from ddgraph.core.expr import INF, Call, Ref, evaluate
from ddgraph.core.graph import APPROACH, BULK_ORDERS, CLASSES, CLIPS, PRIMITIVE, ROLES, VALUE_ORDERS, VALUE_SIGNS, Graph
from ddgraph.core.rules import RuleSet
from ddgraph.errors import ConfigError

VALUATION = "valuation"  # node key where results are stored
VALUATION_INVARIANT = "valuation_invariant"  # the same, every normaliser in its scale-invariant regime
SCALE_ORDERS = "scale_orders"  # a normaliser's positive finite orders k of its input's scale (THEORY §3.8)
VALUATION_EVENTS = "valuation_events"  # {relu: (linear, invariant or None)} on the rows it cuts every bulk channel
SCALE_ORDERS_EVENTS = "scale_orders_events"  # {relu: scale orders} of a normaliser in that event world


@attrs.define
class Valuation:
    """Orders of one node's output per class: magnitude v, deviation d, gradient w as (lo, hi)."""

    v: dict = attrs.Factory(dict)
    d: dict = attrs.Factory(dict)
    w: dict = attrs.Factory(dict)
    s: dict = attrs.Factory(dict)  # class -> [sign in the lower world, in the upper world] (THEORY §3.11)
    why: dict = attrs.Factory(dict)  # (kind, class) -> {(rule file, 'forward'|'backward')} the lower order rests on
    rule: str | None = None  # source file of the rule used, None when no rule
    reason: str = ""


def _roles(d: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for role, src in d[ROLES]:
        out.setdefault(role, []).append(src)
    return out


def exponent_tables(graph: Graph, approach: Approach) -> dict[str, dict[str, tuple[float, ...]]]:
    """Per approach exponent the primitives declare, per parameter it names, the per-direction values."""
    declared = graph.primitives.exponent_defaults()
    unknown = sorted(set(approach.exponents) - set(declared))
    if unknown:
        raise ConfigError(f"approach exponent {unknown[0]!r} is declared by no primitive of this run; "
                          f"declared: {', '.join(sorted(declared)) or 'none'}")
    named = [d.get(APPROACH, {}) for _, d in graph.nx.nodes(data=True)]
    return {name: resolve(approach, name, [a[name] for a in named if name in a], e.default, e.noun)
            for name, e in declared.items()}


def run(graph: Graph, rules: RuleSet, approach: Approach) -> dict[str, Valuation]:
    """Compute valuations of every node; stores them under ``node[VALUATION]`` (and, when a normaliser's
    input scale vanishes, ``node[VALUATION_INVARIANT]`` and its ``node[SCALE_ORDERS]``); returns the first."""
    if not graph.labelled:
        raise ValueError("label the graph first (ddgraph.label)")
    for n in graph.nx.nodes:
        for key in (VALUATION_INVARIANT, SCALE_ORDERS, VALUATION_EVENTS, SCALE_ORDERS_EVENTS):
            graph.nx.nodes[n].pop(key, None)
    results, invariant, scales = _world(graph, rules, approach, None)
    for n, val in results.items():
        graph.nx.nodes[n][VALUATION] = val
        if invariant is not None:
            graph.nx.nodes[n][VALUATION_INVARIANT] = invariant[n]
    for n, ks in scales.items():
        graph.nx.nodes[n][SCALE_ORDERS] = ks
    for relu in _events(graph, rules, approach, results):
        lin, inv, scales = _world(graph, rules, approach, relu)
        for n, val in lin.items():
            graph.nx.nodes[n].setdefault(VALUATION_EVENTS, {})[relu] = (val, None if inv is None else inv[n])
        for n, ks in scales.items():
            if ks:
                graph.nx.nodes[n].setdefault(SCALE_ORDERS_EVENTS, {})[relu] = ks
    return results


def _world(graph, rules, approach, event):
    """The linear sweeps, the invariant ones (None when no normaliser's scale vanishes: a scale of order
    0 has no crossover, and the invariant regime only lowers orders) and the scale orders of the latter."""
    linear = _sweeps(graph, rules, approach, "linear", event)
    if not any(_scale_orders(graph, rules, approach, linear).values()):
        return linear, None, {}
    invariant = _sweeps(graph, rules, approach, "invariant", event)
    return linear, invariant, _scale_orders(graph, rules, approach, invariant)


def _events(graph: Graph, rules: RuleSet, approach: Approach, res: dict) -> list[str]:
    """The ReLUs whose cut of every bulk channel at once gets its own world (THEORY §3.11): those that clip,
    whose input bulk is of finite order and not surely positive, and that lie upstream of a normaliser whose
    scale mixes classes (only there does the cut change an order: it makes that scale vanish)."""
    g, setting = graph.nx, approach.setting
    order = graph.order()
    clipping = [n for n in order if g.nodes[n].get(CLIPS) and n in res]
    if not clipping:
        return []
    reach: dict[str, bool] = {}
    for n in reversed(order):
        rule = rules.lookup(g.nodes[n][PRIMITIVE], setting) if n in res else None
        mixes = rule is not None and rule.scale is not None and _mixes(rule.scale)
        reach[n] = mixes or any(reach.get(c, False) for c in g.successors(n))
    out = []
    for n in clipping:
        srcs = [s for _, s in g.nodes[n][ROLES] if s in res]
        if not any(reach.get(c, False) for c in g.successors(n)) or len(srcs) != 1:
            continue
        x = res[srcs[0]]
        v, s = x.v.get(0, [None])[0], x.s.get(0, [signs.MIXED])[0]
        if v is not None and v < INF and s != signs.PLUS:
            out.append(n)
    return out


def _mixes(tree) -> bool:
    """Whether an expression reads every class (``all()``)."""
    if isinstance(tree, Call):
        return tree.func == "all" or any(_mixes(a) for a in tree.args)
    return any(_mixes(t) for t in getattr(tree, "terms", ()))


def _scale_orders(graph: Graph, rules: RuleSet, approach: Approach, res: dict) -> dict[str, tuple]:
    """Per normaliser, the orders ``k`` of its input's scale in the sweep ``res``: the distinct positive
    finite values over its classes (THEORY §3.8)."""
    exps = exponent_tables(graph, approach)
    out = {}
    for n in graph.order():
        d = graph.nx.nodes[n]
        rule = rules.lookup(d[PRIMITIVE], approach.setting) if n in res else None
        if rule is None or rule.scale is None:
            continue
        d["_name"] = n
        lookup = _lookup_factory(graph, d, res, exps, 0, _roles(d))
        ks = [evaluate(rule.scale, lookup, c, list(range(graph.n_dead + 1))) for c in d[CLASSES]]
        out[n] = tuple(sorted({k for k, _ in filter(None, ks) if 0 < k < INF}))
    return out


def _sweeps(graph: Graph, rules: RuleSet, approach: Approach, regime: str, event=None) -> dict[str, Valuation]:
    exps = exponent_tables(graph, approach)
    setting = approach.setting
    results = {n: Valuation() for n, d in graph.nx.nodes(data=True)
               if not graph.primitives[d[PRIMITIVE]].inert}
    bracket = any(r is not None and r.is_bracket for r in
                  (rules.lookup(graph.nx.nodes[n][PRIMITIVE], setting) for n in results))
    for world in ((0, 1) if bracket else (0,)):
        _forward(graph, rules, setting, exps, results, world, regime, event)
        _backward(graph, rules, setting, exps, results, world, regime)
    if not bracket:  # every rule is exact: the upper world equals the lower one
        for val in results.values():
            for table in (val.v, val.d, val.w, val.s):
                for pair in table.values():
                    pair[1] = pair[0]
    return results


def _node_param(d: dict, name: str, exps: dict, cls: int, value_names=()) -> float:
    """A named order in class ``cls``. A value order (a normaliser's gain) is what labelling read off
    the node's own values under ``value_orders`` (0 generic, inf exactly zero; values never read count
    as generic). An approach exponent in
    the bulk is the order of the parameter's bulk part: 0 (generic, the model's own values), or what
    labelling recorded under ``bulk_orders`` (inf where those values are exactly zero, as a
    zero-initialised head; THEORY §3.9)."""
    if name in value_names:
        return d.get(VALUE_ORDERS, {}).get(name, {}).get(cls, 0.0)
    if cls == 0:
        return d.get(BULK_ORDERS, {}).get(name, 0.0)
    param = d.get(APPROACH, {}).get(name)
    table = exps.get(name, {})
    return table[param][cls - 1] if param in table else INF


def _lookup_factory(graph, d, res, exps, world, roles):
    g = graph.nx
    cmap = d.get("classmap")

    def lookup(ref: Ref, cls: int):
        if ref.kind == "param":
            return _node_param(d, ref.role, exps, cls, graph.primitives[d[PRIMITIVE]].value_names), frozenset()
        srcs = [None] if ref.role == "out" else roles.get(ref.role, [])
        vals = []
        for src in srcs:
            val = res[d["_name"]] if src is None else res.get(src)
            if val is None:
                return None  # an inert operand has no valuation: rules must not read it
            c = cls if (src is None or not cmap) else cmap[ref.role].get(cls, cls)
            classes = d[CLASSES] if src is None else g.nodes[src][CLASSES]
            if c not in classes:
                vals.append((INF, frozenset()))
                continue
            pair = getattr(val, ref.kind).get(c)
            if pair is None or pair[world] is None:
                return None
            vals.append((pair[world], val.why.get((ref.kind, c), frozenset())))
        if not vals:
            return INF, frozenset()
        best = min(v for v, _ in vals)
        return best, frozenset().union(*(w for v, w in vals if v == best))

    return lookup


def _sign_lookups(graph, d, res, world, roles):
    """``operand(role, over_all)`` and ``value(name)`` of :func:`ddgraph.core.signs.evaluate`, per class."""
    g = graph.nx
    cmap = d.get("classmap")

    def operand_for(cls):
        def operand(role, over_all):
            terms = []
            for src in roles.get(role, []):
                val = res.get(src)
                if val is None:
                    return signs.MIXED
                classes = g.nodes[src][CLASSES]
                picked = classes if over_all else [cmap[role].get(cls, cls) if cmap else cls]
                for c in picked:
                    if c in classes:
                        terms.append((val.v.get(c, [None, None])[world], val.s.get(c, [signs.MIXED] * 2)[world]))
            return signs.lead(terms)
        return operand

    def value_for(cls):
        return lambda name: d.get(VALUE_SIGNS, {}).get(name, {}).get(cls, signs.MIXED)

    return operand_for, value_for


def _forward(graph, rules, setting, exps, res, world, regime, event=None):
    g = graph.nx
    all_classes = list(range(graph.n_dead + 1))
    for n in graph.order():
        d = g.nodes[n]
        if n not in res:
            continue
        d["_name"] = n
        val = res[n]
        roles = _roles(d)
        rule = rules.lookup(d[PRIMITIVE], setting)
        rule = rule and rule.in_regime(regime)
        if rule is None:
            srcs = [s for ss in roles.values() for s in ss if s in res]
            constant = all(all(p[world] == INF for p in res[s].d.values() if p[world] is not None)
                           and all(p[world] is not None for p in res[s].d.values()) for s in srcs)
            val.rule = None
            _set(val.s, d[CLASSES], world, lambda c: signs.MIXED)
            if constant and srcs:
                val.reason = f"no rule for {d['primitive']}, but its inputs do not depend on t"
                _set(val.v, d[CLASSES], world, lambda c: 0.0)
                _set(val.d, d[CLASSES], world, lambda c: INF)
            else:
                val.reason = _no_rule_reason(d)
                _set(val.v, d[CLASSES], world, lambda c: None)
                _set(val.d, d[CLASSES], world, lambda c: None)
            continue
        val.rule = rule.source
        _set(val.s, d[CLASSES], world, lambda c: signs.MIXED)
        if _reached_by_no_rule(res, roles, world):  # a rule never launders a missing valuation (a reset
            _set(val.v, d[CLASSES], world, lambda c: None)  # to order 0 behind an unknown op is unknown too)
            _set(val.d, d[CLASSES], world, lambda c: None)
            continue
        lookup = _lookup_factory(graph, d, res, exps, world, roles)
        operand_for, value_for = _sign_lookups(graph, d, res, world, roles)
        for c in d[CLASSES]:
            block = rule.forward["bulk" if c == 0 else "dead"]
            for key in ("v", "d"):
                out = evaluate(block[key][world], lookup, c, all_classes)
                getattr(val, key).setdefault(c, [None, None])[world] = None if out is None else out[0]
                if out is not None and world == 0:
                    val.why[(key, c)] = out[1] | {(rule.source, rule.label("forward"))}
            if block.get("s") is not None:
                def order(tree, c=c):
                    out = evaluate(tree, lookup, c, all_classes)
                    return None if out is None else out[0]
                val.s[c][world] = signs.evaluate(block["s"], operand_for(c), value_for(c), order, bool(d.get(CLIPS)))
            if n == event and c == 0:  # the event world: this ReLU cuts every bulk channel
                val.s[c][world] = signs.ZERO
            if val.s[c][world] == signs.ZERO:  # a cut: the class is exactly zero on these rows
                val.v[c][world] = val.d[c][world] = INF


def _reached_by_no_rule(res, roles, world) -> bool:
    """Whether an operand carries no valuation (an op with no rule lies upstream)."""
    return any(p[world] is None for ss in roles.values() for s in ss if s in res
               for table in (res[s].v, res[s].d) for p in table.values())


def _no_rule_reason(d: dict) -> str:
    if "unknown_op" in d:
        return f"no rule: unrecognised op {d['unknown_op']}"
    return f"no rule for primitive {d['primitive']}"


def _set(table, classes, world, fn):
    for c in classes:
        table.setdefault(c, [None, None])[world] = fn(c)


def _backward(graph, rules, setting, exps, res, world, regime):
    g = graph.nx
    all_classes = list(range(graph.n_dead + 1))
    acc: dict[str, dict[int, list]] = {n: {} for n in res}
    for n in reversed(graph.order()):
        if n not in res:
            continue
        d = g.nodes[n]
        val = res[n]
        for c in d[CLASSES]:
            contribs = acc[n].get(c, [])
            if any(x is None for x in contribs):
                val.w.setdefault(c, [None, None])[world] = None
                continue
            w = min((x[0] for x in contribs), default=INF)
            val.w.setdefault(c, [None, None])[world] = w
            if world == 0:
                val.why[("w", c)] = frozenset().union(*(x[1] for x in contribs if x[0] == w))
        roles = _roles(d)
        rule = rules.lookup(d[PRIMITIVE], setting)
        rule = rule and rule.in_regime(regime)
        cmap = d.get("classmap")
        lookup = _lookup_factory(graph, d, res, exps, world, roles) if rule else None
        for role, srcs in roles.items():
            for src in srcs:
                if src not in res:
                    continue
                if cmap:  # element-wise: each output class feeds the operand class under it
                    pairs = [(c, cmap[role].get(c, c)) for c in d[CLASSES]]
                else:
                    pairs = [(c, c) for c in g.nodes[src][CLASSES]]
                for c_eval, c_src in pairs:
                    if rule is None:
                        contrib = None
                    elif val.s.get(c_eval, [None, None])[world] == signs.ZERO:
                        contrib = (INF, frozenset())  # a cut class: its local Jacobian is zero on these rows
                    else:
                        block = rule.backward["bulk" if c_eval == 0 else "dead"]
                        contrib = evaluate(block[role][world], lookup, c_eval, all_classes)
                        if contrib is not None:
                            contrib = (contrib[0], contrib[1] | {(rule.source, rule.label("backward"))})
                    acc[src].setdefault(c_src, []).append(contrib)


def pair(table: dict, cls: int):
    """``(lo, hi)`` for a class, ``(inf, inf)`` if the class is absent."""
    p = table.get(cls)
    return (INF, INF) if p is None else (p[0], p[1])


def is_exact(p) -> bool:
    return p[0] is not None and p[1] is not None and (p[0] == p[1] or (math.isinf(p[0]) and math.isinf(p[1])))
