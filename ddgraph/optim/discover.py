"""Gauge discovery: read DDCAdam's gauge specs off ddgraph's labelled graph.

Patterns, read off what each node's primitive declares (:mod:`ddgraph.core.primitives`):

* **CE head** — the model output (observable ``kl``) is a weight edge (Linear): its bias gets
  ``CEShiftBias``, its weight ``CEShiftRowShift`` (only when the loss is softmax cross-entropy).
* **LayerNorm scale** — a ``scale_invariant`` normaliser with an affine weight whose every consumer
  is a Linear weight edge: ``LNScaleGauge(gamma, consumers, beta)``.
* **ReLU rescale** — ``weight -> [bias add] -> rescalable activation -> weight`` with single consumers. Runs of
  such pairs whose inner layers are bias-free become one ``ChainedReLURescaleGauge``; otherwise
  disjoint pairs are taken from the input side as per-channel ``ReLURescaleGauge``.

Specs must act on disjoint tensors, so candidates are taken in that priority order and a later one
that touches a claimed tensor is trimmed (chains) or dropped, with the reason recorded.
"""
from __future__ import annotations

import attrs
from torch import nn

from ddgraph.core.graph import DEP, PRIMITIVE, ROLES, WEIGHT
from ddgraph.core.primitives import node_attr
from ddgraph.optim.gauges import CEShiftBias, CEShiftRowShift, ChainedReLURescaleGauge, LNScaleGauge, ReLURescaleGauge

_LAYERS = ("linear", "conv")


class GaugeDroppedWarning(UserWarning):
    """:meth:`DDCAdam.from_model` left out a gauge candidate that overlaps one taken earlier."""


@attrs.define
class Discovery:
    """What :func:`discover_gauges` found: the specs in use and the candidates it dropped, with why."""

    specs: list = attrs.Factory(list)
    dropped: list = attrs.Factory(list)  # (description, reason)

    def summary(self) -> list[str]:
        return [repr(s) for s in self.specs] + [f"dropped {d}: {why}" for d, why in self.dropped]


def discover_gauges(model: nn.Module, example_inputs, *, loss: str = "cross_entropy") -> Discovery:
    """Trace and label ``model`` and return the disjoint gauge specs its graph carries.

    Parameters
    ----------
    model : the module to inspect.
    example_inputs : inputs to trace it with (see :func:`ddgraph.trace`).
    loss : ``"cross_entropy"`` adds the CE-head shift gauges; anything else leaves them out.

    Returns
    -------
    Discovery
    """
    from ddgraph.api import label, trace

    g = label(trace(model, example_inputs)).nx
    params = dict(model.named_parameters())
    uses = _param_uses(g)
    found, claimed = Discovery(), {}  # claimed: parameter name -> the gauge that took it

    def take(spec, what):
        names = [n for n, p in params.items() if any(p is q for q in spec.params)]
        clash = sorted(set(names) & claimed.keys())
        if clash:
            found.dropped.append((what, f"overlaps an earlier gauge on {', '.join(clash)}: "
                                        f"{'; '.join(sorted({claimed[n] for n in clash}))}"))
            return
        claimed.update(dict.fromkeys(names, what))
        found.specs.append(spec)

    if loss == "cross_entropy":
        for spec, what in _ce_head(g, params):
            take(spec, what)
    for spec, what in _layernorms(g, params, uses):
        take(spec, what)
    for run in _relu_runs(g, uses):
        for spec, what in _relu_specs(run, params, claimed, found):
            take(spec, what)
    return found


def _param_uses(g) -> dict[str, int]:
    uses: dict[str, int] = {}
    for n, d in g.nodes(data=True):
        if d.get(DEP) == "param" and d.get("param"):
            uses[d["param"]] = uses.get(d["param"], 0) + g.out_degree(n)
    return uses


def _layer(g, n):
    """The ``weight`` attrs of node ``n`` if it is a Linear/conv layer, else None."""
    d = g.nodes[n]
    w = d.get(WEIGHT) if _exposes(g, n, "kfac") else None
    return w if w and w["kind"] in _LAYERS else None


def _exposes(g, n, observable: str) -> bool:
    return observable in g.graph["primitives"][g.nodes[n][PRIMITIVE]].observables


