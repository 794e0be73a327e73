"""Canonicalisation: a copy of the model at the canonical singular configuration W(t).

What happens to a node's parameters is its primitive's declaration (``Primitive.canonical``, a
tuple of :class:`~ddgraph.core.primitives.ParamSpec`); this module only knows the two layouts. A
``matrix`` (a weight edge) has its dead rows and dead columns zeroed and its dead-to-dead entries
set to ``t**exponent`` (the centre tap for a convolution); a ``vector`` has its dead entries zeroed
or set to ``t**exponent`` (``inf``: held at zero). The bulk keeps the model's own values. The
user's model is never touched: the traced GraphModule is deep-copied into fp64 first.
"""
from __future__ import annotations

import math

import attrs
import torch

from ddgraph.core.approach import Approach
from ddgraph.core.engine import exponent_tables
from ddgraph.core.graph import MASK, OPERANDS, PRIMITIVE, Graph
from ddgraph.core.primitives import ParamSpec, node_attr
from ddgraph.errors import ProbeError
from ddgraph.frontend.channels import _run_shape_op
from ddgraph.frontend.tracing import copy_quietly


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
    notes: list = attrs.Factory(list)  # what was changed on the copy besides W(t) (dropout turned off)

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
        ops = g.nodes[chain[-1]][OPERANDS]
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


_RANDOM = {"rand", "randn", "rand_like", "randn_like", "randint", "randint_like", "randperm", "bernoulli",
           "bernoulli_", "normal", "normal_", "uniform_", "exponential_", "geometric_", "cauchy_", "log_normal_",
           "random_", "multinomial", "poisson", "rrelu", "rrelu_with_noise", "gumbel_softmax"}


def _op_name(n: torch.fx.Node) -> str:
    t = n.target
    if isinstance(t, str):
        return t
    schema = getattr(t, "_schema", None)
    return schema.name.split("::")[-1] if schema is not None else getattr(t, "__name__", str(t))


def deterministic(gm: torch.fx.GraphModule) -> list[str]:
    """Make a traced copy deterministic in place; returns what was changed, one note per kind.

    Dropout in training mode (a module, ``F.dropout(..., training=True)`` or ATen ``dropout``) redraws
    its mask at every call, so no two t-points would see the same network: it is switched to its
    eval form (the identity) on this copy, which is the map the rules describe. Any other random op
    cannot be made deterministic here and is a :class:`~ddgraph.errors.StochasticModelError`.
    """
    from ddgraph.errors import StochasticModelError

    off, changed = [], False
    for n in gm.graph.nodes:
        if n.op == "call_module":
            mod = gm.get_submodule(n.target)
            if isinstance(mod, torch.nn.modules.dropout._DropoutNd) and mod.training:
                mod.eval()
                off.append(n.target)
            continue
        if n.op not in ("call_function", "call_method"):
            continue
        name = _op_name(n)
        if "dropout" in name:
            key = next((k for k in ("training", "train") if k in n.kwargs), None)
            if key is not None and n.kwargs[key] is True:
                n.kwargs = {**n.kwargs, key: False}
            elif key is None and len(n.args) > 2 and n.args[2] is True:
                n.args = (*n.args[:2], False, *n.args[3:])
            else:
                continue
            off.append(n.name)
            changed = True
        elif name in _RANDOM and (not name.startswith("rrelu") or n.kwargs.get("training") is True
                                  or (len(n.args) > 3 and n.args[3] is True)):
            raise StochasticModelError(
                f"the model draws random numbers in its forward pass (node {n.name}: {name}); the probe "
                "compares the model at several t on common random numbers and needs a deterministic map. "
                "Put the model in eval mode (model.eval()) or remove the random op, then probe again")
    if changed:
        gm.recompile()
    if not off:
        return []
    return [f"dropout in training mode at {', '.join(off)}: probed with dropout off (its eval form), on ddgraph's "
            "own copy; your model is unchanged (call model.eval() first to silence this note)"]


