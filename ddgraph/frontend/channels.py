"""Dead coordinates: which entry of every channel space is dead, tracked through the graph.

Every tensor gets a *mask* of its own shape holding, per entry, the dead class it belongs to
(0 = bulk, j = dead direction j). Masks are computed by running the graph's shape-only ops on the
masks themselves, so views, transposes, head splits and merges, slices and concatenations are
followed exactly, whatever form they were traced in.

Where the dead coordinate sits in a freshly produced channel space (a model input, a weight
output) is chosen so that the space's consumers agree: the space is cut into *segments* by how it is
used downstream (split into q, k, v; viewed into heads; halved by a rotary embedding), and the last
``n_dead`` indices of each segment are dead (THEORY §2.1: default the last index).
"""
from __future__ import annotations

import math

import attrs
import networkx as nx
import numpy as np
import torch

from ddgraph.core.graph import (
    BULK_ORDERS,
    CLASSES,
    MASK,
    OPERANDS,
    PRIMITIVE,
    ROLES,
    VALUE_ORDERS,
    VALUE_SIGNS,
    WEIGHT,
    Graph,
)
from ddgraph.core.primitives import ALPHA, BETA, node_attr
from ddgraph.errors import LabelError
from ddgraph.frontend.tracing import SMALL

MASK_DTYPE = torch.int8  # dead class ids (0 = bulk) fit in a byte
INDEX = torch.int32  # source indices in the segment analysis (-1: not from the source)


def integer_valued(d: dict) -> bool:
    """Whether a node holds integers or booleans (ids, indices, masks) rather than activations."""
    return bool(d["dtype"]) and ("int" in d["dtype"] or d["dtype"] == "bool")


def _shape(d: dict, small: bool):
    return d["small_shape"] if small else d["shape"]


def _fx_args(g: nx.DiGraph, name: str, env: dict, fill=None, small: bool = False):
    """The fx node's args/kwargs with tensor operands replaced from ``env`` (or ``fill``)."""
    fx = g.nodes[name]["fx"]
    key = SMALL if small else "ddgraph_value"

    def sub(a):
        if a.name in g:
            if a.name in env:
                return env[a.name]
            if fill is not None:
                return fill(a.name)
            raise KeyError(a.name)
        return a.meta.get(key)

    return torch.fx.node.map_arg(fx.args, sub), torch.fx.node.map_arg(fx.kwargs, sub)


def _run_shape_op(g: nx.DiGraph, name: str, env: dict, fill=None, small: bool = False):
    """Execute a shape-only node on substitute tensors (masks or index maps)."""
    d = g.nodes[name]
    fx = d["fx"]
    args, kwargs = _fx_args(g, name, env, fill, small)
    if d["op"] in ("to", "dropout", "identity", "alias", "detach"):
        return args[0]  # dtype casts and eval dropout leave positions alone
    if fx.op == "call_method":
        return getattr(args[0], fx.target)(*args[1:], **kwargs)
    return fx.target(*args, **kwargs)


def _axis_row(mask: torch.Tensor, axis: int, where: str) -> torch.Tensor:
    """The mask's pattern along ``axis`` (it must not vary along the other axes)."""
    rows = mask.movedim(axis, -1).reshape(-1, mask.shape[axis])
    row = rows[0]
    if rows.shape[0] > 1 and not bool((rows == row).all()):
        raise LabelError(f"{where}: the dead coordinate differs between tokens along axis {axis}; "
                         "cannot read one dead index per channel")
    return row


def _varies(mask: torch.Tensor, axis: int) -> bool:
    return bool((mask != mask.narrow(axis, 0, 1)).any())


def _family(index: torch.Tensor, n: int) -> torch.Tensor:
    """Fiber id of every source index (-1 where absent): entries that sit together along the last
    axis the index map varies on share an id."""
    axes = [k for k in range(index.dim()) if index.shape[k] > 1 and _varies(index, k)]
    if not axes:
        fam = torch.full((n,), -1, dtype=torch.long)
        first = int(index.flatten()[0])
        if first >= 0:
            fam[first] = 0
        return fam
    rows = index.movedim(axes[-1], -1).reshape(-1, index.shape[axes[-1]]).long()
    ids = torch.arange(rows.shape[0]).unsqueeze(1).expand_as(rows)
    sink = torch.full((n + 1,), -1, dtype=torch.long)  # entries not from the source land in slot n
    # rows with the same entries are copies (broadcast tokens): the largest row id names the fiber
    sink.scatter_reduce_(0, torch.where(rows >= 0, rows, n).flatten(), ids.flatten(), "amax")
    return sink[:n]


