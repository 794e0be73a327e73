"""The labelling pass: assign every node of a traced graph a primitive.

Patterns are plain functions ``pattern(g, name) -> Match | None`` tried in order (user patterns
first). They work on the networkx graph and see module, functional and ATen forms alike through the
canonical op names of :mod:`ddgraph.ops`. Fusing patterns (a hand-written RMSNorm) collapse a
subgraph into its output node. After the patterns, :func:`ddgraph.channels.assign` places the dead
coordinates and settles the labels that depend on which axes carry channels (softmax over channels
or tokens, contraction Q K^T vs token mixing A V, reductions).
"""
from __future__ import annotations

import math
from typing import Callable

import attrs
import networkx as nx
import torch

from . import primitives
from .graph import Graph, tensor_operands
from .ops import SHAPE_OPS

RELU_OPS = frozenset({"relu", "leaky_relu", "hardtanh", "relu6", "prelu", "rrelu"})
SMOOTH_OPS = frozenset({"gelu", "tanh", "silu", "elu", "selu", "celu", "mish", "hardswish",
                        "softsign", "tanhshrink", "sin", "atan", "asinh", "erf", "hardshrink",
                        "softshrink"})
OFFSET_OPS = frozenset({"sigmoid", "softplus", "exp", "logsigmoid", "hardsigmoid", "cos", "log_sigmoid"})
WEIGHT_OPS = frozenset({"linear", "matmul", "mm", "bmm", "addmm", "conv", "embedding", "einsum"})
REDUCE_OPS = frozenset({"mean", "sum", "amax", "amin", "max", "min", "logsumexp"})
GATHER_OPS = frozenset({"embedding", "index", "index_select", "gather"})
#: Element-wise ops a written-out activation is made of (x * sigmoid(x), GELU-tanh, ...).
COMPOSITE_OPS = frozenset({"mul", "add", "sub", "div", "pow", "neg", "rsub", "to", "square"})
CREATION_OPS = frozenset({"arange", "ones", "zeros", "full", "empty", "ones_like", "zeros_like",
                          "full_like", "empty_like", "tensor", "scalar_tensor", "new_ones",
                          "new_zeros", "new_full", "new_empty", "randn", "rand", "triu", "tril"})


@attrs.define
class Match:
    """What a pattern found: the primitive, its operand roles, fused members and extra attributes."""

    primitive: str
    roles: list[tuple[str, str]]
    members: list[str] = attrs.Factory(list)
    attrs: dict = attrs.Factory(dict)


Pattern = Callable[[nx.DiGraph, str], "Match | None"]
_USER_PATTERNS: list[tuple[str, Pattern]] = []


def register_pattern(primitive: str | primitives.Primitive, fn: Pattern) -> None:
    """Register a user pattern, tried before the built-in ones.

    Parameters
    ----------
    primitive : a known primitive name, or a new :class:`ddgraph.primitives.Primitive` to define.
    fn : ``fn(g, name) -> Match | None``; ``g`` is the networkx graph, ``name`` the node to label.

    Examples
    --------
    >>> from ddgraph.label import register_pattern, Match
    >>> from ddgraph.primitives import Primitive
    >>> sq = Primitive("square_act", ("x",), "elementwise", "x * x as an activation")
    >>> def square(g, n):
    ...     d = g.nodes[n]
    ...     if d["op"] == "square":
    ...         return Match("square_act", [("x", g.nodes[n]["operands"][0])])
    >>> register_pattern(sq, square)
    >>> unregister_pattern("square_act")
    """
    if isinstance(primitive, primitives.Primitive):
        if primitive.name not in primitives.PRIMITIVES:
            primitives.register(primitive)
        primitive = primitive.name
    primitives.get(primitive)
    _USER_PATTERNS.append((primitive, fn))


def unregister_pattern(primitive: str) -> None:
    """Remove user patterns for ``primitive`` (and the primitive itself if the user defined it)."""
    _USER_PATTERNS[:] = [(p, f) for p, f in _USER_PATTERNS if p != primitive]
    if primitive not in {p.name for p in primitives._ALL}:
        primitives.PRIMITIVES.pop(primitive, None)


