"""Patterns as data: a :class:`Pattern` recognises one family of nodes, a :class:`PatternSet` is
the patterns (and the primitives they define) in force for one run.

A pattern is a plain function ``fn(g, name) -> Match | None`` over the networkx graph, wrapped with
what it may produce and where it was defined, so a report can say which pattern fired and a
pattern that produces an undeclared primitive fails when the set is loaded, not silently. Sets
compose with ``+``: the left operand's patterns are tried first (a plugin's before the built-ins).
"""
from __future__ import annotations

import inspect
from typing import Callable, Iterable

import attrs
import networkx as nx
import torch

from ddgraph.core.graph import DEP, OPERANDS
from ddgraph.core.primitives import Primitive, Primitives
from ddgraph.errors import PatternError


@attrs.define
class Match:
    """What a pattern found: the primitive, its operand roles, fused members and extra attributes."""

    primitive: str
    roles: list[tuple[str, str]]
    members: list[str] = attrs.Factory(list)
    attrs: dict = attrs.Factory(dict)


@attrs.frozen
class Pattern:
    """One pattern: its function, the primitives it may produce, its family and where it lives."""

    fn: Callable[[nx.DiGraph, str], "Match | None"]
    produces: tuple[str, ...]
    family: str
    source: str
    priority: int = 0  # higher is tried first; equal priorities keep the set's order

    def __call__(self, g: nx.DiGraph, name: str) -> Match | None:
        m = self.fn(g, name)
        if m is not None and m.primitive not in self.produces:
            raise PatternError(f"pattern {self.source} produced {m.primitive!r} at node {name!r}, but "
                               f"declares only {', '.join(self.produces)}")
        return m


def pattern(*produces: str, family: str, priority: int = 0) -> Callable[[Callable], Pattern]:
    """Decorator: make a function a :class:`Pattern` that may produce the primitives ``produces``.

    ``priority`` orders patterns across sets: the structural patterns (inputs, parameters) use a
    high one and the ``unknown`` fallback a low one, so a plugin's patterns (priority 0) are tried
    before the built-ins of the same priority but never before those two."""
    def wrap(fn: Callable) -> Pattern:
        where = f"{fn.__module__}.{fn.__qualname__}"
        try:
            where += f" ({inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]})"
        except (OSError, TypeError):
            pass
        return Pattern(fn, tuple(produces), family, where, priority)
    return wrap


@attrs.frozen
class PatternSet:
    """Patterns tried in order, the primitives they define, and passes run after dead coordinates
    are placed (``pass(graph)``, e.g. reading fused q/k/v slices off a labelled graph)."""

    patterns: tuple[Pattern, ...] = ()
    primitives: Primitives = attrs.field(factory=Primitives)
    passes: tuple[Callable, ...] = ()

    @classmethod
    def of(cls, patterns: Iterable[Pattern] = (), primitives: Iterable[Primitive] = (),
           passes: Iterable[Callable] = ()) -> "PatternSet":
        pats = tuple(patterns)
        for p in pats:
            if not isinstance(p, Pattern):
                raise PatternError(f"{p!r} is not a Pattern (decorate the function with @pattern(...))")
        return cls(pats, Primitives.of(primitives), tuple(passes))

    def __add__(self, other: "PatternSet") -> "PatternSet":
        return PatternSet(self.patterns + other.patterns, self.primitives + other.primitives,
                          self.passes + other.passes)

    def ordered(self) -> list[Pattern]:
        """The patterns in the order they are tried."""
        return sorted(self.patterns, key=lambda p: -p.priority)

    def check(self, primitives: Primitives) -> "PatternSet":
        """Refuse a pattern that declares a primitive ``primitives`` does not define."""
        for p in self.patterns:
            missing = [name for name in p.produces if name not in primitives]
            if missing:
                raise PatternError(f"pattern {p.source} declares {missing[0]!r}, which is not a primitive "
                                   f"of this run; known: {', '.join(sorted(x.name for x in primitives))}")
        return self

    def families(self) -> dict[str, list[str]]:
        """Pattern sources by family, for listings."""
        out: dict[str, list[str]] = {}
        for p in self.patterns:
            out.setdefault(p.family, []).append(p.source)
        return out


# ---------------------------------------------------------------------------------------------
# Helpers the pattern families share


def const_arg(fx_node, name: str, pos: int, default=None):
    """Argument ``name`` of an fx node, by keyword or at position ``pos``."""
    if name in fx_node.kwargs:
        return fx_node.kwargs[name]
    return fx_node.args[pos] if len(fx_node.args) > pos else default


def single_consumer(g, n) -> str | None:
    succ = list(g.successors(n))
    return succ[0] if len(succ) == 1 else None


def strip_casts(g, n) -> str:
    while g.nodes[n]["op"] == "to" and g.nodes[n][OPERANDS]:
        n = g.nodes[n][OPERANDS][0]
    return n


def param_name(g: nx.DiGraph, operand: str, node: str) -> str:
    """The parameter's name as the model's own module at ``node`` calls it (tied weights have several)."""
    root = operand
    while g.nodes[root]["fx"].op != "get_attr" and g.nodes[root][OPERANDS]:
        root = g.nodes[root][OPERANDS][0]
    aliases = g.nodes[root].get("aliases") or []
    module = g.nodes[node].get("module")
    if module:
        for a in aliases:
            if a.rsplit(".", 1)[0] == module:
                return a
    return g.nodes[operand]["param"]


def display_name(g: nx.DiGraph, operand: str, node: str) -> str:
    """The name a report shows: the parameter as the module at ``node`` calls it. A module that
    uses a parameter owned by another module (a tied unembedding, when the traced graph kept only
    the first name) is shown under its own name, ``lm_head.weight``."""
    param = param_name(g, operand, node)
    module = g.nodes[node].get("module")
    owner, _, leaf = param.rpartition(".")
    if not module or not owner:
        return param
    if not (owner == module or owner.startswith(f"{module}.") or module.startswith(f"{owner}.")):
        return f"{module}.{leaf}"
    return param


def positions(g: nx.DiGraph, *names: str) -> dict[str, int]:
    """Every node's place in the graph's (topological) order, kept on the graph until a node it lacks
    is asked for (nodes fused away keep theirs: the order of the others does not change)."""
    pos = g.graph.get("position")
    if pos is None or any(n not in pos for n in names):
        pos = g.graph["position"] = {n: i for i, n in enumerate(g.graph["order"])}
    return pos


def reaches(g: nx.DiGraph, a: str, b: str) -> bool:
    """Whether a path leads from ``a`` to ``b``. A path only runs forward in the graph's order, so the
    search never leaves the nodes placed between the two (one block of a deep stack, not the graph)."""
    pos = positions(g, a, b)
    if a == b:
        return True
    end = pos[b]
    todo, seen = [a], {a}
    while todo:
        for c in g.successors(todo.pop()):
            if c == b:
                return True
            if c not in seen and pos.get(c, end) < end:
                seen.add(c)
                todo.append(c)
    return False


def param_of(g, operand) -> str | None:
    """The parameter an operand (a node or fx node) reads, if it depends on parameters only."""
    if isinstance(operand, torch.fx.Node):
        operand = operand.name
    if operand is None or operand not in g:
        return None
    return g.nodes[operand]["param"] if g.nodes[operand][DEP] == "param" else None