def _segments(graph: Graph, src: str, axis: int, small: bool) -> list[torch.Tensor]:
    """Cut the channel space of ``src`` into segments by how its shape-only descendants are used."""
    g, prims = graph.nx, graph.primitives
    d = g.nodes[src]
    shape = _shape(d, small)
    n = shape[axis]
    view = [1] * len(shape)
    view[axis] = n
    env = {src: torch.arange(n, dtype=INDEX).view(view).expand(shape).contiguous()}
    families = []
    stack = [src]
    while stack:
        u = stack.pop()
        for c in g.successors(u):
            prim = prims[g.nodes[c][PRIMITIVE]]
            viewing = prim.mask == "shape"
            # an element-wise map of this value alone (q * scale, an activation) keeps every entry
            # where it is: it reads the space as laid out here, and so do its own consumers (the
            # view into heads after OPT's q * scaling)
            through = (prim.mask == "elementwise" and prim.roles == ("x",)
                       and _shape(g.nodes[c], small) == _shape(g.nodes[u], small))
            if not viewing:
                val = env[u]
                families += [_family(t, n) for t in (val if isinstance(val, (tuple, list)) else [val])]
            if (through or viewing) and c not in env:
                def fill(name, _g=g):
                    od = _g.nodes[name]
                    if integer_valued(od):
                        value = _constant(graph, name, small)  # indices: their values decide what is picked
                        if value is not None:
                            return value
                    return torch.full(_shape(od, small), -1, dtype=INDEX)
                env[c] = env[u] if through else _run_shape_op(g, c, env, fill, small)
                stack.append(c)
    label = np.zeros(n, dtype=np.int64)
    for fam in families:  # common refinement of the partitions, kept compact (numpy's unique is fast)
        fam = fam.numpy()
        _, label = np.unique(label * (int(fam.max()) + 2) + fam + 1, return_inverse=True)
    order = np.argsort(label * n + np.arange(n), kind="stable")
    bounds = np.cumsum(np.bincount(label))[:-1]
    return [torch.from_numpy(seg) for seg in np.split(order, bounds) if seg.size]


def _space_mask(graph: Graph, name: str, axis: int, n_dead: int, small: bool
                ) -> tuple[torch.Tensor, dict[int, list[int]]]:
    """The mask of a fresh channel space: the last ``n_dead`` indices of each segment are dead."""
    shape = _shape(graph.nx.nodes[name], small)
    row = torch.zeros(shape[axis], dtype=MASK_DTYPE)
    dead: dict[int, list[int]] = {j: [] for j in range(1, n_dead + 1)}
    for seg in _segments(graph, name, axis, small):
        for j in range(1, min(n_dead, len(seg)) + 1):
            row[seg[-j]] = j
            dead[j].append(int(seg[-j]))
    for j in dead:
        dead[j].sort()
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return row.view(view).expand(shape).clone(), dead


def _union(masks: list[torch.Tensor], shape, where: str, n_dead: int) -> torch.Tensor:
    out = torch.zeros(shape, dtype=MASK_DTYPE)
    for m in masks:
        m = m.expand(shape)
        if n_dead > 1 and bool(((out > 0) & (m > 0) & (out != m)).any()):
            raise LabelError(f"{where}: operands put different dead directions on the same entry")
        out = torch.maximum(out, m)
    return out


def _reduce_dims(fx: torch.fx.Node, ndim: int) -> tuple[list[int], bool]:
    dim = fx.kwargs.get("dim", fx.args[1] if len(fx.args) > 1 else None)
    keep = fx.kwargs.get("keepdim", fx.args[2] if len(fx.args) > 2 else False)
    if dim is None:
        return list(range(ndim)), bool(keep)
    dims = [dim] if isinstance(dim, int) else list(dim)
    return [k % ndim for k in dims], bool(keep)


def _softmax_dim(fx: torch.fx.Node, ndim: int) -> int:
    dim = fx.kwargs.get("dim", fx.args[1] if len(fx.args) > 1 else -1)
    return int(dim) % ndim


