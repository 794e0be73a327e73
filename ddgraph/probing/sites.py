"""What the probe records at each node: K-FAC rows at weight nodes, activations at LN and stream sites."""
from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F

from ddgraph.core.engine import VALUATION
from ddgraph.core.graph import CLASSES, MASK, ROLES, WEIGHT, Graph


@attrs.define
class WeightSite:
    """A weight node: how to turn its input and output into K-FAC rows, and where its dead entries sit."""

    node: str
    param: str
    kind: str
    x_node: str
    dead_in: dict  # class -> indices in A's coordinates
    dead_out: dict  # class -> indices in G's coordinates
    conv: dict | None = None
    vocab: int | None = None
    x_axis: int = -1
    parent: str | None = None  # a slice of a fused weight (c_attn[q]) reads its parent's factors
    y_axis: int = -1

    def a_rows(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv":
            c = self.conv
            if c["group"] is not None:  # a grouped convolution: the group holding the dead channels
                k, width = c["group"][0], c["group"][1]
                x = x[:, k * width:(k + 1) * width]
            spatial = x.dim() - 2
            if spatial == 1:
                x = x.unsqueeze(-1)
            cols = F.unfold(x, c["kernel"], dilation=c["dilation"], padding=c["padding"], stride=c["stride"])
            return cols.transpose(1, 2).reshape(-1, cols.shape[1])
        return x.movedim(self.x_axis, -1).reshape(-1, x.shape[self.x_axis])

    def g_rows(self, y: torch.Tensor) -> torch.Tensor:
        axis = 1 if self.kind == "conv" else self.y_axis
        if self.kind == "conv" and self.conv["group"] is not None:
            k, width = self.conv["group"][0], self.conv["group"][2]
            y = y[:, k * width:(k + 1) * width]
        return y.movedim(axis, -1).reshape(-1, y.shape[axis])


_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONVOLUTION_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "transposed",
                     "output_padding", "groups")


def _tuple(v, n: int) -> tuple:
    v = tuple(v) if isinstance(v, (list, tuple)) else (v,)
    return v * n if len(v) == 1 else v


