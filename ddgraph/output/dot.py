"""The labelled graph for graphviz: nodes coloured by primitive, weights annotated with rates."""
from __future__ import annotations

from ddgraph.core.graph import PRIMITIVE, WEIGHT, Graph
from ddgraph.output.tables import fmt_rate
from ddgraph.prediction import Prediction


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph, pred: Prediction | None = None) -> str:
    """Graphviz source of the labelled graph (parameters and constants left out)."""
    rates = {n.node: n for n in pred.nodes} if pred else {}
    lines = [f"digraph {_q(graph.model_name)} {{", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    shown = set()
    for n in graph.order():
        d = graph[n]
        prim = graph.primitives[d[PRIMITIVE]]
        if prim.inert:
            continue
        shown.add(n)
        label = f"{n}\\n{d['primitive']}"
        if d.get(WEIGHT):
            label += f"\\n{d['weight']['param']}"
        if n in rates:
            r = rates[n]
            label += f"\\nA={fmt_rate(r.a_rate)} G={fmt_rate(r.g_rate)}"
        if d.get("unknown_op"):
            label += f"\\n{d['unknown_op']}"
        colour = prim.colour
        lines.append(f"  {_q(n)} [label={_q(label)}, fillcolor={_q(colour)}];")
    for u, v in graph.nx.edges():
        if u in shown and v in shown:
            lines.append(f"  {_q(u)} -> {_q(v)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
