"""The ddgraph Graph: a traced model as a networkx DiGraph whose nodes carry labels and results.

Nodes are keyed by fx node name; every stage keeps what it learns about a node in the node's
attribute dict under one of the names below (the constants are those names), and returns plain
dicts keyed by node.

=================  =============================================================================
attribute          what it holds (set by)
=================  =============================================================================
``fx``             the torch.fx node (build)
``op``             its canonical op name, :func:`ddgraph.frontend.ops.op_name` (build)
``target``         a readable name of what it calls (build)
``module``         the module path it came from, and ``module_type`` its class (build)
``shape``          its shape (``tuple_shapes`` for tuple values; ``small_shape`` one-token) (build)
``dtype``          its dtype (build)
``param``          the qualified parameter or buffer name a ``get_attr`` node (or a view of one) reads
``operands``       its tensor operands in argument order (labelling)
``dep``            what it depends on: ``input``, ``param``, ``const`` or ``mixed`` (labelling)
``primitive``      the primitive's name (labelling)
``roles``          ``[(role, operand node), ...]`` (labelling)
``approach``       ``{exponent name: parameter name}`` for the exponents its primitive declares
``weight``         a weight edge's record: kind, parameter, axes, bias, dead indices (patterns)
``mask``           its dead-class mask, one int8 per entry (0 = bulk, j = direction j) (channels)
``classes``        the classes present in it (channels)
``classmap``       element-wise nodes: output class -> operand class, per role (channels)
``bulk_orders``    ``{exponent name: order}`` of a parameter's bulk part where it is not generic: inf
                   when the model's own values are exactly zero (a zero-initialised head) (channels)
``value_signs``    ``{value order: {class: sign}}``: ``+``/``-`` where every entry of the class has that
                   sign, ``?`` otherwise (channels; THEORY §3.11)
``clips``          True on an activation that sets its negative half to zero (ReLU, ReLU6) (patterns)
``valuation``      orders ``v``, ``d``, ``w`` per class, signs ``s`` and their provenance (engine)
=================  =============================================================================

Patterns may add attributes of their own (``norm_weight``, ``bias_param``, ``scale_param``...),
which a primitive's declarations name (:class:`ddgraph.core.primitives.ParamSpec`).
"""
from __future__ import annotations

import attrs
import networkx as nx

from ddgraph.core.primitives import BUILTIN, Primitives

#: Names of the node attributes the stages share (the table above).
PRIMITIVE, ROLES, OPERANDS, DEP, MASK, CLASSES, WEIGHT, APPROACH, BULK_ORDERS, VALUE_ORDERS = (
    "primitive", "roles", "operands", "dep", "mask", "classes", "weight", "approach", "bulk_orders", "value_orders")
VALUE_SIGNS, CLIPS = "value_signs", "clips"


@attrs.define
class Graph:
    """A traced and (after :func:`ddgraph.label`) labelled model."""

    nx: nx.DiGraph
    gm: object  # the torch.fx.GraphModule the graph was built from
    model_name: str
    tracer: str
    example_inputs: object = None
    n_dead: int = 1
    labelled: bool = False
    primitives: Primitives = BUILTIN  # the vocabulary the graph was labelled with

    def nodes_exposing(self, observable: str) -> list[str]:
        """Names of the nodes whose primitive exposes ``observable`` (see ddgraph.core.primitives), in order."""
        names = self.primitives.with_observable(observable)
        return [n for n in self.order() if self.nx.nodes[n].get(PRIMITIVE) in names]

    def nodes_with(self, primitive: str) -> list[str]:
        """Names of the nodes labelled ``primitive``, in graph order."""
        return [n for n, d in self.nx.nodes(data=True) if d.get(PRIMITIVE) == primitive]

    def order(self) -> list[str]:
        """Node names in execution (topological) order."""
        return list(self.nx.graph["order"])

    def __getitem__(self, name: str) -> dict:
        return self.nx.nodes[name]

    def summary(self) -> dict[str, int]:
        """How many nodes carry each primitive."""
        counts: dict[str, int] = {}
        for _, d in self.nx.nodes(data=True):
            counts[d.get(PRIMITIVE, "?")] = counts.get(d.get(PRIMITIVE, "?"), 0) + 1
        return dict(sorted(counts.items()))