def _input_axis(g, name: str) -> int:
    """The channel axis of an input: 1 where a convolution reads it (through dtype casts and
    views that keep its rank, as CLIP's ``pixel_values.to(dtype)``), else the last."""
    rank = len(g.nodes[name]["shape"] or ())
    todo, seen = [name], set()
    while todo:
        n = todo.pop()
        for c in g.successors(n):
            if c in seen:
                continue
            seen.add(c)
            w = g.nodes[c].get(WEIGHT)
            if w and w["kind"] == "conv":
                return 1
            if g.nodes[c]["op"] in ("to", "contiguous", "clone", "alias", "detach", "dropout") \
                    and len(g.nodes[c]["shape"] or ()) == rank:
                todo.append(c)
    return -1


def reduce_dims(fx: torch.fx.Node, ndim: int) -> tuple[list[int], bool]:
    """The axes a reduction runs over, and whether it keeps them."""
    return _reduce_dims(fx, ndim)


def softmax_dim(fx: torch.fx.Node, ndim: int) -> int:
    """The axis a softmax normalises over."""
    return _softmax_dim(fx, ndim)


def varies(mask: torch.Tensor, axis: int) -> bool:
    """Whether the dead class changes along ``axis`` (the axis carries channels)."""
    return _varies(mask, axis)


def _present(parts, m: int) -> frozenset:
    return frozenset({0} | {j for j in range(1, m + 1) if any(bool((p == j).any()) for p in parts)})


def assign(graph: Graph) -> None:
    """Place dead coordinates on every node, settle channel-dependent labels, build class maps.

    Each node gets ``mask`` (its dead-class mask) and ``classes`` (the classes present); weight
    nodes get ``dead_in``/``dead_out`` (indices per class); element-wise nodes get ``classmap``.
    A node's mask follows from its primitive's mask rule (:data:`MASK_RULES`, or the primitive's
    own callable). The analysis runs on one-token shapes when the graph has them (masks never vary
    along token axes), and again on the full shapes if any weight then sees a channel width it does
    not have (a model that flattens tokens into channels).
    """
    if graph.nx.graph.get("small"):
        saved = {n: dict(d) for n, d in graph.nx.nodes(data=True)}
        _assign(graph, small=True)
        if _widths_agree(graph):
            return
        for n, d in saved.items():
            graph.nx.nodes[n].clear()
            graph.nx.nodes[n].update(d)
    _assign(graph, small=False)


def _widths_agree(graph: Graph) -> bool:
    for n, d in graph.nx.nodes(data=True):
        w = d.get(WEIGHT)
        if not w or w["kind"] == "embedding":
            continue
        x = graph[d[ROLES][0][1]]
        if x[MASK].shape[w["x_axis"]] != x["shape"][w["x_axis"]]:
            return False
    return True


@attrs.define
class MaskContext:
    """What a mask rule sees: the graph, the masks and classes computed so far, the node's shape."""

    graph: Graph
    masks: dict
    classes: dict
    small: bool

    @property
    def n_dead(self) -> int:
        return self.graph.n_dead

    def shape(self, name: str):
        return _shape(self.graph.nx.nodes[name], self.small)

    def fresh_space(self, name: str, axis: int):
        """A fresh channel space at ``axis`` of node ``name``: its mask and dead indices per class."""
        return _space_mask(self.graph, name, axis, self.n_dead, self.small)


def _source(c: MaskContext, n, d, roles):
    shape = c.shape(n)
    if integer_valued(d):
        d["onehot"] = True  # token ids: the dead class is a dead token, present as a one-hot
        return torch.zeros(shape, dtype=MASK_DTYPE), frozenset(range(c.n_dead + 1))
    mask, d["dead"] = c.fresh_space(n, _input_axis(c.graph.nx, n) % len(shape))
    return mask, frozenset({0} | {j for j, idx in d["dead"].items() if idx})