# ---------------------------------------------------------------------------------------------
# Node kinds: what a node depends on (inputs, parameters, nothing)


def _classify_dependence(g: nx.DiGraph) -> None:
    """Set ``dep`` on every node: 'input', 'param' (a parameter or shape-only view), 'const', 'mixed'."""
    for name in g.graph["order"]:
        d = g.nodes[name]
        fx = d["fx"]
        ops = d["operands"] = tensor_operands(g, name)
        if fx.op == "placeholder":
            d["dep"] = "input"
        elif fx.op == "get_attr":
            d["dep"] = "param" if d["is_parameter"] else "const"
        else:
            deps = {g.nodes[o]["dep"] for o in ops}
            if "input" in deps:
                d["dep"] = "input"
            elif not deps or deps == {"const"}:
                d["dep"] = "const"
            elif deps <= {"param", "const"} and d["op"] in SHAPE_OPS and len(ops) == 1:
                d["dep"] = "param"
                d["param"] = g.nodes[ops[0]]["param"]
            elif d["op"] in GATHER_OPS and [g.nodes[o]["dep"] for o in ops].count("param") == 1 \
                    and deps == {"param", "const"}:
                # rows of a parameter picked by constant indices (a position or token-type
                # embedding table): still a parameter, added to the stream like a bias
                d["dep"] = "param"
                d["param"] = next(g.nodes[o]["param"] for o in ops if g.nodes[o]["dep"] == "param")
            else:
                d["dep"] = "mixed"  # computed from parameters by a non-shape op


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


def _param_name(g: nx.DiGraph, operand: str, node: str) -> str:
    """The parameter's name as the model's own module at ``node`` calls it (tied weights have several)."""
    root = operand
    while g.nodes[root]["fx"].op != "get_attr" and g.nodes[root]["operands"]:
        root = g.nodes[root]["operands"][0]
    aliases = g.nodes[root].get("aliases") or []
    module = g.nodes[node].get("module")
    if module:
        for a in aliases:
            if a.rsplit(".", 1)[0] == module:
                return a
    return g.nodes[operand]["param"]


def _display_name(g: nx.DiGraph, operand: str, node: str) -> str:
    """The name a report shows: the parameter as the module at ``node`` calls it. A module that
    uses a parameter owned by another module (a tied unembedding, when the traced graph kept only
    the first name) is shown under its own name, ``lm_head.weight``."""
    param = _param_name(g, operand, node)
    module = g.nodes[node].get("module")
    owner, _, leaf = param.rpartition(".")
    if not module or not owner:
        return param
    if not (owner == module or owner.startswith(f"{module}.") or module.startswith(f"{owner}.")):
        return f"{module}.{leaf}"
    return param


def _is_scalar_like(g: nx.DiGraph, name: str) -> bool:
    shape = g.nodes[name]["shape"]
    return shape is not None and math.prod(shape) == 1


# ---------------------------------------------------------------------------------------------
# Built-in patterns


def _const_arg(fx_node, name: str, pos: int, default=None):
    if name in fx_node.kwargs:
        return fx_node.kwargs[name]
    return fx_node.args[pos] if len(fx_node.args) > pos else default


def _weight(g, n) -> Match | None:
    d = g.nodes[n]
    op, fx, ops = d["op"], d["fx"], d["operands"]
    if op not in WEIGHT_OPS or d["dep"] != "input":
        return None
    dep = {o: g.nodes[o]["dep"] for o in ops}
    if op == "embedding":
        weight = next((o for o in ops if dep[o] == "param"), None)
        ids = next((o for o in ops if dep[o] != "param"), None)
        if weight is None or ids is None:
            return None
        return Match("weight", [("x", ids)], attrs=dict(
            weight=dict(kind="embedding", operand=weight, param=_param_name(g, weight, n),
                        name=_display_name(g, weight, n),
                        w_in_axis=0, w_out_axis=1, x_axis=None, y_axis=-1, bias=None)))
    if op in ("linear", "conv"):
        x, w = fx.args[0].name, fx.args[1].name
        bias = _const_arg(fx, "bias", 2)
        if dep.get(w) != "param" or dep.get(x) != "input":
            return None
        conv = op == "conv"
        return Match("weight", [("x", x)], attrs=dict(weight=dict(
            kind="conv" if conv else "linear", operand=w, param=_param_name(g, w, n),
            name=_display_name(g, w, n), w_in_axis=1,
            w_out_axis=0, x_axis=1 if conv else -1, y_axis=1 if conv else -1,
            bias=_bias_param(g, bias))))
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
            kind="matmul", operand=w, param=_param_name(g, w, n), name=_display_name(g, w, n),
            bias=_bias_param(g, bias), **lay)))
    return None