def canonicalise(graph: Graph, approach: Approach) -> Canonical:
    """Build the canonical fp64 copy of ``graph``'s model for ``approach``."""
    for _, p in graph.gm.named_parameters():
        if p.device.type == "meta":
            raise ProbeError("the model's weights are on the meta device; the probe needs real weights "
                             "(build the model on the CPU, e.g. with a small config)")
    gm = _fp64_graph(copy_quietly(graph.gm).double())
    notes = deterministic(gm)
    for p in gm.parameters():
        p.requires_grad_(False)
    state = _State(gm, exponent_tables(graph, approach), graph.n_dead)
    for n in graph.order():
        d = graph[n]
        for spec in graph.primitives[d[PRIMITIVE]].canonical:
            value = node_attr(d, spec.attr)
            if not value:
                continue  # the node has no such parameter (a linear without bias)
            if spec.layout == "matrix":
                _matrix(graph, state, value, spec)
            else:
                _vector(state, d, value, spec)
    with torch.no_grad():
        for param, idx in state.zero.items():
            gm.get_parameter(param).view(-1)[torch.tensor(sorted(idx), dtype=torch.long)] = 0.0
    return Canonical(gm, state.moving, notes)


@attrs.define
class _State:
    gm: torch.fx.GraphModule
    exponents: dict
    n_dead: int
    moving: list = attrs.Factory(list)
    zero: dict = attrs.Factory(dict)

    def hold(self, param: str, idx: torch.Tensor) -> None:
        self.zero.setdefault(param, set()).update(int(i) for i in idx.flatten())

    def exponent(self, spec: ParamSpec, param: str, j: int) -> float:
        table = self.exponents.get(spec.exponent, {})
        return table[param][j - 1] if param in table else math.inf


def _matrix(graph: Graph, state: _State, w: dict, spec: ParamSpec) -> None:
    """A weight edge (its node's weight record ``w``): dead rows and columns zeroed, dead-to-dead
    entries ``t**exponent``."""
    idx = operand_index(graph, w["operand"])
    win, wout = w["w_in_axis"] % idx.dim(), w["w_out_axis"] % idx.dim()
    # a grouped convolution (weight: out x in/groups x kernel) reaches input channel i from the
    # outputs of i's group only, through its column i % in_width
    in_width = idx.shape[win]
    out_width = idx.shape[wout] // w.get("groups", 1)

    def column(i):
        col = idx.select(win, i % in_width)
        k = i // in_width
        return col.narrow(wout if wout < win else wout - 1, k * out_width, out_width)

    for j in range(1, state.n_dead + 1):
        for o in w["dead_out"][j]:
            state.hold(w["param"], idx.select(wout, o))
        for i in w["dead_in"][j]:
            state.hold(w["param"], column(i))
    for j in range(1, state.n_dead + 1):
        pairs = []
        for o in w["dead_out"][j]:
            row = idx.select(wout, o)
            for i in w["dead_in"][j]:
                if i // in_width != o // out_width:
                    continue  # different groups: no entry connects them
                cell = row.select(win if win < wout else win - 1, i % in_width)
                if w["kind"] == "conv":  # centre tap of the kernel
                    cell = cell[tuple(s // 2 for s in cell.shape)]
                pairs.append(cell.reshape(-1))
        if pairs:
            state.moving.append(Entry(w["param"], torch.cat(pairs), state.exponent(spec, w["param"], j)))


def _vector(state: _State, d: dict, name: str, spec: ParamSpec) -> None:
    """A per-channel vector along the node's channel axis: dead entries zeroed or ``t**exponent``.
    A table of vectors (position embeddings) has the dead column of every row treated alike."""
    axis = spec.axis if isinstance(spec.axis, int) else node_attr(d, spec.axis)
    row = _mask_row(d[MASK], axis)
    if spec.buffer:
        with torch.no_grad():
            state.gm.get_buffer(name).view(-1)[torch.nonzero(row > 0).flatten()] = 0.0
        return
    p = state.gm.get_parameter(name)
    numel = p.numel()
    last = p.shape[-1] if p.dim() else 1
    for j in range(1, state.n_dead + 1):
        idx = torch.tensor([i for i in torch.nonzero(row == j).flatten().tolist() if i < min(numel, last)],
                           dtype=torch.long)
        if p.dim() > 1:
            idx = torch.arange(numel).view(-1, last)[:, idx].flatten()
        state.hold(name, idx)
        if spec.dead == "approach":
            b = state.exponent(spec, name, j)
            if not math.isinf(b) and idx.numel():
                state.moving.append(Entry(name, idx, b))