def _weight(c: MaskContext, n, d, roles):
    w, m = d[WEIGHT], c.n_dead
    if w["kind"] == "embedding":
        vocab = c.graph.nx.nodes[w["operand"]]["shape"][w["w_in_axis"]]
        w["dead_in"] = {j: [vocab - j] for j in range(1, m + 1)}
    else:
        row = _axis_row(c.masks[roles["x"]], w["x_axis"], _where(n, d))
        w["dead_in"] = {j: torch.nonzero(row == j).flatten().tolist() for j in range(1, m + 1)}
    mask, w["dead_out"] = c.fresh_space(n, w["y_axis"] % len(c.shape(n)))
    if w.get("groups", 1) > 1:
        _check_groups(c, n, d, w)
    d[BULK_ORDERS] = _bulk_orders(c.graph, w)
    return mask, frozenset({0} | {j for j, idx in w["dead_out"].items() if idx})


def _bulk_orders(graph: Graph, w: dict) -> dict:
    """Orders of the weight's bulk block (``alpha``) and of its bias's bulk entries (``beta``) in the
    model's own values: 0 when generic; inf when exactly zero (torchvision's ViT zero-initialises its
    head: no gradient then reaches the bulk through it, THEORY §3.9) or, for ``beta``, when there is
    no bias. Values that cannot be read (meta device, a grouped convolution) count as generic."""
    out = {ALPHA: 0.0, BETA: 0.0 if w.get("bias") else math.inf}
    dead_out = sorted({i for idx in w["dead_out"].values() for i in idx})
    dead_in = sorted({i for idx in w["dead_in"].values() for i in idx})
    value = _constant(graph, w["operand"], False)
    if value is not None and w.get("groups", 1) == 1 and value.ndim >= 2:
        oa, ia = w["w_out_axis"] % value.ndim, w["w_in_axis"] % value.ndim
        keep_out = [i for i in range(value.shape[oa]) if i not in dead_out]
        keep_in = [i for i in range(value.shape[ia]) if i not in dead_in]
        block = value.index_select(oa, torch.tensor(keep_out, dtype=torch.long)).index_select(
            ia, torch.tensor(keep_in, dtype=torch.long))
        if block.numel() and not bool(block.any()):
            out[ALPHA] = math.inf
    if w.get("bias"):
        bias = _real_attribute(graph, w["bias"])
        if bias is not None and bias.ndim == 1:
            keep = [i for i in range(bias.shape[0]) if i not in dead_out]
            if keep and not bool(bias[keep].any()):
                out[BETA] = math.inf
    return out