def _bias_param(g, bias) -> str | None:
    if isinstance(bias, torch.fx.Node):
        bias = bias.name
    if bias is None or bias not in g:
        return None
    return g.nodes[bias]["param"] if g.nodes[bias]["dep"] == "param" else None


def _binary(g, n) -> Match | None:
    d = g.nodes[n]
    op, ops = d["op"], d["operands"]
    if op not in ("add", "sub", "mul", "div", "rsub", "neg") or d["dep"] != "input":
        return None
    acts = [o for o in ops if g.nodes[o]["dep"] == "input"]
    others = [o for o in ops if g.nodes[o]["dep"] != "input"]
    if op == "neg":
        return Match("scale", [("x", acts[0])])
    if len(acts) == 1:
        x = acts[0]
        if op in ("mul", "div"):
            if op == "div" and d["fx"].args[0] is not d["fx"].args[-1] and \
                    isinstance(d["fx"].args[1], torch.fx.Node) and d["fx"].args[1].name == x:
                return None  # c / x is not a scaling
            return Match("scale", [("x", x)], attrs=dict(scale_param=_param_of(g, others)))
        if others and g.nodes[others[0]]["dep"] == "param":
            return Match("bias_add", [("x", x)], attrs=dict(bias_param=_param_of(g, others)))
        return Match("shift", [("x", x)])
    if len(acts) == 2:
        a, b = acts
        if op in ("add", "sub"):
            skip = a == b or nx.has_path(g, a, b) or nx.has_path(g, b, a)
            return Match("skip_add" if skip else "add", [("a", a), ("b", b)])
        if op == "mul":
            return Match("gate" if _is_glu(g, a, b) else "product", [("a", a), ("b", b)])
    return None


def _param_of(g, others) -> str | None:
    for o in others:
        if g.nodes[o]["dep"] == "param":
            return g.nodes[o]["param"]
    return None


def _weight_source(g, n, through_act: bool) -> str | None:
    """The weight node feeding ``n`` through shape ops (and at most one activation)."""
    seen_act = False
    while True:
        d = g.nodes[n]
        if d.get("primitive") == "weight":
            return n
        if d["op"] in SHAPE_OPS and len(d["operands"]) == 1:
            n = d["operands"][0]
        elif through_act and not seen_act and d["op"] in (SMOOTH_OPS | RELU_OPS | OFFSET_OPS) \
                and d["operands"]:
            seen_act, n = True, d["operands"][0]
        else:
            return None


def _is_glu(g, a, b) -> bool:
    for gated, lin in ((a, b), (b, a)):
        w1, w2 = _weight_source(g, gated, True), _weight_source(g, lin, False)
        if w1 is None or w2 is None:
            continue
        x1 = g.nodes[w1]["roles"][0][1]
        x2 = g.nodes[w2]["roles"][0][1]
        acted = _weight_source(g, gated, False) is None
        if acted and (x1 == x2 or w1 == w2):
            return True
    return False


def _activation(g, n) -> Match | None:
    d = g.nodes[n]
    if d["dep"] != "input" or not d["operands"]:
        return None
    x = d["operands"][0]
    if d["op"] in RELU_OPS:
        return Match("act_relu", [("x", x)])
    if d["op"] in SMOOTH_OPS:
        return Match("act_smooth", [("x", x)])
    if d["op"] in OFFSET_OPS:
        return Match("act_offset", [("x", x)])
    return None


