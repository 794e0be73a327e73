"""Structural patterns: inputs, the output, parameters, constants, and the fallback for unknown ops."""
from __future__ import annotations

from ddgraph.core.graph import DEP, OPERANDS
from ddgraph.frontend.patterns.base import Match, pattern


@pattern("input", "output", "param", "const", family="structure", priority=100)
def sources(g, n) -> Match | None:
    """Placeholders, the output, and nodes computed from parameters or constants alone."""
    d = g.nodes[n]
    fx = d["fx"]
    if fx.op == "placeholder":
        return Match("input", [])
    if fx.op == "output":
        ops = d[OPERANDS]
        return Match("output", [("x", ops[0])] if ops else [])
    if d[DEP] == "param":
        return Match("param", [])
    if d[DEP] == "const":
        return Match("const", [])
    return None


@pattern("unknown", family="structure")
def custom_function(g, n) -> Match | None:
    """A custom ``torch.autograd.Function`` (fx: its one call; export: every op of its inlined forward):
    its backward is its own, so nothing about it is known and it is ``unknown``, named by its class,
    unless a plugin's pattern (tried first) claims it."""
    d = g.nodes[n]
    if not d.get("function"):
        return None
    return Match("unknown", [("xs", o) for o in d[OPERANDS] if g.nodes[o][DEP] == "input"],
                 attrs=dict(unknown_op=f"autograd.Function {d['function']}"))


@pattern("unknown", family="structure", priority=-100)
def unknown(g, n) -> Match:
    """Anything no other pattern recognised: labelled ``unknown`` and named in the report."""
    d = g.nodes[n]
    return Match("unknown", [("xs", o) for o in d[OPERANDS] if g.nodes[o][DEP] == "input"],
                 attrs=dict(unknown_op=d["target"]))
