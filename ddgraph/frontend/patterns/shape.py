"""Shape-only ops (views, transposes, splits, concatenations), reductions, and learned tokens
prepended along the token axis."""
from __future__ import annotations

from ddgraph.core.graph import CLASSES, DEP, OPERANDS, PRIMITIVE, Graph
from ddgraph.core.primitives import Primitive
from ddgraph.frontend.channels import reduce_dims, varies
from ddgraph.frontend.ops import POOL_OPS, REDUCE_OPS, SHAPE_OPS
from ddgraph.frontend.patterns.base import Match, const_arg, pattern


@pattern("prepend_token", family="shape")
def prepend_token(g, n) -> Match | None:
    """``cat([param.expand(B, 1, D), x], dim=tokens)``: ViT's class token, registers."""
    d = g.nodes[n]
    if d["op"] != "cat" or d[DEP] != "input" or len(d[OPERANDS]) != 2:
        return None
    fx = d["fx"]
    dim = const_arg(fx, "dim", 1, 0)
    shape = d["shape"]
    if shape is None or len(shape) < 3 or dim % len(shape) != len(shape) - 2:
        return None  # only along the token axis (the channel axis stays whole)
    params = [o for o in d[OPERANDS] if g.nodes[o][DEP] == "param"]
    acts = [o for o in d[OPERANDS] if g.nodes[o][DEP] == "input"]
    if len(params) != 1 or len(acts) != 1:
        return None
    return Match("prepend_token", [("b", acts[0])], attrs=dict(bias_param=g.nodes[params[0]]["param"]))


@pattern("pool", "pool_indices", family="shape")
def pool(g, n) -> Match | None:
    """Average or max pooling over spatial windows, per channel; ATen's max pooling returns
    (values, indices) and is labelled at its ``getitem 0`` (the tuple and the indices are inert)."""
    d = g.nodes[n]
    if d[DEP] != "input":
        return None
    src = d
    if d["op"] in POOL_OPS and d.get("tuple_shapes"):
        return Match("pool_indices", [])
    if d["op"] == "getitem" and d[OPERANDS] and g.nodes[d[OPERANDS][0]]["op"] in POOL_OPS:
        if d["fx"].args[1] != 0:
            return Match("pool_indices", [])  # the indices are integers, not an activation
        src = g.nodes[d[OPERANDS][0]]
    elif d["op"] not in POOL_OPS:
        return None
    spatial = int(src["op"].split("_pool")[1][0])
    return Match("pool", [("x", src["fx"].args[0].name)], attrs=dict(pool_channel_axis=-(spatial + 1)))


@pattern("concat", "shape", family="shape")
def shape(g, n) -> Match | None:
    d = g.nodes[n]
    if d["op"] not in SHAPE_OPS or d[DEP] != "input":
        return None
    acts = [o for o in d[OPERANDS] if g.nodes[o][DEP] == "input"]
    if d["op"] in ("cat", "stack"):
        return Match("concat", [("xs", o) for o in d[OPERANDS]])
    if len(acts) == 1:
        return Match("shape", [("x", acts[0])])
    if d["op"] == "to" and d[OPERANDS][0] in acts:
        return Match("shape", [("x", d[OPERANDS][0])])  # x.type_as(y): y only lends its dtype
    return None


@pattern("shape", family="shape")
def constant_index(g, n) -> Match | None:
    """``x[..., [i, j], :]``: entries of an activation picked by constant indices (Falcon's fused
    qkv split); a rearrangement, run on the masks with the indices' values."""
    d = g.nodes[n]
    if d["op"] != "index" or d[DEP] != "input" or g.nodes[d[OPERANDS][0]][DEP] != "input":
        return None
    if any(g.nodes[o][DEP] != "const" for o in d[OPERANDS][1:]):
        return None
    return Match("shape", [("x", d[OPERANDS][0])])


def _settle_reduce(d, masks, roles) -> str:
    x = masks[roles["x"]]
    dims, _ = reduce_dims(d["fx"], x.dim())
    return "reduce_channels" if any(varies(x, k) for k in dims) else "reduce_tokens"


PROVISIONAL = (Primitive("reduce?", ("x",), "provisional",
                         "a mean or sum, over channels or over tokens once masks are known",
                         settle=_settle_reduce),)


@pattern("reduce?", family="shape")
def reduction(g, n) -> Match | None:
    d = g.nodes[n]
    if d[DEP] != "input" or d["op"] not in REDUCE_OPS:
        return None
    acts = [o for o in d[OPERANDS] if g.nodes[o][DEP] == "input"]
    if len(acts) == 1 and len(d[OPERANDS]) == 1:
        return Match("reduce?", [("x", acts[0])])
    return None


def onehot_views(graph: Graph) -> None:
    """Views of token ids are token ids: every class (the dead token included) stays present."""
    g = graph.nx
    every = frozenset(range(graph.n_dead + 1))
    for n in graph.order():
        d = g.nodes[n]
        if d[PRIMITIVE] == "shape" and d[OPERANDS] and all(g.nodes[o].get("onehot") for o in d[OPERANDS]):
            d["onehot"], d[CLASSES] = True, every