def _norms(g, n) -> Match | None:
    d = g.nodes[n]
    if d["op"] == "layer_norm" and d["dep"] == "input":
        fx = d["fx"]
        return Match("layernorm", [("x", fx.args[0].name)], attrs=dict(
            norm_weight=_bias_param(g, _const_arg(fx, "weight", 2)),
            norm_bias=_bias_param(g, _const_arg(fx, "bias", 3))))
    if d["op"] == "rms_norm" and d["dep"] == "input":
        fx = d["fx"]
        return Match("rmsnorm", [("x", fx.args[0].name)], attrs=dict(
            norm_weight=_bias_param(g, _const_arg(fx, "weight", 2))))
    return None


def _single_consumer(g, n) -> str | None:
    succ = list(g.successors(n))
    return succ[0] if len(succ) == 1 else None


def _strip_casts(g, n) -> str:
    while g.nodes[n]["op"] == "to" and g.nodes[n]["operands"]:
        n = g.nodes[n]["operands"][0]
    return n


def _rmsnorm_written_out(g, n) -> Match | None:
    """x * rsqrt(mean(x**2, -1, keepdim) + eps) [* weight], with optional dtype casts."""
    d = g.nodes[n]
    if d["op"] not in ("rsqrt",) or d["dep"] != "input":
        return None
    members = [n]
    v = d["operands"][0]
    if g.nodes[v]["op"] == "add":
        members.append(v)
        v = next((o for o in g.nodes[v]["operands"] if g.nodes[o]["dep"] == "input"), None)
    if v is None or g.nodes[v]["op"] != "mean":
        return None
    members.append(v)
    p = g.nodes[v]["operands"][0]
    pd = g.nodes[p]
    if pd["op"] == "pow" and _const_arg(pd["fx"], "exponent", 1) == 2:
        x0 = pd["operands"][0]
    elif pd["op"] == "mul" and len(set(pd["operands"])) == 1:
        x0 = pd["operands"][0]
    else:
        return None
    members.append(p)
    m = _single_consumer(g, n)
    if m is None or g.nodes[m]["op"] != "mul":
        return None
    xs = [o for o in g.nodes[m]["operands"] if o != n]
    if len(xs) != 1 or _strip_casts(g, xs[0]) != _strip_casts(g, x0):
        return None
    members.append(m)
    out, weight = m, None
    nxt = _single_consumer(g, out)
    if nxt is not None and g.nodes[nxt]["op"] == "to":
        members.append(nxt)
        out, nxt = nxt, _single_consumer(g, nxt)
    if nxt is not None and g.nodes[nxt]["op"] == "mul":
        other = [o for o in g.nodes[nxt]["operands"] if o != out]
        if len(other) == 1 and g.nodes[other[0]]["dep"] == "param":
            weight = g.nodes[other[0]]["param"]
            members.append(nxt)
            out = nxt
    for mem in members:
        if mem != out and any(s not in members for s in g.successors(mem)):
            return None  # an intermediate value is used elsewhere: not a self-contained norm
    return Match("rmsnorm", [("x", _strip_casts(g, x0))], members=members,
                 attrs=dict(norm_weight=weight, fused_output=out, written_out=True))


_ELEM = COMPOSITE_OPS | SMOOTH_OPS | OFFSET_OPS


def _forward_chain(g, n) -> list[str]:
    chain = [n]
    while True:
        c = _single_consumer(g, chain[-1])
        if c is None or g.nodes[c]["op"] not in _ELEM or g.nodes[c]["dep"] != "input" or len(chain) > 12:
            return chain
        chain.append(c)


def _composite_region(g, x: str, out: str, local: set) -> list[str] | None:
    """Members of the element-wise function of ``x`` computed at ``out``, or None if not self-contained."""
    region, stack = set(), [out]
    while stack:
        m = stack.pop()
        if m in region or m == x:
            continue
        if m not in local:
            return None
        region.add(m)
        stack += [o for o in g.nodes[m]["operands"] if g.nodes[o]["dep"] != "const"]
    for m in region:
        if any(g.nodes[o]["dep"] == "param" for o in g.nodes[m]["operands"]):
            return None  # a parameter inside: not a fixed activation
        if m != out and any(s not in region for s in g.successors(m)):
            return None  # an intermediate value is used elsewhere
        if g.nodes[m]["shape"] != g.nodes[out]["shape"]:
            return None
    return [m for m in g.graph["order"] if m in region]


