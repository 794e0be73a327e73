"""The labelling pass: assign every node of a traced graph a primitive.

The patterns of a :class:`~ddgraph.frontend.patterns.PatternSet` are tried in order on every node (a
plugin's before the built-ins); they see module, functional and ATen forms alike through the
canonical op names of :mod:`ddgraph.frontend.ops`. Fusing patterns (a hand-written RMSNorm) collapse a
subgraph into its output node. Then :func:`ddgraph.frontend.channels.assign` places the dead coordinates
and settles the labels that depend on which axes carry channels, and the pattern set's passes run.
"""
from __future__ import annotations

import networkx as nx

from ddgraph.core.graph import APPROACH, DEP, OPERANDS, PRIMITIVE, ROLES, Graph
from ddgraph.core.primitives import node_attr
from ddgraph.errors import LabelError
from ddgraph.frontend import channels
from ddgraph.frontend.build import tensor_operands
from ddgraph.frontend.ops import GATHER_OPS, SHAPE_OPS
from ddgraph.frontend.plugins import Extensions
from ddgraph.frontend.plugins import extensions as _builtin


def _positions(g: nx.DiGraph, name: str, ops: list) -> bool:
    """A gather from one parameter by integer ids that are computed (not a model input reached
    through views only): position or token-type ids built from the input's shape or padding."""
    tables = [o for o in ops if g.nodes[o][DEP] == "param"]
    ids = [o for o in ops if g.nodes[o][DEP] == "input"]
    if len(tables) != 1 or len(ids) != 1 or "int" not in (g.nodes[ids[0]]["dtype"] or ""):
        return False
    n = ids[0]
    while g.nodes[n]["op"] in SHAPE_OPS and g.nodes[n][OPERANDS]:
        n = g.nodes[n][OPERANDS][0]
    return g.nodes[n]["fx"].op != "placeholder"


def _classify_dependence(g: nx.DiGraph) -> None:
    """Set ``dep`` on every node: 'input', 'param' (a parameter or shape-only view), 'const', 'mixed'."""
    for name in g.graph["order"]:
        d = g.nodes[name]
        fx = d["fx"]
        ops = d[OPERANDS] = tensor_operands(g, name)
        if fx.op == "placeholder":
            d[DEP] = "input"
        elif fx.op == "get_attr":
            d[DEP] = "param" if d["is_parameter"] else "const"
        else:
            deps = {g.nodes[o][DEP] for o in ops}
            if d["op"] in GATHER_OPS and _positions(g, name, ops):
                # rows of a parameter picked by ids computed from the input's layout (RoBERTa's
                # position ids, a cumulative sum over the padding mask): a table of positions added
                # like a bias, as with constant position ids below, not a lookup of the data
                d[DEP] = "param"
                d["param"] = next(g.nodes[o]["param"] for o in ops if g.nodes[o][DEP] == "param")
            elif "input" in deps:
                d[DEP] = "input"
            elif not deps or deps == {"const"}:
                d[DEP] = "const"
            elif deps <= {"param", "const"} and d["op"] in SHAPE_OPS and len(ops) == 1:
                d[DEP] = "param"
                d["param"] = g.nodes[ops[0]]["param"]
            elif d["op"] in GATHER_OPS and [g.nodes[o][DEP] for o in ops].count("param") == 1 \
                    and deps == {"param", "const"}:
                # rows of a parameter picked by constant indices (a position or token-type
                # embedding table): still a parameter, added to the stream like a bias
                d[DEP] = "param"
                d["param"] = next(g.nodes[o]["param"] for o in ops if g.nodes[o][DEP] == "param")
            else:
                d[DEP] = "mixed"  # computed from parameters by a non-shape op


def _resolve_tied(graph: Graph) -> None:
    """Mark ``get_attr`` nodes that read a tied parameter (GPT-2's ``lm_head.weight`` is
    ``transformer.wte.weight``) as parameters, and record every name the tensor goes by."""
    names: dict[int, list[str]] = {}
    for name, p in graph.gm.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    for _, d in graph.nx.nodes(data=True):
        if d["fx"].op != "get_attr":
            continue
        try:
            p = graph.gm.get_parameter(str(d["fx"].target))
        except AttributeError:
            continue
        aliases = names.get(id(p), [])
        d["aliases"] = aliases
        if not d["is_parameter"]:
            d["is_parameter"] = True
            d.pop("is_constant", None)


def _fuse(g: nx.DiGraph, out: str, members: list[str]) -> None:
    """Collapse ``members`` into ``out``: inner nodes vanish, their outside inputs feed ``out`` (the
    graph's order drops them when labelling is done: :func:`label`)."""
    inner = [m for m in members if m != out]
    preds = {p for m in members for p in g.predecessors(m) if p not in members}
    g.remove_nodes_from(inner)
    for p in preds:
        g.add_edge(p, out)


def _label_node(patterns, g, n):
    for p in patterns:
        m = p(g, n)
        if m is not None:
            return m
    raise LabelError(f"node {n!r} ({g.nodes[n]['target']}): no pattern matched, not even the fallback")


def label(graph: Graph, *, n_dead: int = 1, extensions: Extensions | None = None) -> Graph:
    """Label every node of ``graph`` with a primitive and place the dead coordinates (in place).

    Parameters
    ----------
    graph : a traced :class:`Graph`.
    n_dead : number of dead directions per channel space (Thm 106); 1 by default.
    extensions : the run's patterns and primitives (:func:`ddgraph.frontend.plugins.extensions`); the
        built-in ones by default.

    Returns
    -------
    Graph
        The same graph, with ``primitive``, ``roles`` and dead-coordinate data on every node, and
        ``graph.primitives`` the vocabulary it was labelled with.
    """
    ext = extensions or _builtin()
    patterns, prims = ext.patterns, ext.primitives
    ordered = patterns.ordered()
    g = graph.nx
    _resolve_tied(graph)
    _classify_dependence(g)
    for n in list(g.graph["order"]):
        if n not in g or "primitive" in g.nodes[n]:
            continue  # removed or already labelled by a fusing pattern
        m = _label_node(ordered, g, n)
        if m.members:
            out = m.attrs.pop("fused_output")
            _fuse(g, out, m.members)
            n = out
            g.nodes[n]["members"] = m.members
            g.nodes[n][OPERANDS] = [src for _, src in m.roles]
        d = g.nodes[n]
        d[PRIMITIVE], d[ROLES] = m.primitive, m.roles
        d.update(m.attrs)
    g.graph["order"] = [n for n in g.graph["order"] if n in g]  # without the nodes fused away
    for _, d in g.nodes(data=True):  # the parameters a node's approach exponents attach to
        exps = prims[d[PRIMITIVE]].approach
        d[APPROACH] = {e.name: node_attr(d, e.attr) for e in exps if node_attr(d, e.attr)}
    graph.n_dead = n_dead
    graph.primitives = g.graph["primitives"] = prims
    channels.assign(graph)
    for run_pass in patterns.passes:
        run_pass(graph)
    graph.labelled = True
    return graph
