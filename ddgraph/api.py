"""The public entry points: trace, label, predict."""
from __future__ import annotations

import time

from torch import nn

from . import graph as graph_mod
from . import label as label_mod
from .config import Approach
from .engine import run
from .inputs import infer_example_inputs, to_meta_if_needed
from .rules import RuleSet
from .errors import TraceError
from .trace import SMALL, one_token_inputs, propagate_shapes, trace_module


def trace(model: nn.Module, example_inputs=None, *, tracer: str = "auto") -> graph_mod.Graph:
    """Trace ``model`` into an (unlabelled) :class:`~ddgraph.graph.Graph`.

    Parameters
    ----------
    model : any ``nn.Module``; weights may live on the meta device.
    example_inputs : a tensor, a tuple of positional inputs, or a dict of keyword inputs. Guessed
        from the first weight module when omitted.
    tracer : 'auto' (fx, then torch.export), 'fx' or 'export'.

    Raises
    ------
    TraceError
        When no tracer can handle the model; the message names what failed and what to do.
    """
    if example_inputs is None:
        example_inputs = infer_example_inputs(model)
    example_inputs = to_meta_if_needed(model, example_inputs)
    t0 = time.perf_counter()
    gm, used = trace_module(model, example_inputs, tracer=tracer)
    propagate_shapes(gm, example_inputs)
    small = False
    if used == "fx":  # fx graphs size their views from the input: a one-token copy is cheap to label
        try:
            propagate_shapes(gm, one_token_inputs(example_inputs), key=SMALL)
            small = True
        except TraceError:
            pass
    g = graph_mod.build(gm, model_name=type(model).__name__, tracer=used, example_inputs=example_inputs,
                        small=small)
    g.nx.graph["trace_seconds"] = time.perf_counter() - t0
    return g


def label(graph: graph_mod.Graph, *, n_dead: int = 1) -> graph_mod.Graph:
    """Label ``graph`` in place (primitives, dead coordinates); see :func:`ddgraph.label.label`."""
    return label_mod.label(graph, n_dead=n_dead)


def predict(model_or_graph, example_inputs=None, *, approach: Approach | None = None,
            rules: RuleSet | None = None, tracer: str = "auto", **approach_kwargs):
    """Predict the rate ladder of a model (or of an already labelled graph).

    Keyword arguments not listed here build the :class:`~ddgraph.config.Approach`
    (``loss``, ``regime``, ``fisher``, ``alpha``, ``beta``, ``n_dead``).

    Returns
    -------
    ddgraph.predict.Prediction
    """
    from .prediction import assemble

    approach = approach or Approach(**approach_kwargs)
    rules = rules or RuleSet.load()
    if isinstance(model_or_graph, graph_mod.Graph):
        graph = model_or_graph
    else:
        graph = trace(model_or_graph, example_inputs, tracer=tracer)
    if not graph.labelled or graph.n_dead != approach.n_dead:
        t0 = time.perf_counter()
        label(graph, n_dead=approach.n_dead)
        graph.nx.graph["label_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(graph, rules, approach)
    pred = assemble(graph, rules, approach)
    graph.nx.graph["predict_seconds"] = time.perf_counter() - t0
    return pred


def probe(model_or_graph, example_inputs=None, **kwargs):
    """Measure the rates on the model itself; see :func:`ddgraph.probing.measure.probe`."""
    from .probing.measure import probe as _probe

    return _probe(model_or_graph, example_inputs, **kwargs)


def kernel_directions(pred) -> dict:
    """LayerNorm kernel directions to check, and for RMSNorm the 1/gamma direction it lacks."""
    from .prediction import _ln_kernel

    out = {k["node"]: k["direction"] for k in pred.ln_kernels if k["direction"] is not None}
    for n in pred.graph.nodes_with("rmsnorm"):
        k = _ln_kernel(pred.graph, n)
        if k["direction"] is not None:
            out[n] = k["direction"]
    return out


def check(model, example_inputs=None, *, approach: Approach | None = None, rules: RuleSet | None = None,
          tracer: str = "auto", grid=None, n_samples: int = 20000, progress: bool = True,
          sampler=None, seed: int = 0, **approach_kwargs):
    """Predict, probe and diff in one go; returns a :class:`ddgraph.diff.Diff`."""
    from .diff import diff
    from .probing.measure import probe as _probe

    approach = approach or Approach(**approach_kwargs)
    pred = predict(model, example_inputs, approach=approach, rules=rules, tracer=tracer)
    meas = _probe(pred.graph, approach=approach, grid=grid, n_samples=n_samples, progress=progress,
                  sampler=sampler, seed=seed, ln_directions=kernel_directions(pred))
    return diff(pred, meas)