def _eval_composite(g, x: str, members: list[str], z: torch.Tensor) -> torch.Tensor | None:
    env = {x: z}

    def sub(a):
        if a.name in env:
            return env[a.name]
        raise KeyError(a.name)

    try:
        for m in members:
            d = g.nodes[m]
            fx = d["fx"]
            args = torch.fx.node.map_arg(fx.args, sub)
            kwargs = torch.fx.node.map_arg(fx.kwargs, sub)
            if d["op"] == "to":
                env[m] = args[0]
            elif fx.op == "call_method":
                env[m] = getattr(args[0], fx.target)(*args[1:], **kwargs)
            else:
                env[m] = fx.target(*args, **kwargs)
    except Exception:  # anything we cannot evaluate on a probe scalar is not fused
        return None
    return env[members[-1]]


def _composite_activation(g, n) -> Match | None:
    """An activation written out as element-wise ops of one input: GELU-tanh
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, ``x * sigmoid(x)``, ``x * sigmoid(1.702 x)``.

    Anchored at the transcendental op; the input ``x`` is the nearest node whose uses cover the
    whole subgraph. The fused function is evaluated at 0 (on a probe scalar) to decide its class:
    ``phi(0) = 0, phi'(0) != 0`` is act_smooth, ``phi(0) != 0, phi'(0) != 0`` act_offset.
    """
    d = g.nodes[n]
    if d["op"] not in (SMOOTH_OPS | OFFSET_OPS) or d["dep"] != "input":
        return None
    chain = _forward_chain(g, n)
    for out in reversed(chain[1:]):
        local, frontier, order = set(), [out], []
        while frontier and len(local) < 40:  # the element-wise neighbourhood upstream of out
            m = frontier.pop(0)
            if m in local:
                continue
            local.add(m)
            order.append(m)
            for o in g.nodes[m]["operands"]:
                if g.nodes[o]["dep"] == "input" and g.nodes[o]["op"] in _ELEM:
                    frontier.append(o)
                elif g.nodes[o]["dep"] == "input":
                    order.append(o)
        for x in order:
            if x == out:
                continue
            members = _composite_region(g, x, out, local - {x})
            if members is None or n not in members or len(members) < 2:
                continue
            z = torch.zeros(1, dtype=torch.float64, requires_grad=True)
            y = _eval_composite(g, x, members, z)
            if y is None or y.shape != z.shape:
                return None
            (slope,) = torch.autograd.grad(y.sum(), z)
            phi0, dphi0 = float(y.detach()), float(slope)
            if abs(dphi0) < 1e-9:
                return None
            prim = "act_smooth" if abs(phi0) < 1e-12 else "act_offset"
            return Match(prim, [("x", x)], members=members,
                         attrs=dict(fused_output=out, written_out=True,
                                    composite=[g.nodes[m]["op"] for m in members],
                                    phi0=phi0, dphi0=dphi0))
    return None


def _attention(g, n) -> Match | None:
    d = g.nodes[n]
    if d["op"] != "sdpa" or d["dep"] != "input":
        return None
    fx = d["fx"]
    q, k, v = (a.name for a in fx.args[:3])
    mask = _const_arg(fx, "attn_mask", 3)
    extra = [m.name for m in [mask] if isinstance(m, torch.fx.Node) and g.nodes[m.name]["dep"] == "input"]
    if extra:
        return None  # an input-dependent mask is outside the attention rule
    return Match("attention", [("q", q), ("k", k), ("v", v)],
                 attrs=dict(gqa=bool(_const_arg(fx, "enable_gqa", 7, False))))


def _provisional(g, n) -> Match | None:
    """Ops whose label depends on channel axes; :mod:`ddgraph.channels` settles them."""
    d = g.nodes[n]
    if d["dep"] != "input":
        return None
    op, ops = d["op"], d["operands"]
    acts = [o for o in ops if g.nodes[o]["dep"] == "input"]
    if op in ("softmax", "log_softmax") and len(acts) == 1:
        return Match("softmax?", [("x", acts[0])])
    if op in REDUCE_OPS and len(acts) == 1 and len(ops) == 1:
        return Match("reduce?", [("x", acts[0])])
    if op in ("matmul", "bmm", "mm") and len(acts) == 2 and len(ops) == 2:
        return Match("matmul?", [("a", ops[0]), ("b", ops[1])])
    return None


