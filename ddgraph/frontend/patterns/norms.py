"""Normalisers: LayerNorm and RMSNorm (module, functional, ATen, or written out), BatchNorm. Each
records the floor of its scale (``scale_floor``: ``sqrt(eps)``, docs/THEORY.md §3.8)."""
from __future__ import annotations

import math

import torch

from ddgraph.core.graph import DEP, OPERANDS
from ddgraph.frontend.patterns.base import Match, const_arg, param_of, pattern, single_consumer, strip_casts


@pattern("layernorm", "rmsnorm", family="norms")
def norm(g, n) -> Match | None:
    d = g.nodes[n]
    if d["op"] == "layer_norm" and d[DEP] == "input":
        fx = d["fx"]
        return Match("layernorm", [("x", fx.args[0].name)], attrs=dict(
            norm_weight=param_of(g, const_arg(fx, "weight", 2)),
            norm_bias=param_of(g, const_arg(fx, "bias", 3)), scale_floor=_floor(const_arg(fx, "eps", 4, 1e-5))))
    if d["op"] == "rms_norm" and d[DEP] == "input":
        fx = d["fx"]
        return Match("rmsnorm", [("x", fx.args[0].name)], attrs=dict(
            norm_weight=param_of(g, const_arg(fx, "weight", 2)), scale_floor=_floor(const_arg(fx, "eps", 3))))
    return None


def _floor(eps) -> float:
    """The floor ``sqrt(eps)`` of a scale ``sqrt(s**2 + eps)`` (docs/THEORY.md §3.8); ``eps=None`` is the
    machine epsilon of the probe's fp64, as torch's rms_norm takes it there."""
    return math.sqrt(torch.finfo(torch.float64).eps if eps is None else float(eps))


