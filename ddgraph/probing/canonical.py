"""Canonicalisation: a copy of the model at the canonical singular configuration W(t).

Every weight on the dead path has its dead rows and dead columns zeroed and its dead-to-dead
entries set to ``t**alpha`` (the centre tap for a convolution); dead bias entries are zero or
``t**beta``. The bulk block keeps the model's own weights. The user's model is never touched: the
traced GraphModule is deep-copied into fp64 first.
"""
from __future__ import annotations

import copy
import math

import attrs
import torch

from ..channels import _run_shape_op
from ..config import Approach
from ..engine import _params
from ..errors import ProbeError
from ..graph import Graph


@attrs.define
class Entry:
    """Flat indices of one parameter that follow ``t**exponent`` (``inf``: held at zero)."""

    param: str
    index: torch.Tensor
    exponent: float


@attrs.define
class Canonical:
    """A canonicalised fp64 copy of the model and the entries that move with t."""

    gm: torch.fx.GraphModule
    moving: list[Entry]

    def set_t(self, t: float) -> None:
        """Put the copy at approach parameter ``t``."""
        with torch.no_grad():
            for e in self.moving:
                p = self.gm.get_parameter(e.param)
                p.view(-1)[e.index] = 0.0 if math.isinf(e.exponent) else t ** e.exponent


def operand_index(graph: Graph, operand: str) -> torch.Tensor:
    """Flat parameter indices of every entry of a parameter operand (following views/transposes)."""
    g = graph.nx
    chain = [operand]
    while g.nodes[chain[-1]]["fx"].op != "get_attr":
        ops = g.nodes[chain[-1]]["operands"]
        if len(ops) != 1:
            raise ProbeError(f"cannot follow parameter operand {operand!r} back to its parameter")
        chain.append(ops[0])
    root = chain[-1]
    shape = g.nodes[root]["shape"]
    env = {root: torch.arange(math.prod(shape)).view(shape)}
    for n in reversed(chain[:-1]):
        env[n] = _run_shape_op(g, n, env)
    return env[operand]


def _mask_row(mask: torch.Tensor, axis: int) -> torch.Tensor:
    return mask.movedim(axis, -1).reshape(-1, mask.shape[axis]).amax(0)


_LOW = (torch.float32, torch.float16, torch.bfloat16)


def _fp64_graph(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Make an exported graph compute in fp64: casts to a low float dtype become casts to fp64 and
    torch.export's dtype assertions go (they pin the dtype the model was traced in)."""
    changed = False
    for n in list(gm.graph.nodes):
        if n.op != "call_function":
            continue
        if "assert_tensor_metadata" in str(n.target):
            gm.graph.erase_node(n)
            changed = True
            continue
        up = lambda a: torch.float64 if isinstance(a, torch.dtype) and a in _LOW else a  # noqa: E731
        args = tuple(up(a) for a in n.args)
        kwargs = {k: up(v) for k, v in n.kwargs.items()}
        if args != n.args or kwargs != n.kwargs:
            n.args, n.kwargs, changed = args, kwargs, True
    if changed:
        gm.recompile()
    return gm


def canonicalise(graph: Graph, approach: Approach) -> Canonical:
    """Build the canonical fp64 copy of ``graph``'s model for ``approach``."""
    g = graph.nx
    for _, p in graph.gm.named_parameters():
        if p.device.type == "meta":
            raise ProbeError("the model's weights are on the meta device; the probe needs real weights "
                             "(build the model on the CPU, e.g. with a small config)")
    gm = _fp64_graph(copy.deepcopy(graph.gm).double())
    for p in gm.parameters():
        p.requires_grad_(False)
    alpha, beta = _params(graph, approach)
    moving: list[Entry] = []
    zero: dict[str, set[int]] = {}

    def hold(param, idx):
        zero.setdefault(param, set()).update(int(i) for i in idx.flatten())

    for n in graph.order():
        d = g.nodes[n]
        if d["primitive"] == "weight":
            w = d["weight"]
            idx = operand_index(graph, w["operand"])
            win, wout = w["w_in_axis"] % idx.dim(), w["w_out_axis"] % idx.dim()
            for j in range(1, graph.n_dead + 1):
                for o in w["dead_out"][j]:
                    hold(w["param"], idx.select(wout, o))
                for i in w["dead_in"][j]:
                    hold(w["param"], idx.select(win, i))
            for j in range(1, graph.n_dead + 1):
                pairs = []
                for o in w["dead_out"][j]:
                    row = idx.select(wout, o)
                    for i in w["dead_in"][j]:
                        cell = row.select(win if win < wout else win - 1, i)
                        if w["kind"] == "conv":  # centre tap of the kernel
                            cell = cell[tuple(s // 2 for s in cell.shape)]
                        pairs.append(cell.reshape(-1))
                if pairs:
                    moving.append(Entry(w["param"], torch.cat(pairs), alpha[w["param"]][j - 1]))
            if w.get("bias"):
                _bias_entries(gm, w["bias"], {j: w["dead_out"][j] for j in w["dead_out"]}, beta, moving, hold)
        elif d["primitive"] in ("bias_add", "prepend_token") and d.get("bias_param"):
            mask = d["mask"]
            row = _mask_row(mask, -1)
            dead = {j: torch.nonzero(row == j).flatten().tolist() for j in range(1, graph.n_dead + 1)}
            _bias_entries(gm, d["bias_param"], dead, beta, moving, hold)
        elif d["primitive"] in ("batchnorm_eval", "batchnorm_train"):
            row = _mask_row(d["mask"], 1)  # channels sit on axis 1 (N, C, *spatial)
            dead = torch.nonzero(row > 0).flatten()
            if d.get("norm_bias"):
                hold(d["norm_bias"], dead)
            if d.get("running_mean") and d["primitive"] == "batchnorm_eval":
                with torch.no_grad():  # eval: the running mean is a shift, zeroed on the dead channel
                    gm.get_buffer(d["running_mean"]).view(-1)[dead] = 0.0
        elif d["primitive"] in ("layernorm",) and d.get("norm_bias"):
            row = _mask_row(d["mask"], -1)
            hold(d["norm_bias"], torch.nonzero(row > 0).flatten())
    with torch.no_grad():
        for param, idx in zero.items():
            gm.get_parameter(param).view(-1)[torch.tensor(sorted(idx), dtype=torch.long)] = 0.0
    return Canonical(gm, moving)


def _bias_entries(gm, param, dead, beta, moving, hold):
    p = gm.get_parameter(param)
    numel = p.numel()
    last = p.shape[-1] if p.dim() else 1
    for j, idx in dead.items():
        idx = torch.tensor([i for i in idx if i < min(numel, last)], dtype=torch.long)
        if p.dim() > 1:  # a table of biases (position embeddings): the dead column of every row
            idx = torch.arange(numel).view(-1, last)[:, idx].flatten()
        hold(param, idx)
        b = beta.get(param, (math.inf,) * len(dead))[j - 1]
        if not math.isinf(b) and idx.numel():
            moving.append(Entry(param, idx, b))
