"""Weight edges: linear, convolution, matmul/addmm with a parameter, embedding; fused q/k/v slices."""
from __future__ import annotations

import torch

from ddgraph.core.graph import DEP, OPERANDS, PRIMITIVE, WEIGHT, Graph
from ddgraph.frontend.ops import WEIGHT_OPS
from ddgraph.frontend.patterns.base import Match, const_arg, display_name, param_name, param_of, pattern


@pattern("weight", family="weights")
def weight(g, n) -> Match | None:
    d = g.nodes[n]
    op, fx, ops = d["op"], d["fx"], d[OPERANDS]
    if op not in WEIGHT_OPS or d[DEP] != "input":
        return None
    dep = {o: g.nodes[o][DEP] for o in ops}
    if op == "embedding":
        w = next((o for o in ops if dep[o] == "param"), None)
        ids = next((o for o in ops if dep[o] != "param"), None)
        if w is None or ids is None:
            return None
        return Match("weight", [("x", ids)], attrs=dict(
            weight=dict(kind="embedding", operand=w, param=param_name(g, w, n), name=display_name(g, w, n),
                        w_in_axis=0, w_out_axis=1, x_axis=None, y_axis=-1, bias=None)))
    if op in ("linear", "conv"):
        x, w = fx.args[0].name, fx.args[1].name
        bias = const_arg(fx, "bias", 2)
        if dep.get(w) != "param" or dep.get(x) != "input":
            return None
        conv = op == "conv"
        # a grouped (depthwise) convolution's weight holds in_channels / groups input channels
        groups = g.nodes[x]["shape"][1] // g.nodes[w]["shape"][1] if conv else 1
        return Match("weight", [("x", x)], attrs=dict(weight=dict(
            kind="conv" if conv else "linear", operand=w, param=param_name(g, w, n),
            name=display_name(g, w, n), w_in_axis=1,
            w_out_axis=0, x_axis=1 if conv else -1, y_axis=1 if conv else -1,
            bias=param_of(g, bias), groups=groups)))
    if op in ("matmul", "mm", "bmm", "addmm"):
        args = [a.name if isinstance(a, torch.fx.Node) else None for a in fx.args[:3]]
        bias = args[0] if op == "addmm" else None
        a, b = (args[1], args[2]) if op == "addmm" else (args[0], args[1])
        if a not in dep or b not in dep:
            return None
        if dep[a] == "input" and dep[b] == "param":
            x, w, lay = a, b, dict(w_in_axis=-2, w_out_axis=-1, x_axis=-1, y_axis=-1)
        elif dep[a] == "param" and dep[b] == "input":
            x, w, lay = b, a, dict(w_in_axis=-1, w_out_axis=-2, x_axis=-2, y_axis=-2)
        else:
            return None
        return Match("weight", [("x", x)], attrs=dict(weight=dict(
            kind="matmul", operand=w, param=param_name(g, w, n), name=display_name(g, w, n),
            bias=param_of(g, bias), **lay)))
    return None


_SLICE_NAMES = {3: ("q", "k", "v"), 2: ("k", "v")}


def fused_slices(graph: Graph) -> None:
    """Weights whose output is split into slices used apart (GPT-2's fused qkv ``c_attn``): record
    each slice's output node and dead indices in ``weight['slices']``, so the report gives a row per
    slice. Follows shape-only ops from the weight output to a ``split`` along its output axis."""
    g = graph.nx
    for n in graph.nodes_with("weight"):
        w = g.nodes[n][WEIGHT]
        u, width = n, g.nodes[n]["shape"][w["y_axis"]]
        while True:
            succ = list(g.successors(u))
            if len(succ) != 1 or g.nodes[succ[0]][PRIMITIVE] != "shape":
                break
            u = succ[0]
            if g.nodes[u]["op"] == "split":
                break
        d = g.nodes[u]
        if d["op"] != "split" or not d.get("tuple_shapes"):
            continue
        fx = d["fx"]
        dim = fx.kwargs.get("dim", fx.args[2] if len(fx.args) > 2 else 0)
        shape_in = g.nodes[d[OPERANDS][0]]["shape"]
        if dim % len(shape_in) != len(shape_in) - 1 or shape_in[-1] != width:
            continue
        sizes = [s[-1] for s in d["tuple_shapes"]]
        getitems = {g.nodes[c]["fx"].args[1]: c for c in g.successors(u) if g.nodes[c]["op"] == "getitem"}
        names = _SLICE_NAMES.get(len(sizes), tuple(str(i) for i in range(len(sizes))))
        slices, start = [], 0
        for i, size in enumerate(sizes):
            if i in getitems:
                slices.append({"name": names[i], "node": getitems[i],
                               "dead_out": {j: [k for k in idx if start <= k < start + size]
                                            for j, idx in w["dead_out"].items()}})
            start += size
        if len(slices) > 1:
            w["slices"] = slices