def _added_bias(g, n) -> str | None:
    """The parameter an element-wise node adds per channel (a bias), if its primitive declares one."""
    d = g.nodes[n]
    prim = g.graph["primitives"][d[PRIMITIVE]]
    if prim.mask != "elementwise":
        return None
    return next((node_attr(d, s.attr) for s in prim.canonical if s.layout == "vector" and s.dead == "approach"
                 and node_attr(d, s.attr)), None)


def _only_successor(g, n):
    succ = list(g.successors(n))
    return succ[0] if len(succ) == 1 else None


def _ce_head(g, params):
    out = [n for n in g if _exposes(g, n, "kl")]
    if len(out) != 1:
        return
    src = g.nodes[out[0]][ROLES][0][1] if g.nodes[out[0]][ROLES] else None
    w = _layer(g, src) if src else None
    if w is None or w["kind"] != "linear":
        return
    if w["bias"]:
        yield CEShiftBias(params[w["bias"]]), f"CE shift on {w['bias']}"
    yield CEShiftRowShift(params[w["param"]]), f"CE row shift on {w['param']}"


def _layernorms(g, params, uses):
    for n, d in g.nodes(data=True):
        if not _exposes(g, n, "scale_invariant") or not d.get("norm_weight"):
            continue
        layers = [_layer(g, s) for s in g.successors(n)]
        what = f"LayerNorm scale on {d['norm_weight']}"
        if layers and all(w and w["kind"] == "linear" and uses.get(w["param"]) == 1 for w in layers):
            beta = params[d["norm_bias"]] if d.get("norm_bias") else None
            yield LNScaleGauge(params[d["norm_weight"]], [params[w["param"]] for w in layers], beta), what


def _relu_next(g, n):
    """The layer after ``n`` through ``[bias_add] -> act_relu``, and the bias met on the way."""
    bias = _layer(g, n)["bias"]
    nxt = _only_successor(g, n)
    if nxt is not None and _added_bias(g, nxt):
        if bias:
            return None, None
        bias = _added_bias(g, nxt)
        nxt = _only_successor(g, nxt)
    if nxt is None or not _exposes(g, nxt, "rescalable"):
        return None, None
    after = _only_successor(g, nxt)
    return (after, bias) if after is not None and _layer(g, after) else (None, None)


def _relu_runs(g, uses):
    """Maximal sequences ``[(layer_param, bias_param), ...]`` joined by ReLUs, from the input side."""
    runs, seen = [], set()
    for n in g.graph["order"]:
        if n in seen or n not in g or _layer(g, n) is None:
            continue
        run, cur = [], n
        while cur is not None and cur not in seen and uses.get(_layer(g, cur)["param"]) == 1:
            seen.add(cur)
            nxt, bias = _relu_next(g, cur)
            run.append((_layer(g, cur)["param"], bias))
            cur = nxt
        if len(run) >= 2:
            runs.append(run)
    return runs


def _relu_specs(run, params, claimed, found):
    """Split ``run`` at layers claimed by earlier gauges, then specs for each stretch."""
    stretch = []
    for layer in run + [None]:
        if layer is not None and layer[0] not in claimed:
            stretch.append(layer)
            continue
        if layer is not None:
            found.dropped.append((f"ReLU rescale through {layer[0]}",
                                  f"layer claimed by an earlier gauge: {claimed[layer[0]]}"))
        yield from _stretch_specs(stretch, params)
        stretch = []


def _stretch_specs(run, params):
    """Chained spec over bias-free stretches of ``run``, else disjoint per-channel pairs."""
    i = 0
    while i < len(run) - 1:
        j = i + 1
        while j < len(run) - 1 and run[j][1] is None:
            j += 1
        layers = run[i:j + 1]
        if len(layers) >= 3:
            names = [w for w, _ in layers]
            b0 = params[layers[0][1]] if layers[0][1] else None
            yield (ChainedReLURescaleGauge([params[w] for w in names], b0),
                   f"chained ReLU rescale on {', '.join(names)}")
            i = j + 1
        else:
            (w_in, b_in), (w_out, _) = run[i], run[i + 1]
            yield (ReLURescaleGauge(params[w_in], params[w_out], params[b_in] if b_in else None),
                   f"ReLU rescale on {w_in}, {w_out}")
            i += 2