def _check_groups(c: MaskContext, n, d, w) -> None:
    """A grouped convolution connects a group's inputs to that group's outputs only: a dead output
    channel with no dead input of its direction in its group would be exactly zero, not t^alpha x."""
    out_width = c.shape(n)[w["y_axis"]] // w["groups"]
    in_width = c.graph.nx.nodes[w["operand"]]["shape"][w["w_in_axis"]]
    for j, outs in w["dead_out"].items():
        have = {i // in_width for i in w["dead_in"][j]}
        if any(o // out_width not in have for o in outs):
            raise LabelError(f"{_where(n, d)}: a grouped convolution ({w['groups']} groups) whose dead output "
                             f"channels {outs} do not all share a group with a dead input channel "
                             f"{w['dead_in'][j]}; ddgraph's weight rule does not cover this")


def _elementwise(c: MaskContext, n, d, roles):
    ops = [o for o in d[OPERANDS] if o in c.masks]
    mask = _union([c.masks[o] for o in ops], c.shape(n), _where(n, d), c.n_dead)
    classes = frozenset().union(*(c.classes[o] for o in ops))
    d["classmap"] = {role: _classmap(mask, c.masks[src], classes, c.n_dead) for role, src in d[ROLES]}
    return mask, classes


def _same_as_x(c: MaskContext, n, d, roles):
    shape, x = c.shape(n), roles["x"]
    return (c.masks[x].expand(shape).clone() if shape else c.masks[x]), c.classes[x]


def _token_reduction(c: MaskContext, n, d, roles):
    x = roles["x"]
    dims, keep = _reduce_dims(d["fx"], c.masks[x].dim())
    return c.masks[x].amax(dim=dims, keepdim=keep), c.classes[x]


def _channel_row(c: MaskContext, n, d, roles):
    """Pooling: each output channel is computed from its own input channel over spatial windows, so
    the output's mask is the input's channel row (channels on axis ``pool_channel_axis``)."""
    x, shape = roles["x"], c.shape(n)
    axis = d["pool_channel_axis"] % len(shape)
    row = _axis_row(c.masks[x], axis % c.masks[x].dim(), _where(n, d))
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return row.view(view).expand(shape).clone(), c.classes[x]


def attribute(module: torch.nn.Module, target: str):
    """The attribute a ``get_attr`` target names (a parameter, buffer or constant of ``module``)."""
    value = module
    for atom in target.split("."):
        value = getattr(value, atom)
    return value


def _constant(graph: Graph, name: str, small: bool):
    """The real value of a node computed from constants and buffers only (an index list), or None
    where it cannot be had (a meta-device buffer, a value that depends on the input's sizes)."""
    fx = graph.nx.nodes[name]["fx"]
    try:
        if fx.op == "get_attr":
            value = attribute(graph.gm, str(fx.target))
        else:
            def sub(a):
                if a.name in graph.nx:
                    return _constant(graph, a.name, small)
                return a.meta.get(SMALL if small else "ddgraph_value")
            args = torch.fx.node.map_arg(fx.args, sub)
            kwargs = torch.fx.node.map_arg(fx.kwargs, sub)
            value = fx.target(*args, **kwargs) if fx.op == "call_function" else None
    except Exception:
        return None
    return value if _real(value) else None


def _real(value) -> bool:
    """A tensor with values to read (not on the meta device, not a fake tensor of a trace)."""
    return isinstance(value, torch.Tensor) and value.device.type != "meta" \
        and not torch._subclasses.fake_tensor.is_fake(value)


def _real_attribute(graph: Graph, target: str):
    """The parameter or buffer ``target`` of the traced module if its values can be read, else None."""
    try:
        value = attribute(graph.gm, target)
    except AttributeError:
        return None
    return value if _real(value) else None


def _shape_op(c: MaskContext, n, d, roles):
    g = c.graph.nx

    def fill(o):
        od = g.nodes[o]
        if integer_valued(od):  # indices: their values matter
            value = _constant(c.graph, o, c.small)
            if value is None:
                raise LabelError(f"{_where(n, d)}: picks entries by the constant {o!r}, whose value "
                                 "cannot be computed here (a meta-device buffer?)")
            return value
        return torch.zeros(c.shape(o), dtype=MASK_DTYPE)

    mask = _run_shape_op(g, n, c.masks, fill, c.small)
    return mask, _present(mask if isinstance(mask, (tuple, list)) else [mask], c.n_dead)


def _aligned(c: MaskContext, n, d, roles) -> None:
    """Queries and keys must put their dead channels at the same place in every head (the score
    q.k pairs dead with dead); where they do not, the per-class calculus would not hold: say so."""
    q, k = (c.masks[roles[r]].amax(dim=-2) for r in ("q", "k"))  # (..., heads, head channels)
    if q.dim() >= 2 and k.dim() == q.dim() and q.shape != k.shape and q.shape[-1] == k.shape[-1] \
            and k.shape[-2] and q.shape[-2] % k.shape[-2] == 0:  # grouped-query: a key head per group
        k = k.repeat_interleave(q.shape[-2] // k.shape[-2], dim=-2)
    if q.shape == k.shape and not torch.equal(q, k):
        raise LabelError(f"{_where(n, d)}: queries and keys put their dead channels at different places "
                         "within the heads, so the attention scores mix dead with live channels; ddgraph's "
                         "rules do not cover this (please report the model)")


def _value(c: MaskContext, n, d, roles):
    if "q" in roles and "k" in roles:
        _aligned(c, n, d, roles)
    v = roles.get("v", roles.get("b"))
    return c.masks[v].amax(dim=-2, keepdim=True).expand(c.shape(n)).clone(), c.classes[v]


def _channel_free(c: MaskContext, n, d, roles):
    shape = c.shape(n)
    mask = (torch.zeros(shape, dtype=MASK_DTYPE) if shape
            else tuple(torch.zeros(s, dtype=MASK_DTYPE) for s in d["small_tuple_shapes" if c.small else "tuple_shapes"]))
    return mask, frozenset({0})


def _opaque(c: MaskContext, n, d, roles):
    """An op nothing is known about: where its output's dead coordinate sits cannot be read off its
    operands, so its channel axis is a fresh space whose every class is present (and, with no rule,
    carries no valuation): whatever it reaches is no-rule, never a made-up order."""
    shape = c.shape(n)
    if not shape:
        return _channel_free(c, n, d, roles)
    return _source(c, n, {**d, "dtype": None}, roles)


#: The named mask rules a primitive may use (its ``mask`` field); a callable works the same way:
#: ``rule(ctx: MaskContext, node, node_data, roles) -> (mask, classes)``.
MASK_RULES = {"source": _source, "weight": _weight, "elementwise": _elementwise, "same_as_x": _same_as_x,
              "token_reduction": _token_reduction, "channel_row": _channel_row, "shape": _shape_op, "value": _value,
              "channel_free": _channel_free, "opaque": _opaque}


def _where(n, d) -> str:
    return f"node {n!r} ({d['target']})"


def _assign(graph: Graph, small: bool) -> None:
    g, prims = graph.nx, graph.primitives
    ctx = MaskContext(graph, {}, {}, small)
    for n in graph.order():
        d = g.nodes[n]
        prim = prims[d[PRIMITIVE]]
        if prim.inert:
            continue
        roles = {} if prim.roles and prim.roles[0].endswith("*") else dict(d[ROLES])
        if prim.settle is not None:  # a label that depends on which axes carry channels
            d[PRIMITIVE] = prim.settle(d, ctx.masks, roles)
            prim = prims[d[PRIMITIVE]]
        rule = MASK_RULES.get(prim.mask) if isinstance(prim.mask, str) else prim.mask
        if rule is None:
            raise LabelError(f"{_where(n, d)}: primitive {prim.name} has no mask rule")
        ctx.masks[n], ctx.classes[n] = rule(ctx, n, d, roles)
        d[MASK], d[CLASSES] = ctx.masks[n], ctx.classes[n]
        if prim.values:
            d[VALUE_ORDERS] = {v.name: _value_order(graph, n, d, v) for v in prim.values}
            d[VALUE_SIGNS] = {v.name: _value_order(graph, n, d, v, signs=True) for v in prim.values}


def _value_order(graph: Graph, n, d, spec, signs: bool = False) -> dict:
    """A value order per class (:class:`~ddgraph.core.primitives.ValueOrder`): ``inf`` where every entry
    of the class is exactly zero, else ``0``; with ``signs``, the sign of the class's values instead (``+``
    or ``-`` where every entry has it, ``?`` otherwise or where they cannot be read; THEORY §3.11)."""
    name = node_attr(d, spec.attr)
    if name is None:
        return {c: ("+" if spec.absent == 0 else "?") if signs else spec.absent for c in d[CLASSES]}
    value = _real_attribute(graph, name)
    if value is None:
        return {c: "?" if signs else 0.0 for c in d[CLASSES]}
    offset = node_attr(d, spec.offset) if spec.offset else None
    value = value.detach() + float(offset or 0.0)
    mask = d[MASK]
    if spec.axis != -1 and value.ndim == 1 and mask.dim() > spec.axis:
        row = _axis_row(mask, spec.axis, _where(n, d))
    elif value.ndim and mask.dim() >= value.ndim and tuple(mask.shape[mask.dim() - value.ndim:]) == value.shape:
        row = mask.reshape(-1, *value.shape).amax(0)  # masks do not vary along token axes
    else:
        row = None
    if row is None or row.shape != value.shape:
        raise LabelError(f"{_where(n, d)}: its {spec.attr} {name!r} of shape {tuple(value.shape)} does not "
                         f"line up with the channel axes of the activation (shape {tuple(mask.shape)})")
    entries = {c: value[row == c] for c in d[CLASSES]}
    if signs:
        return {c: "+" if e.numel() and bool((e > 0).all()) else "-" if e.numel() and bool((e < 0).all()) else "?"
                for c, e in entries.items()}
    return {c: math.inf if e.numel() and not bool(e.any()) else 0.0 for c, e in entries.items()}


def _classmap(out: torch.Tensor, operand: torch.Tensor, classes, m: int) -> dict[int, int]:
    """For each class of an element-wise output, the class of the operand entries under it."""
    operand = operand.expand(out.shape)
    if torch.equal(out, operand):
        return {c: c for c in classes}
    base = m + 1
    pair = out.flatten().long() * base + operand.flatten().long()
    cmap: dict[int, int] = {}
    for key in torch.nonzero(torch.bincount(pair)).flatten().tolist():
        cmap[key // base] = max(key % base, cmap.get(key // base, 0))
    return {c: cmap.get(c, c) for c in classes}
