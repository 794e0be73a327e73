"""Normalisers: LayerNorm and RMSNorm (module, functional, ATen, or RMSNorm written out), BatchNorm."""
from __future__ import annotations

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
            norm_bias=param_of(g, const_arg(fx, "bias", 3))))
    if d["op"] == "rms_norm" and d[DEP] == "input":
        fx = d["fx"]
        return Match("rmsnorm", [("x", fx.args[0].name)], attrs=dict(
            norm_weight=param_of(g, const_arg(fx, "weight", 2))))
    return None


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
                 attrs=dict(norm_weight=weight, norm_gain_offset=offset, fused_output=out, written_out=True))


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
    return Match("batchnorm_train" if train else "batchnorm_eval", [("x", x)], attrs=dict(
        norm_weight=param_of(g, const_arg(sfx, "weight", w_pos)),
        norm_bias=param_of(g, const_arg(sfx, "bias", b_pos)),
        running_mean=g.nodes[mean.name]["param"] if isinstance(mean, torch.fx.Node) and mean.name in g else None))
