"""The ddgraph Graph: a traced model as a networkx DiGraph whose nodes carry labels and results.

Nodes are keyed by fx node name. Each node holds the fx node (``fx``), its canonical op name
(``op``), shape and dtype, the module path it came from (``module``), the qualified parameter name
for parameter nodes (``param``), and, after labelling, its ``primitive``, its operand ``roles`` and
its dead-coordinate data (``mask``, ``classes``). Analyses store their results on nodes under named
keys (``valuation``, ``prediction``) and return plain dicts keyed by node.
"""
from __future__ import annotations

import attrs
import networkx as nx
import torch

from .ops import op_name, target_repr
from .primitives import BUILTIN, Primitives


@attrs.define
class Graph:
    """A traced and (after :func:`ddgraph.label`) labelled model."""

    nx: nx.DiGraph
    gm: torch.fx.GraphModule
    model_name: str
    tracer: str
    example_inputs: object = None
    n_dead: int = 1
    labelled: bool = False
    primitives: Primitives = BUILTIN  # the vocabulary the graph was labelled with

    def nodes_exposing(self, observable: str) -> list[str]:
        """Names of the nodes whose primitive exposes ``observable`` (see ddgraph.primitives), in order."""
        names = self.primitives.with_observable(observable)
        return [n for n in self.order() if self.nx.nodes[n].get("primitive") in names]

    def nodes_with(self, primitive: str) -> list[str]:
        """Names of the nodes labelled ``primitive``, in graph order."""
        return [n for n, d in self.nx.nodes(data=True) if d.get("primitive") == primitive]

    def order(self) -> list[str]:
        """Node names in execution (topological) order."""
        return list(self.nx.graph["order"])

    def __getitem__(self, name: str) -> dict:
        return self.nx.nodes[name]

    def summary(self) -> dict[str, int]:
        """How many nodes carry each primitive."""
        counts: dict[str, int] = {}
        for _, d in self.nx.nodes(data=True):
            counts[d.get("primitive", "?")] = counts.get(d.get("primitive", "?"), 0) + 1
        return dict(sorted(counts.items()))


def _module_of(fx_node: torch.fx.Node) -> tuple[str | None, str | None]:
    stack = fx_node.meta.get("nn_module_stack")
    if not stack:
        return None, None
    path, mtype = list(stack.values())[-1]
    mtype = mtype if isinstance(mtype, str) else f"{mtype.__module__}.{mtype.__qualname__}"
    return (path or None), mtype


def _is_tensor(value) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (tuple, list)) and len(value) > 0 and all(
        isinstance(v, torch.Tensor) for v in value)


def _shape_of(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def build(gm: torch.fx.GraphModule, *, model_name: str, tracer: str, example_inputs=None,
          small: bool = False) -> Graph:
    """Turn a shape-propagated GraphModule into a :class:`Graph` (unlabelled).

    Only nodes whose value is a tensor (or a tuple of tensors, as ``split`` returns) become graph
    nodes; size queries and assertions stay in the fx graph only. With ``small``, nodes also carry
    ``small_shape``: their shape under one-token inputs (see :func:`ddgraph.trace.one_token_inputs`).
    """
    from .trace import SMALL

    params = dict(gm.named_parameters())
    buffers = dict(gm.named_buffers())
    g = nx.DiGraph()
    order = []
    for n in gm.graph.nodes:
        value = n.meta.get("ddgraph_value")
        op = op_name(n)
        if n.op == "output":
            pass
        elif n.op == "call_module" or not _is_tensor(value):
            continue  # size queries, assertions and guards stay in the fx graph only
        module, mtype = _module_of(n)
        attrs_ = dict(fx=n, op=op, target=target_repr(n), module=module, module_type=mtype,
                      shape=tuple(value.shape) if isinstance(value, torch.Tensor) else None,
                      dtype=str(value.dtype).removeprefix("torch.") if isinstance(value, torch.Tensor) else None,
                      tuple_shapes=[tuple(v.shape) for v in value] if isinstance(value, (tuple, list)) else None,
                      param=None, is_parameter=False, stack=n.meta.get("stack_trace"))
        if small:
            sv = n.meta.get(SMALL)
            attrs_["small_shape"] = _shape_of(sv)
            attrs_["small_tuple_shapes"] = [tuple(v.shape) for v in sv] if isinstance(sv, (tuple, list)) else None
        if n.op == "get_attr":
            attrs_["param"] = str(n.target)
            attrs_["is_parameter"] = str(n.target) in params
            if not attrs_["is_parameter"] and str(n.target) not in buffers:
                attrs_["is_constant"] = True
        g.add_node(n.name, **attrs_)
        order.append(n.name)
        for a in n.all_input_nodes:
            if a.name in g:
                g.add_edge(a.name, n.name)
    g.graph["order"] = order
    g.graph["small"] = small
    return Graph(nx=g, gm=gm, model_name=model_name, tracer=tracer, example_inputs=example_inputs)


def tensor_operands(g: nx.DiGraph, name: str) -> list[str]:
    """The node's tensor operands in argument order (a node used twice appears twice)."""
    fx_node = g.nodes[name]["fx"]
    out: list[str] = []
    torch.fx.node.map_arg((fx_node.args, fx_node.kwargs),
                          lambda a: out.append(a.name) if a.name in g else None)
    return out