def _conv_geometry(d: dict, weight_shape) -> dict | None:
    """Kernel, stride, padding and dilation as 2-d tuples (a 1-d conv gains a unit axis)."""
    fx = d["fx"]
    names = _CONVOLUTION_ARGS if "convolution" in d["target"] else _CONV_ARGS
    a = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "transposed": False}
    a.update(zip(names, fx.args))
    a.update(fx.kwargs)
    k = tuple(weight_shape[2:])
    if a["transposed"] or len(k) > 2:
        return None  # transposed or 3-d convolutions are not measured
    pad = a["padding"]
    if isinstance(pad, str):
        pad = tuple(s // 2 for s in k) if pad == "same" else 0
    n = len(k)
    geo = {"kernel": k, "stride": _tuple(a["stride"], n), "padding": _tuple(pad, n),
           "dilation": _tuple(a["dilation"], n)}
    if n == 1:
        geo = {key: tuple(v) + ((1,) if key != "padding" else (0,)) for key, v in geo.items()}
    geo["groups"] = int(a["groups"])
    return geo


def _group(geo: dict, weight_shape, dead_in: dict, dead_out: dict):
    """A grouped convolution's weight is block-diagonal over groups, and so are its K-FAC factors:
    the site reads the block of the group holding the dead channels, as ``(group, in width, out
    width)`` with the dead indices in the group's own coordinates; or a reason it cannot."""
    groups = geo["groups"]
    if groups == 1:
        return None, dead_in, dead_out
    width_in, width_out = weight_shape[1], weight_shape[0] // groups
    firsts = [i for idx in dead_in.values() for i in idx[:1]]
    if not firsts:
        return "no dead input channel", None, None
    k = firsts[0] // width_in
    local_in = {j: [i - k * width_in for i in idx if i // width_in == k] for j, idx in dead_in.items()}
    local_out = {j: [o - k * width_out for o in idx if o // width_out == k] for j, idx in dead_out.items()}
    if not all(local_in.values()) or not all(local_out.values()):
        return "the dead channels of its directions sit in different groups", None, None
    return (k, width_in, width_out), local_in, local_out


def weight_sites(graph: Graph) -> tuple[list[WeightSite], list[str]]:
    """Sites for every weight node, and the nodes that cannot be measured (with reasons)."""
    g = graph.nx
    sites, skipped = [], []
    for n in graph.nodes_exposing("kfac"):
        d = g.nodes[n]
        w = d[WEIGHT]
        x = d[ROLES][0][1]
        site = WeightSite(node=n, param=w["param"], kind=w["kind"], x_node=x,
                          dead_in=dict(w["dead_in"]), dead_out=dict(w["dead_out"]),
                          x_axis=w["x_axis"] if w["x_axis"] is not None else -1, y_axis=w["y_axis"])
        if w["kind"] == "conv":
            wshape = g.nodes[w["operand"]]["shape"]
            geo = _conv_geometry(d, wshape)
            if geo is None:
                skipped.append(f"{n} ({w['param']}): 3-d or transposed convolution")
                continue
            geo["group"], dead_in, site.dead_out = _group(geo, wshape, w["dead_in"], w["dead_out"])
            if dead_in is None:
                skipped.append(f"{n} ({w['param']}): grouped convolution: {geo['group']}")
                continue
            site.conv = geo
            taps = geo["kernel"][0] * geo["kernel"][1]
            centre = (geo["kernel"][0] // 2) * geo["kernel"][1] + geo["kernel"][1] // 2
            site.dead_in = {j: [c * taps + centre for c in idx] for j, idx in dead_in.items()}
        if w["kind"] == "embedding":
            site.vocab = g.nodes[w["operand"]]["shape"][w["w_in_axis"]]
        sites.append(site)
        for sl in w.get("slices", ()):  # fused weights: each output slice's dead block of G
            sites.append(attrs.evolve(site, node=f"{n}[{sl['name']}]", param=f"{w['param']}[{sl['name']}]",
                                      dead_out=dict(sl["dead_out"]), parent=n))
    return sites, skipped


def channel_axis(d: dict) -> int:
    """The axis a node's dead coordinate varies along (1 for a convolution's feature map), else the last."""
    mask = d.get(MASK)
    if isinstance(mask, torch.Tensor):
        for k in range(mask.dim()):
            if mask.shape[k] > 1 and bool((mask != mask.narrow(k, 0, 1)).any()):
                return k
    return -1


def deepest_channels(d: dict, axis: int) -> list[int]:
    """Channels along ``axis`` of the dead classes with the highest finite positive magnitude order at a
    node (its valuation's ``v``); empty when no dead class vanishes faster than the rest, or some order is
    unknown."""
    v = d[VALUATION].v if VALUATION in d else None
    if v is None or any(v[c][0] is None for c in d[CLASSES]):
        return []
    orders = {c: v[c][0] for c in d[CLASSES] if math.isfinite(v[c][0])}
    top = max(orders.values(), default=0)
    deep = [c for c, k in orders.items() if k == top and c != 0]
    if top <= 0 or not deep or any(k == top for c, k in orders.items() if c == 0):
        return []
    mask = d[MASK]
    row = mask.movedim(axis, -1).reshape(-1, mask.shape[axis]).to(torch.long)
    hit = torch.zeros(row.shape[1], dtype=torch.bool)
    for c in deep:
        hit |= (row == c).any(0)
    return torch.nonzero(hit).flatten().tolist()


def bulk_channels(d: dict, axis: int) -> torch.Tensor:
    """Indices along ``axis`` where a node carries no dead coordinate."""
    mask = d[MASK]
    row = mask.movedim(axis, -1).reshape(-1, mask.shape[axis]).amax(0)
    return torch.nonzero(row == 0).flatten()


def stream_root(graph: Graph, node: str) -> str | None:
    """The tensor a chain of identity skips starts from: follow ``node``'s skip operand (the one the other
    operand is computed from) back through skip adds. None when the root is not laid out as ``node`` (the
    branches' sum ``node - root`` is then not an entry-wise difference)."""
    g = graph.nx
    position = {n: i for i, n in enumerate(graph.order())}
    stream = set(graph.nodes_exposing("stream"))
    x = node
    while x in stream:
        x = min((o for _, o in g.nodes[x][ROLES]), key=position.__getitem__)
    d, root = g.nodes[node], g.nodes[x]
    if d.get("shape") != root.get("shape") or channel_axis(d) != channel_axis(root):
        return None
    return x