def _gain(g, n) -> tuple[str, float] | None:
    """A norm's gain read off its operand: a parameter ``w``, or ``c + w`` with a number ``c``
    (Gemma's ``x * (1 + w)``, whose weight is initialised at zero): ``(name of w, c)``."""
    d = g.nodes[n]
    if d[DEP] == "param":
        return d["param"], 0.0
    if d["op"] != "add" or len(d[OPERANDS]) != 1 or g.nodes[d[OPERANDS][0]][DEP] != "param":
        return None
    numbers = [a for a in d["fx"].args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    if len(numbers) != 1 or const_arg(d["fx"], "alpha", 2, 1) != 1:
        return None
    return g.nodes[d[OPERANDS][0]]["param"], float(numbers[0])


def _number(fx) -> float | None:
    """The one plain number among an fx node's arguments (the eps of ``var + eps``)."""
    nums = [a for a in fx.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    return float(nums[0]) if len(nums) == 1 else None


def _over_last_axis(g, n) -> bool:
    """A mean, var or std over the last axis alone."""
    d = g.nodes[n]
    dim = const_arg(d["fx"], "dim", 1)
    dim = dim[0] if isinstance(dim, (list, tuple)) and len(dim) == 1 else dim
    rank = len(d["shape"]) if d.get("shape") is not None else None
    return isinstance(dim, int) and (dim == -1 or (rank is not None and dim == rank - 1))


def _centred(g, c) -> tuple[str, list[str]] | None:
    """``c = x - mean(x, -1)``: ``(x, members)``."""
    d = g.nodes[c]
    args = d["fx"].args[:2]
    if d["op"] != "sub" or len(args) != 2 or not all(isinstance(a, torch.fx.Node) for a in args):
        return None
    x, m = strip_casts(g, args[0].name), args[1].name
    if g.nodes[m]["op"] != "mean" or not _over_last_axis(g, m) or strip_casts(g, g.nodes[m][OPERANDS][0]) != x:
        return None
    return x, [c, m]


def _variance(g, s) -> tuple[str, list[str]] | None:
    """The variance of ``x`` over the last axis: ``var(x)``, ``mean(c**2)``, ``mean(c*c)`` with ``c``
    centred: ``(x, members)``."""
    d = g.nodes[s]
    if d["op"] == "var" and _over_last_axis(g, s):
        return strip_casts(g, d[OPERANDS][0]), [s]
    if d["op"] != "mean" or not _over_last_axis(g, s):
        return None
    p = d[OPERANDS][0]
    pd = g.nodes[p]
    squared = (pd["op"] == "pow" and const_arg(pd["fx"], "exponent", 1) == 2) or pd["op"] == "square" or \
        (pd["op"] == "mul" and len(pd["fx"].args) == 2 and pd["fx"].args[0] is pd["fx"].args[1])
    centred = _centred(g, pd[OPERANDS][0]) if squared else None
    return None if centred is None else (centred[0], [s, p, *centred[1]])


def _plus_eps(g, n) -> tuple[str, float | None, list[str]]:
    """``n = y + eps`` with a number eps: ``(y, eps, [n])``; otherwise ``(n, None, [])``."""
    d = g.nodes[n]
    if d["op"] == "add" and len(d[OPERANDS]) == 1 and _number(d["fx"]) is not None:
        return d[OPERANDS][0], _number(d["fx"]), [n]
    return n, None, []


@pattern("layernorm", family="norms")
def layernorm_written_out(g, n) -> Match | None:
    """``(x - mean(x)) * rsqrt(var + eps)`` or ``(x - mean(x)) / sqrt(var + eps)`` (var written out as
    ``mean((x - mean)**2)`` or as ``x.var(-1, unbiased=False)``), or ``/ (std + eps)``, over the last
    axis, then an optional gain (``w`` or ``1 + w``) and bias: one LayerNorm. Anchored at the rsqrt,
    sqrt or std."""
    d = g.nodes[n]
    if d["op"] not in ("rsqrt", "sqrt", "std") or d[DEP] != "input":
        return None
    if d["op"] == "std":
        found = (strip_casts(g, d[OPERANDS][0]), []) if _over_last_axis(g, n) else None
        eps = None
    else:
        s, eps, members = _plus_eps(g, d[OPERANDS][0])
        found = _variance(g, s)
        found = found and (found[0], found[1] + members)
    if found is None:
        return None
    x, members = found
    members = [n, *members]
    scale, floor = n, (0.0 if eps is None else math.sqrt(eps))
    if d["op"] != "rsqrt":  # sqrt(var + eps), or sqrt(var) + eps, std + eps: a divisor
        nxt = single_consumer(g, n)
        if nxt is not None and g.nodes[nxt]["op"] == "add" and eps is None and _number(g.nodes[nxt]["fx"]) is not None:
            floor, scale = _number(g.nodes[nxt]["fx"]), nxt  # eps outside the root: the scale's floor itself
            members.append(nxt)
    m = single_consumer(g, scale)
    if m is None or g.nodes[m]["op"] != ("mul" if d["op"] == "rsqrt" else "div"):
        return None
    if d["op"] != "rsqrt" and not (isinstance(g.nodes[m]["fx"].args[1], torch.fx.Node)
                                   and g.nodes[m]["fx"].args[1].name == scale):
        return None
    num = [o for o in g.nodes[m][OPERANDS] if o != scale]
    num, early = (num[0], _early_gain(g, num[0])) if len(num) == 1 else (None, None)
    if early is not None:  # w * (x - mean) / (std + eps): the gain multiplies the numerator
        members.append(num)
        num = early[0]
    centred = _centred(g, num) if num is not None else None
    if centred is None or centred[0] != x:
        return None
    members += [m, *centred[1]]
    out, weight, offset, bias = _affine(g, m, members)
    if early is not None:
        if weight is not None:
            return None
        weight, offset = early[1]
    members = list(dict.fromkeys(members))
    for mem in members:
        if mem != out and any(s not in members for s in g.successors(mem)):
            return None  # an intermediate value is used elsewhere: not a self-contained norm
    return Match("layernorm", [("x", x)], members=members, attrs=dict(
        norm_weight=weight, norm_gain_offset=offset, norm_bias=bias, scale_floor=floor, fused_output=out,
        written_out=True))


def _early_gain(g, n) -> tuple[str, tuple[str, float]] | None:
    """``n = gain * c``: ``(c, (name of w, offset))``."""
    d = g.nodes[n]
    if d["op"] != "mul" or len(d[OPERANDS]) != 2 or g.nodes[n][DEP] != "input":
        return None
    for c, w in (d[OPERANDS], d[OPERANDS][::-1]):
        gain = _gain(g, w) if g.nodes[c][DEP] == "input" else None
        if gain is not None:
            return c, gain
    return None


def _affine(g, out, members) -> tuple[str, str | None, float, str | None]:
    """An optional cast, gain (``* w`` or ``* (1 + w)``) and bias (``+ b``) after a norm's output
    ``out``: appends them to ``members``; returns ``(new output, gain, gain offset, bias)``."""
    weight, offset, bias = None, 0.0, None
    nxt = single_consumer(g, out)
    if nxt is not None and g.nodes[nxt]["op"] == "to":
        members.append(nxt)
        out, nxt = nxt, single_consumer(g, nxt)
    if nxt is not None and g.nodes[nxt]["op"] == "mul":
        other = [o for o in g.nodes[nxt][OPERANDS] if o != out]
        gain = _gain(g, other[0]) if len(other) == 1 else None
        if gain is not None:
            (weight, offset), out = gain, nxt
            members.append(nxt)
            nxt = single_consumer(g, nxt)
    if nxt is not None and g.nodes[nxt]["op"] == "add" and len(g.nodes[nxt][OPERANDS]) == 2:
        other = [o for o in g.nodes[nxt][OPERANDS] if o != out]
        b = param_of(g, other[0]) if len(other) == 1 else None
        if b is not None:
            bias, out = b, nxt
            members.append(nxt)
    return out, weight, offset, bias


@pattern("rmsnorm", family="norms")
def rmsnorm_written_out(g, n) -> Match | None:
    """x * rsqrt(mean(x**2, -1, keepdim) + eps) [* weight], with optional dtype casts."""
    d = g.nodes[n]
    if d["op"] not in ("rsqrt",) or d[DEP] != "input":
        return None
    members = [n]
    v = d[OPERANDS][0]
    if g.nodes[v]["op"] == "add":
        members.append(v)
        v = next((o for o in g.nodes[v][OPERANDS] if g.nodes[o][DEP] == "input"), None)
    eps = _number(g.nodes[members[-1]]["fx"]) if len(members) == 2 else 0.0  # None: eps is not a number
    if v is None or g.nodes[v]["op"] != "mean":
        return None
    members.append(v)
    p = g.nodes[v][OPERANDS][0]
    pd = g.nodes[p]
    if pd["op"] == "pow" and const_arg(pd["fx"], "exponent", 1) == 2:
        x0 = pd[OPERANDS][0]
    elif pd["op"] == "mul" and len(set(pd[OPERANDS])) == 1:
        x0 = pd[OPERANDS][0]
    else:
        return None
    members.append(p)
    m = single_consumer(g, n)
    if m is None or g.nodes[m]["op"] != "mul":
        return None
    xs = [o for o in g.nodes[m][OPERANDS] if o != n]
    if len(xs) != 1 or strip_casts(g, xs[0]) != strip_casts(g, x0):
        return None
    members.append(m)
    out, weight = m, None
    nxt = single_consumer(g, out)
    if nxt is not None and g.nodes[nxt]["op"] == "to":
        members.append(nxt)
        out, nxt = nxt, single_consumer(g, nxt)
    offset = 0.0
    if nxt is not None and g.nodes[nxt]["op"] == "mul":
        other = [o for o in g.nodes[nxt][OPERANDS] if o != out]
        gain = _gain(g, other[0]) if len(other) == 1 else None
        if gain is not None:
            weight, offset = gain
            members.append(nxt)
            out = nxt
    for mem in members:
        if mem != out and any(s not in members for s in g.successors(mem)):
            return None  # an intermediate value is used elsewhere: not a self-contained norm
    return Match("rmsnorm", [("x", strip_casts(g, x0))], members=members,
                 attrs=dict(norm_weight=weight, norm_gain_offset=offset, fused_output=out, written_out=True,
                            scale_floor=None if eps is None else math.sqrt(eps)))


def _bn_training(d) -> bool:
    fx, target = d["fx"], d["target"]
    if "no_training" in target:
        return False
    if "_legit" in target or "native_batch_norm" in target:
        return bool(const_arg(fx, "training", 5, True)) if "native_batch_norm." in target else True
    return bool(const_arg(fx, "training", 5, False))


@pattern("batch_stats", "batchnorm_train", "batchnorm_eval", family="norms")
def batch_norm(g, n) -> Match | None:
    """BatchNorm: ``F.batch_norm`` (one tensor), or ATen's tuple-valued form read through ``getitem 0``."""
    d = g.nodes[n]
    if d[DEP] != "input":
        return None
    fx = d["fx"]
    if d["op"] == "batch_norm" and d.get("tuple_shapes"):
        return Match("batch_stats", [])  # the output is read by its getitem 0
    src = d
    if d["op"] == "getitem" and d[OPERANDS]:
        src = g.nodes[d[OPERANDS][0]]
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
    mean = const_arg(sfx, "running_mean", m_pos)
    floats = [a for a in sfx.args if isinstance(a, float)]  # eps is the last float (momentum comes first)
    return Match("batchnorm_train" if train else "batchnorm_eval", [("x", x)], attrs=dict(
        scale_floor=_floor(sfx.kwargs.get("eps", floats[-1] if floats else 1e-5)),
        norm_weight=param_of(g, const_arg(sfx, "weight", w_pos)),
        norm_bias=param_of(g, const_arg(sfx, "bias", b_pos)),
        running_mean=g.nodes[mean.name]["param"] if isinstance(mean, torch.fx.Node) and mean.name in g else None))
