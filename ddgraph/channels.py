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

import networkx as nx
import numpy as np
import torch

from . import primitives
from .errors import LabelError
from .graph import Graph
from .trace import SMALL

MASK = torch.int8  # dead class ids (0 = bulk) fit in a byte
INDEX = torch.int32  # source indices in the segment analysis (-1: not from the source)


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


def _segments(g: nx.DiGraph, src: str, axis: int, small: bool) -> list[torch.Tensor]:
    """Cut the channel space of ``src`` into segments by how its shape-only descendants are used."""
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
            cp = g.nodes[c].get("primitive")
            if cp in ("shape", "concat") and c not in env:
                def fill(name, _g=g):
                    return torch.full(_shape(_g.nodes[name], small), -1, dtype=INDEX)
                env[c] = _run_shape_op(g, c, env, fill, small)
                stack.append(c)
            elif cp not in ("shape", "concat"):
                val = env[u]
                families += [_family(t, n) for t in (val if isinstance(val, (tuple, list)) else [val])]
    label = np.zeros(n, dtype=np.int64)
    for fam in families:  # common refinement of the partitions, kept compact (numpy's unique is fast)
        fam = fam.numpy()
        _, label = np.unique(label * (int(fam.max()) + 2) + fam + 1, return_inverse=True)
    order = np.argsort(label * n + np.arange(n), kind="stable")
    bounds = np.cumsum(np.bincount(label))[:-1]
    return [torch.from_numpy(seg) for seg in np.split(order, bounds) if seg.size]


def _space_mask(g, name: str, axis: int, n_dead: int, small: bool) -> tuple[torch.Tensor, dict[int, list[int]]]:
    """The mask of a fresh channel space: the last ``n_dead`` indices of each segment are dead."""
    shape = _shape(g.nodes[name], small)
    row = torch.zeros(shape[axis], dtype=MASK)
    dead: dict[int, list[int]] = {j: [] for j in range(1, n_dead + 1)}
    for seg in _segments(g, name, axis, small):
        for j in range(1, min(n_dead, len(seg)) + 1):
            row[seg[-j]] = j
            dead[j].append(int(seg[-j]))
    for j in dead:
        dead[j].sort()
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return row.view(view).expand(shape).clone(), dead


def _union(masks: list[torch.Tensor], shape, where: str, n_dead: int) -> torch.Tensor:
    out = torch.zeros(shape, dtype=MASK)
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
    for c in g.successors(name):
        w = g.nodes[c].get("weight")
        if w and w["kind"] == "conv":
            return 1
    return -1


def _settle(d: dict, masks: dict, roles: dict) -> str:
    """Labels that depend on which axes carry channels: softmax, reductions, activation products."""
    prim = d["primitive"]
    if prim == "softmax?":
        x = masks[roles["x"]]
        prim = "softmax_channels" if _varies(x, _softmax_dim(d["fx"], x.dim())) else "softmax_tokens"
    elif prim == "reduce?":
        x = masks[roles["x"]]
        dims, _ = _reduce_dims(d["fx"], x.dim())
        prim = "reduce_channels" if any(_varies(x, k) for k in dims) else "reduce_tokens"
    elif prim == "matmul?":
        a, b = masks[roles["a"]], masks[roles["b"]]
        prim = "contraction" if _varies(a, -1) or (b.dim() > 1 and _varies(b, -2)) else "token_mix"
    d["primitive"] = prim
    return prim


def _present(parts, m: int) -> frozenset:
    return frozenset({0} | {j for j in range(1, m + 1) if any(bool((p == j).any()) for p in parts)})