def _bn_training(d) -> bool:
    fx, target = d["fx"], d["target"]
    if "no_training" in target:
        return False
    if "_legit" in target or "native_batch_norm" in target:
        return bool(_const_arg(fx, "training", 5, True)) if "native_batch_norm." in target else True
    return bool(_const_arg(fx, "training", 5, False))


def _batch_norm(g, n) -> Match | None:
    """BatchNorm: ``F.batch_norm`` (one tensor), or ATen's tuple-valued form read through ``getitem 0``."""
    d = g.nodes[n]
    if d["dep"] != "input":
        return None
    fx = d["fx"]
    if d["op"] == "batch_norm" and d.get("tuple_shapes"):
        return Match("batch_stats", [])  # the output is read by its getitem 0
    src = d
    if d["op"] == "getitem" and d["operands"]:
        src = g.nodes[d["operands"][0]]
        if src["op"] != "batch_norm" or fx.args[1] != 0:
            return None
    elif d["op"] != "batch_norm":
        return None
    sfx = src["fx"]
    x = sfx.args[0].name
    train = _bn_training(src)
    # F.batch_norm(x, mean, var, weight, bias, ...); ATen: (x, weight, bias, mean, var, ...)
    aten = "aten." in src["target"]
    w_pos, b_pos, m_pos = (1, 2, 3) if aten else (3, 4, 1)
    mean = _const_arg(sfx, "running_mean", m_pos)
    return Match("batchnorm_train" if train else "batchnorm_eval", [("x", x)], attrs=dict(
        norm_weight=_bias_param(g, _const_arg(sfx, "weight", w_pos)),
        norm_bias=_bias_param(g, _const_arg(sfx, "bias", b_pos)),
        running_mean=g.nodes[mean.name]["param"] if isinstance(mean, torch.fx.Node) and mean.name in g else None))


def _prepend_token(g, n) -> Match | None:
    """``cat([param.expand(B, 1, D), x], dim=tokens)``: ViT's class token, registers."""
    d = g.nodes[n]
    if d["op"] != "cat" or d["dep"] != "input" or len(d["operands"]) != 2:
        return None
    fx = d["fx"]
    dim = _const_arg(fx, "dim", 1, 0)
    shape = d["shape"]
    if shape is None or len(shape) < 3 or dim % len(shape) != len(shape) - 2:
        return None  # only along the token axis (the channel axis stays whole)
    params = [o for o in d["operands"] if g.nodes[o]["dep"] == "param"]
    acts = [o for o in d["operands"] if g.nodes[o]["dep"] == "input"]
    if len(params) != 1 or len(acts) != 1:
        return None
    return Match("prepend_token", [("b", acts[0])], attrs=dict(bias_param=g.nodes[params[0]]["param"]))


def _shape(g, n) -> Match | None:
    d = g.nodes[n]
    if d["op"] not in SHAPE_OPS or d["dep"] != "input":
        return None
    acts = [o for o in d["operands"] if g.nodes[o]["dep"] == "input"]
    if d["op"] in ("cat", "stack"):
        return Match("concat", [("xs", o) for o in d["operands"]])
    if len(acts) == 1:
        return Match("shape", [("x", acts[0])])
    return None


BUILTIN_PATTERNS: list[Pattern] = [_rmsnorm_written_out, _composite_activation, _weight, _norms, _attention, _binary,
                                   _activation, _provisional, _batch_norm, _prepend_token, _shape]


def _label_node(g, n) -> Match:
    d = g.nodes[n]
    fx = d["fx"]
    if fx.op == "placeholder":
        return Match("input", [])
    if fx.op == "output":
        ops = d["operands"]
        return Match("output", [("x", ops[0])] if ops else [])
    if d["dep"] == "param":
        return Match("param", [])
    if d["dep"] == "const":
        return Match("const", [])
    for _, fn in _USER_PATTERNS:
        m = fn(g, n)
        if m is not None:
            return m
    for fn in BUILTIN_PATTERNS:
        m = fn(g, n)
        if m is not None:
            return m
    return Match("unknown", [("xs", o) for o in d["operands"] if g.nodes[o]["dep"] == "input"],
                 attrs=dict(unknown_op=d["target"]))


