"""Element-wise patterns: adds (skips, biases, shifts), scalings, products and GLU gates,
activations (by op, or written out as element-wise ops of one input)."""
from __future__ import annotations

import torch

from ddgraph.core.graph import CLIPS, DEP, OPERANDS, PRIMITIVE, ROLES
from ddgraph.frontend.ops import CLIP_OPS, COMPOSITE_OPS, OFFSET_OPS, REDUCE_OPS, RELU_OPS, SHAPE_OPS, SMOOTH_OPS
from ddgraph.frontend.patterns.base import Match, param_of, pattern, positions, reaches, single_consumer, strip_casts


@pattern("scale", "bias_add", "shift", "skip_add", "add", "gate", "product", family="elementwise")
def binary(g, n) -> Match | None:
    d = g.nodes[n]
    op, ops = d["op"], d[OPERANDS]
    if op not in ("add", "sub", "mul", "div", "rsub", "neg") or d[DEP] != "input":
        return None
    acts = [o for o in ops if g.nodes[o][DEP] == "input"]
    others = [o for o in ops if g.nodes[o][DEP] != "input"]
    if op == "neg":
        return Match("scale", [("x", acts[0])])
    if len(acts) == 1:
        x = acts[0]
        if op in ("mul", "div"):
            if op == "div" and d["fx"].args[0] is not d["fx"].args[-1] and \
                    isinstance(d["fx"].args[1], torch.fx.Node) and d["fx"].args[1].name == x:
                return None  # c / x is not a scaling
            return Match("scale", [("x", x)], attrs=dict(scale_param=_first_param(g, others)))
        if others and g.nodes[others[0]][DEP] == "param":
            return Match("bias_add", [("x", x)], attrs=dict(bias_param=_first_param(g, others)))
        return Match("shift", [("x", x)])
    if len(acts) == 2:
        a, b = acts
        if op in ("add", "sub"):
            skip = (reaches(g, a, b) or reaches(g, b, a)) and not _centring(g, a, b)
            return Match("skip_add" if skip else "add", [("a", a), ("b", b)])
        if op == "mul":
            return Match("gate" if _is_glu(g, a, b) else "product", [("a", a), ("b", b)])
    return None


@pattern("shift", family="elementwise")
def constant_fill(g, n) -> Match | None:
    """``x.masked_fill(mask, c)`` or ``torch.where(mask, x, c)`` with a mask and fill that do not depend
    on the input or the weights (nanoGPT's causal mask, a registered ``tril`` buffer): entries of x or
    constants, as adding a constant is."""
    d = g.nodes[n]
    if d["op"] not in ("masked_fill", "where") or d[DEP] != "input":
        return None
    acts = [o for o in d[OPERANDS] if g.nodes[o][DEP] == "input"]
    if len(acts) != 1 or any(g.nodes[o][DEP] == "param" for o in d[OPERANDS]):
        return None
    fx = d["fx"]
    condition = fx.args[1] if d["op"] == "masked_fill" else fx.args[0]
    if isinstance(condition, torch.fx.Node) and condition.name == acts[0]:
        return None  # the activation decides where: not a constant pattern
    return Match("shift", [("x", acts[0])])


def _centring(g, a, b) -> bool:
    """``a - reduce(a)`` (or the reverse): a reduction broadcast back, not an identity skip."""
    return any(g.nodes[r]["op"] in REDUCE_OPS and g.nodes[r][OPERANDS] and strip_casts(g, g.nodes[r][OPERANDS][0]) == x
               for x, r in ((a, b), (b, a)))


def _first_param(g, others) -> str | None:
    return next((p for p in (param_of(g, o) for o in others) if p is not None), None)


def _weight_source(g, n, through_act: bool) -> str | None:
    """The weight node feeding ``n`` through shape ops (and at most one activation)."""
    seen_act = False
    while True:
        d = g.nodes[n]
        if d.get(PRIMITIVE) == "weight":
            return n
        if d["op"] in SHAPE_OPS and len(d[OPERANDS]) == 1:
            n = d[OPERANDS][0]
        elif through_act and not seen_act and d["op"] in (SMOOTH_OPS | RELU_OPS | OFFSET_OPS) \
                and d[OPERANDS]:
            seen_act, n = True, d[OPERANDS][0]
        else:
            return None


def _is_glu(g, a, b) -> bool:
    for gated, lin in ((a, b), (b, a)):
        w1, w2 = _weight_source(g, gated, True), _weight_source(g, lin, False)
        if w1 is None or w2 is None:
            continue
        x1 = g.nodes[w1][ROLES][0][1]
        x2 = g.nodes[w2][ROLES][0][1]
        acted = _weight_source(g, gated, False) is None
        if acted and (x1 == x2 or w1 == w2):
            return True
    return False


@pattern("act_relu", "act_smooth", "act_offset", family="elementwise")
def activation(g, n) -> Match | None:
    d = g.nodes[n]
    if d[DEP] != "input" or not d[OPERANDS]:
        return None
    x = d[OPERANDS][0]
    if d["op"] in RELU_OPS:
        # CLIPS: its negative half is exactly zero (a sign cut, THEORY §3.11)
        return Match("act_relu", [("x", x)], attrs={CLIPS: d["op"] in CLIP_OPS})
    if d["op"] in SMOOTH_OPS:
        return Match("act_smooth", [("x", x)])
    if d["op"] in OFFSET_OPS:
        return Match("act_offset", [("x", x)])
    return None


_ELEM = COMPOSITE_OPS | SMOOTH_OPS | OFFSET_OPS


def _forward_chain(g, n) -> list[str]:
    chain = [n]
    while True:
        c = single_consumer(g, chain[-1])
        if c is None or g.nodes[c]["op"] not in _ELEM or g.nodes[c][DEP] != "input" or len(chain) > 12:
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
        stack += [o for o in g.nodes[m][OPERANDS] if g.nodes[o][DEP] != "const"]
    for m in region:
        if any(g.nodes[o][DEP] == "param" for o in g.nodes[m][OPERANDS]):
            return None  # a parameter inside: not a fixed activation
        if m != out and any(s not in region for s in g.successors(m)):
            return None  # an intermediate value is used elsewhere
        if g.nodes[m]["shape"] != g.nodes[out]["shape"]:
            return None
    pos = positions(g, *region)
    return sorted(region, key=pos.__getitem__)


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


@pattern("act_smooth", "act_offset", family="elementwise")
def composite_activation(g, n) -> Match | None:
    """An activation written out as element-wise ops of one input: GELU-tanh
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, ``x * sigmoid(x)``, ``x * sigmoid(1.702 x)``.

    Anchored at the transcendental op; the input ``x`` is the nearest node whose uses cover the
    whole subgraph. The fused function is evaluated at 0 (on a probe scalar) to decide its class:
    ``phi(0) = 0, phi'(0) != 0`` is act_smooth, ``phi(0) != 0, phi'(0) != 0`` act_offset.
    """
    d = g.nodes[n]
    if d["op"] not in (SMOOTH_OPS | OFFSET_OPS) or d[DEP] != "input":
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
            for o in g.nodes[m][OPERANDS]:
                if g.nodes[o][DEP] == "input" and g.nodes[o]["op"] in _ELEM:
                    frontier.append(o)
                elif g.nodes[o][DEP] == "input":
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
