"""The labelled graph for graphviz: nodes coloured by primitive, weights annotated with rates."""
from __future__ import annotations

from .graph import Graph
from .prediction import Prediction
from .report import fmt_rate

COLOURS = {
    "weight": "#8ecae6", "skip_add": "#ffb703", "add": "#ffd166", "layernorm": "#b5e48c",
    "rmsnorm": "#99d98c", "attention": "#f4a261", "contraction": "#f4a261", "token_mix": "#f4a261",
    "softmax_tokens": "#e9c46a", "softmax_channels": "#e9c46a", "gate": "#cdb4db",
    "product": "#cdb4db", "act_relu": "#d8f3dc", "act_smooth": "#d8f3dc", "act_offset": "#d8f3dc",
    "shape": "#eeeeee", "concat": "#eeeeee", "input": "#ffffff", "output": "#ffffff",
    "unknown": "#ef476f",
}


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
        if d["primitive"] in ("param", "const"):
            continue
        shown.add(n)
        label = f"{n}\\n{d['primitive']}"
        if d.get("weight"):
            label += f"\\n{d['weight']['param']}"
        if n in rates:
            r = rates[n]
            label += f"\\nA={fmt_rate(r.a_rate)} G={fmt_rate(r.g_rate)}"
        if d["primitive"] == "unknown":
            label += f"\\n{d.get('unknown_op', '')}"
        colour = COLOURS.get(d["primitive"], "#ffffff")
        lines.append(f"  {_q(n)} [label={_q(label)}, fillcolor={_q(colour)}];")
    for u, v in graph.nx.edges():
        if u in shown and v in shown:
            lines.append(f"  {_q(u)} -> {_q(v)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
