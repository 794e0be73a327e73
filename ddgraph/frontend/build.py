"""Build a :class:`~ddgraph.core.graph.Graph` from a shape-propagated torch.fx GraphModule."""
from __future__ import annotations

import networkx as nx
import torch

from ddgraph.core.graph import Graph
from ddgraph.frontend.ops import op_name, target_repr


def _module_of(fx_node: torch.fx.Node) -> tuple[str | None, str | None]:
    stack = fx_node.meta.get("nn_module_stack")
    if not stack:
        return None, None
    path, mtype = list(stack.values())[-1]
    mtype = mtype if isinstance(mtype, str) else f"{mtype.__module__}.{mtype.__qualname__}"
    return (path or None), mtype


def _function_of(fx_node: torch.fx.Node, key: str) -> str | None:
    """The custom autograd Function the node computes (fx: its call; export: an op of its forward)."""
    fn = getattr(fx_node.target, "ddgraph_function", None)
    if fn is not None:
        return fn.__name__
    return (fx_node.meta.get("custom") or {}).get(key)


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
    ``small_shape``: their shape under one-token inputs (see :func:`ddgraph.frontend.tracing.one_token_inputs`).
    """
    from ddgraph.frontend.tracing import FUNCTION, SMALL

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
                      param=None, is_parameter=False, stack=n.meta.get("stack_trace"),
                      function=_function_of(n, FUNCTION))
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