def assign(graph: Graph) -> None:
    """Place dead coordinates on every node, settle channel-dependent labels, build class maps.

    Each node gets ``mask`` (its dead-class mask) and ``classes`` (the classes present); weight
    nodes get ``dead_in``/``dead_out`` (indices per class); element-wise nodes get ``classmap``.
    The analysis runs on one-token shapes when the graph has them (masks never vary along token
    axes), and again on the full shapes if any weight then sees a channel width it does not have
    (a model that flattens tokens into channels).
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
    for n in graph.nodes_with("weight"):
        d = graph[n]
        w, x = d["weight"], graph[d["roles"][0][1]]
        if w["kind"] == "embedding":
            continue
        if x["mask"].shape[w["x_axis"]] != x["shape"][w["x_axis"]]:
            return False
    return True


def _assign(graph: Graph, small: bool) -> None:
    g, m = graph.nx, graph.n_dead
    masks: dict[str, object] = {}
    classes: dict[str, frozenset] = {}
    every = frozenset(range(m + 1))
    for n in graph.order():
        d = g.nodes[n]
        if d["primitive"] in primitives.INERT:
            continue
        where = f"node {n!r} ({d['target']})"
        roles = dict(d["roles"]) if d["primitive"] not in ("concat", "unknown") else {}
        prim = _settle(d, masks, roles)
        kind = primitives.get(prim).masks
        shape = _shape(d, small)
        if kind == "source":
            if d["dtype"] and ("int" in d["dtype"] or d["dtype"] == "bool"):
                d["onehot"] = True  # token ids: the dead class is a dead token, present as a one-hot
                masks[n], classes[n] = torch.zeros(shape, dtype=MASK), every
            else:
                masks[n], d["dead"] = _space_mask(g, n, _input_axis(g, n) % len(shape), m, small)
                classes[n] = frozenset({0} | {j for j, idx in d["dead"].items() if idx})
        elif kind == "weight":
            w = d["weight"]
            if w["kind"] == "embedding":
                vocab = g.nodes[w["operand"]]["shape"][w["w_in_axis"]]
                w["dead_in"] = {j: [vocab - j] for j in range(1, m + 1)}
            else:
                row = _axis_row(masks[roles["x"]], w["x_axis"], where)
                w["dead_in"] = {j: torch.nonzero(row == j).flatten().tolist() for j in range(1, m + 1)}
            masks[n], w["dead_out"] = _space_mask(g, n, w["y_axis"] % len(shape), m, small)
            classes[n] = frozenset({0} | {j for j, idx in w["dead_out"].items() if idx})
        elif kind == "elementwise":
            ops = [o for o in d["operands"] if o in masks]
            masks[n] = _union([masks[o] for o in ops], shape, where, m)
            classes[n] = frozenset().union(*(classes[o] for o in ops))
        elif kind == "same_as_x":
            masks[n] = masks[roles["x"]].expand(shape).clone() if shape else masks[roles["x"]]
            classes[n] = classes[roles["x"]]
        elif kind == "shape" and prim == "reduce_tokens":
            dims, keep = _reduce_dims(d["fx"], masks[roles["x"]].dim())
            masks[n], classes[n] = masks[roles["x"]].amax(dim=dims, keepdim=keep), classes[roles["x"]]
        elif kind == "shape":
            masks[n] = _run_shape_op(g, n, masks, lambda o: torch.zeros(_shape(g.nodes[o], small), dtype=MASK), small)
            classes[n] = _present(masks[n] if isinstance(masks[n], (tuple, list)) else [masks[n]], m)
        elif kind == "value":
            v = roles.get("v", roles.get("b"))
            masks[n] = masks[v].amax(dim=-2, keepdim=True).expand(shape).clone()
            classes[n] = classes[v]
        elif kind == "channel_free":
            masks[n] = (torch.zeros(shape, dtype=MASK) if shape
                        else tuple(torch.zeros(s, dtype=MASK) for s in
                                   d["small_tuple_shapes" if small else "tuple_shapes"]))
            classes[n] = frozenset({0})
        else:
            raise LabelError(f"{where}: primitive {prim} has no mask kind")
        d["mask"], d["classes"] = masks[n], classes[n]
        if kind == "elementwise":
            d["classmap"] = {role: _classmap(masks[n], masks[src], classes[n], m) for role, src in d["roles"]}


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