_SLICE_NAMES = {3: ("q", "k", "v"), 2: ("k", "v")}


def _fused_slices(graph: Graph) -> None:
    """Weights whose output is split into slices used apart (GPT-2's fused qkv ``c_attn``): record
    each slice's output node and dead indices in ``weight['slices']``, so the report gives a row per
    slice. Follows shape-only ops from the weight output to a ``split`` along its output axis."""
    g = graph.nx
    for n in graph.nodes_with("weight"):
        w = g.nodes[n]["weight"]
        u, width = n, g.nodes[n]["shape"][w["y_axis"]]
        while True:
            succ = list(g.successors(u))
            if len(succ) != 1 or g.nodes[succ[0]]["primitive"] != "shape":
                break
            u = succ[0]
            if g.nodes[u]["op"] == "split":
                break
        d = g.nodes[u]
        if d["op"] != "split" or not d.get("tuple_shapes"):
            continue
        fx = d["fx"]
        dim = fx.kwargs.get("dim", fx.args[2] if len(fx.args) > 2 else 0)
        shape_in = g.nodes[d["operands"][0]]["shape"]
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


def _onehot_views(graph: Graph) -> None:
    """Views of token ids are token ids: every class (the dead token included) stays present."""
    g = graph.nx
    every = frozenset(range(graph.n_dead + 1))
    for n in graph.order():
        d = g.nodes[n]
        if d["primitive"] == "shape" and d["operands"] and all(g.nodes[o].get("onehot") for o in d["operands"]):
            d["onehot"], d["classes"] = True, every


def _fuse(g: nx.DiGraph, out: str, members: list[str]) -> None:
    """Collapse ``members`` into ``out``: inner nodes vanish, their outside inputs feed ``out``."""
    inner = [m for m in members if m != out]
    preds = {p for m in members for p in g.predecessors(m) if p not in members}
    g.remove_nodes_from(inner)
    for p in preds:
        g.add_edge(p, out)
    g.graph["order"] = [m for m in g.graph["order"] if m not in inner]


def label(graph: Graph, *, n_dead: int = 1) -> Graph:
    """Label every node of ``graph`` with a primitive and place the dead coordinates (in place).

    Parameters
    ----------
    graph : a traced :class:`Graph`.
    n_dead : number of dead directions per channel space (Thm 106); 1 by default.

    Returns
    -------
    Graph
        The same graph, with ``primitive``, ``roles`` and dead-coordinate data on every node.
    """
    from . import channels  # channels needs labels; labels that need channels are settled there

    g = graph.nx
    _resolve_tied(graph)
    _classify_dependence(g)
    for n in list(g.graph["order"]):
        if n not in g or "primitive" in g.nodes[n]:
            continue  # removed or already labelled by a fusing pattern
        m = _label_node(g, n)
        if m.members:
            out = m.attrs.pop("fused_output")
            _fuse(g, out, m.members)
            n = out
            g.nodes[n]["members"] = m.members
            g.nodes[n]["operands"] = [src for _, src in m.roles]
        d = g.nodes[n]
        d["primitive"], d["roles"] = m.primitive, m.roles
        d.update(m.attrs)
    for n, d in g.nodes(data=True):  # the parameters a node's approach exponents attach to
        names = {"alpha": d.get("weight", {}).get("param"),
                 "beta": d.get("weight", {}).get("bias") or d.get("bias_param")}
        d["approach"] = {k: names[k] for k in primitives.get(d["primitive"].rstrip("?")).params if names.get(k)} \
            if d["primitive"].rstrip("?") in primitives.PRIMITIVES else {}
    graph.n_dead = n_dead
    channels.assign(graph)
    _onehot_views(graph)
    _fused_slices(graph)
    for n, d in g.nodes(data=True):
        primitives.get(d["primitive"])  # every label must be a defined primitive
    graph.labelled = True
    return graph
