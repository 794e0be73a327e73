"""Tables for people: the predicted ladder (and, with a diff, the verdicts) as rich tables."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ddgraph.prediction import BRACKET, IN_REACH, NO_RULE, Prediction

STATUS_STYLE = {IN_REACH: "green", BRACKET: "yellow", NO_RULE: "red"}


def fmt_rate(x) -> str:
    """A rate as people read it: 2, 0.5, inf, [0, 2] for a bracket, - for none."""
    if x is None:
        return "-"
    if isinstance(x, tuple):
        return f"[{fmt_rate(x[0])}, {fmt_rate(x[1])}]"
    if math.isinf(x):
        return "inf"
    return f"{x:g}"


def _sum(a, g):
    if a is None or g is None or isinstance(a, tuple) or isinstance(g, tuple):
        return None
    return a + g


def main_lemmas(pred: Prediction) -> list[str]:
    """Each row's main citation: of the theorems its rates rest on (else propositions, corollaries,
    lemmas), the one fewest rows share, so rows that differ show what differs; ``--verbose`` lists all."""
    count: dict[str, int] = {}
    for n in pred.nodes:
        for lem in n.lemmas:
            count[lem] = count.get(lem, 0) + 1
    rank = {"Thm": 0, "Prop": 1, "Cor": 2, "Lemma": 3}  # a theorem before what serves it
    return [min(n.lemmas, key=lambda lem: (rank.get(lem.split()[0], 4), count[lem], n.lemmas.index(lem)))
            if n.lemmas else "-" for n in pred.nodes]


def ladder_table(pred: Prediction, verbose: bool = False) -> Table:
    """The ladder, one row per weight; ``verbose`` adds the module, every lemma and the rule files."""
    ap = pred.approach
    regime = ap.regime if ap.loss == "mse" else f"{ap.fisher} Fisher"
    t = Table(title=f"{pred.model}: predicted rate ladder ({ap.loss}, {regime}, traced with {pred.tracer})",
              box=box.SIMPLE_HEAD, title_justify="left")
    columns = [("#", "right"), ("parameter", "left"), ("kind", "left"), ("A", "right"), ("G", "right"),
               ("A+G", "right"), ("status", "left")]
    columns += ([("module", "left"), ("lemmas", "left"), ("rules on the critical path", "left")] if verbose
                else [("main lemma", "left")])
    for col, just in columns:
        # the parameter name is the row's identity: never wrapped (a c_attn.weight[q] suffix must show)
        t.add_column(col, justify=just, overflow="fold", no_wrap=col == "parameter",
                     min_width=max((len(n.param) for n in pred.nodes), default=9) if col == "parameter" else None)
    multi = pred.approach.n_dead > 1
    main = main_lemmas(pred)
    for i, n in enumerate(pred.nodes):
        if multi:
            a = " / ".join(fmt_rate(_pt(p)) for p in n.a_rates)
            g = " / ".join(fmt_rate(_pt(p)) for p in n.g_rates)
            s = " / ".join(fmt_rate(_sum(_pt(x), _pt(y))) for x, y in zip(n.a_rates, n.g_rates))
        else:
            a, g, s = fmt_rate(n.a_rate), fmt_rate(n.g_rate), fmt_rate(_sum(n.a_rate, n.g_rate))
        row = [str(i + 1), escape(n.param), n.kind, a, g, s, f"[{STATUS_STYLE[n.status]}]{n.status}[/]"]
        if verbose:
            lemmas = ", ".join(n.lemmas) if n.status != NO_RULE else n.reason
            row += [n.module or "-", lemmas, " ".join(Path(r).stem for r in n.rules)]
        else:
            row.append(escape(n.reason) if n.status == NO_RULE else main[i])
        t.add_row(*row)
    return t


def _pt(p):
    lo, hi = p
    return None if lo is None or hi is None else (lo if lo == hi else (lo, hi))


def footer(pred: Prediction) -> str:
    c = pred.counts()
    k = pred.kl_order
    lines = [f"KL order k = {fmt_rate(k)}   Fisher rate 2k-2 = {fmt_rate(pred.fisher_rate)}   "
             f"RLCT contribution 1/(2k) = {fmt_rate(_round(pred.rlct))}",
             f"weights: {len(pred.nodes)}  in-reach {c[IN_REACH]}  bracket {c[BRACKET]}  no-rule {c[NO_RULE]}"]
    if pred.stream_sites:
        rates = ", ".join(fmt_rate(s["stream_rate"]) for s in pred.stream_sites)
        lines.append(f"residual-stream sites (Cor 58, sigma_min^2 rate): {rates}")
    for ln in pred.ln_kernels:
        lines.append(f"LayerNorm {ln['module']}: exact kernel direction {ln['source']} (Prop 63)")
    for n in pred.graph.nodes_exposing("no_kernel"):
        lines.append(f"RMSNorm {pred.graph[n].get('module') or n}: no kernel direction (no mean subtraction; Prop 63)")
    changed = [n.param for n in pred.nodes if n.invariant is not None]
    for c in pred.crossovers:
        star = "unknown (eps is not a number)" if c["t_star"] is None else f"~{c['t_star']:.2g}"
        where = "" if c.get("event") is None else f" on the rows where {c['event']} cuts every bulk channel"
        lines.append(f"eps crossover {c['primitive']} {c['module'] or c['node']}{where}: t* {star} (input scale of "
                     f"order {fmt_rate(c['order'])}); {len(changed)} rows change regime: linear below t*, "
                     f"scale-invariant above (THEORY §3.8, §3.11)")
    if pred.kl_order_above is not None:
        lines.append(f"KL order above every eps crossover: k = {fmt_rate(pred.kl_order_above)}")
    for o in pred.overridden:
        lines.append(f"[yellow]rule override[/]: {o}")
    for note in pred.graph.nx.graph.get("notes", ()):
        lines.append(f"[yellow]note[/]: {note}")
    by_op: dict[str, list[dict]] = {}
    for u in pred.unknown_ops:
        by_op.setdefault(u["op"], []).append(u)
    for op, us in by_op.items():
        where = f"node {us[0]['node']} ({us[0]['module'] or 'top level'})"
        more = f" and {len(us) - 1} more" if len(us) > 1 else ""
        lines.append(f"[red]unknown op[/] {op} at {where}{more}: what it reaches is outside the theorem's reach")
    return "\n".join(lines)


def _round(x):
    if isinstance(x, float) and not math.isinf(x):
        return round(x, 4)
    return x


def print_prediction(pred: Prediction, console: Console | None = None, verbose: bool = False) -> None:
    console = console or make_console()
    console.print(ladder_table(pred, verbose))
    console.print(footer(pred))


def timings_line(timings: dict) -> str:
    """``trace 13.0 s   label 1.3 s   predict 1.7 s`` (a stage not run in this call: ``-``)."""
    return "   ".join(f"{stage} {'-' if s is None else f'{s:.2f} s'}" for stage, s in timings.items())


def make_console(stderr: bool = False) -> Console:
    """A console as wide as the terminal, or 120 columns when writing to a pipe or file."""
    return Console(width=shutil.get_terminal_size((120, 40)).columns, stderr=stderr)
