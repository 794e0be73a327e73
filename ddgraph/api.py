"""The public entry points: trace, label, predict, probe, check. Only this module chains stages."""
from __future__ import annotations

import contextlib
import gc
import time
from typing import Sequence

from torch import nn

from ddgraph.compare.checks import Diff, diff, expectations
from ddgraph.core.approach import Approach
from ddgraph.core.engine import run
from ddgraph.core.graph import Graph
from ddgraph.core.rules import RuleSet
from ddgraph.errors import TraceError
from ddgraph.frontend import labelling as label_mod
from ddgraph.frontend.build import build
from ddgraph.frontend.inputs import infer_example_inputs, to_meta_if_needed
from ddgraph.frontend.plugins import extensions
from ddgraph.frontend.repeats import trace_stacks
from ddgraph.frontend.tracing import NOTE, SMALL, one_token_inputs, propagate_shapes, trace_module, uncompiled
from ddgraph.prediction import assemble, ln_kernel
from ddgraph.probing import distributed, measure
from ddgraph.probing.results import Measurement

_held = 0  # nesting depth of _graph_held


@contextlib.contextmanager
def _graph_held():
    """While a stage walks a large graph, the garbage collector leaves the objects that were there before
    (the graph, the traced module, its fake tensors) out of its scans: they outlive the stage, and
    scanning them again at every collection cost a third of prediction on LLaMA-2-70B. Undone after."""
    global _held
    if _held == 0:
        gc.freeze()
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if _held == 0:
            gc.unfreeze()


def trace(model: nn.Module, example_inputs=None, *, tracer: str = "auto", reuse_blocks: bool = True) -> Graph:
    """Trace ``model`` into an (unlabelled) :class:`~ddgraph.core.graph.Graph`.

    Parameters
    ----------
    model : any ``nn.Module``; weights may live on the meta device.
    example_inputs : a tensor, a tuple of positional inputs, or a dict of keyword inputs. Guessed
        from the first weight module when omitted.
    tracer : 'auto' (fx, then torch.export), 'fx' or 'export'.
    reuse_blocks : trace a stack of identical blocks (a transformer's layers) as its first few and copy
        the last of them for the rest (:mod:`ddgraph.frontend.repeats`); the graph is the same.

    Raises
    ------
    TraceError
        When no tracer can handle the model; the message names what failed and what to do.
    """
    if example_inputs is None:
        example_inputs = infer_example_inputs(model)
    example_inputs = to_meta_if_needed(model, example_inputs)
    t0 = time.perf_counter()
    small = []

    def shapes(gm, _used):
        propagate_shapes(gm, example_inputs)
        try:  # where the graph sizes its views from the input (fx; export with free axes), a one-token
            propagate_shapes(gm, one_token_inputs(example_inputs), key=SMALL)  # copy is cheap to label
            small.append(True)
        except TraceError:
            pass

    reused = trace_stacks(model, example_inputs, tracer, shapes) if reuse_blocks else None
    if reused is None:
        gm, used = trace_module(model, example_inputs, tracer=tracer)
        small.clear()
        shapes(gm, used)
        reused = gm, used, None
    gm, used, note = reused
    g = build(gm, model_name=type(uncompiled(model)).__name__, tracer=used, example_inputs=example_inputs,
              small=bool(small))
    g.nx.graph["trace_seconds"] = time.perf_counter() - t0
    g.nx.graph["notes"] = [n for n in (gm.meta.get(NOTE), note) if n]
    return g


def label(graph: Graph, *, n_dead: int = 1, plugins: Sequence = ()) -> Graph:
    """Label ``graph`` in place (primitives, dead coordinates) with the built-in patterns and those
    of ``plugins`` (plugin files or :class:`~ddgraph.frontend.plugins.Plugin` objects)."""
    with _graph_held():
        return label_mod.label(graph, n_dead=n_dead, extensions=extensions(plugins))


def _prepared(model_or_graph, example_inputs, approach: Approach, rules: RuleSet | None, tracer: str,
              plugins: Sequence) -> tuple[Graph, RuleSet]:
    """A graph labelled for ``approach`` with the run's vocabulary, and the rules in force."""
    ext = extensions(plugins)
    rules = rules or ext.load_rules()
    if isinstance(model_or_graph, Graph):
        graph = model_or_graph
    else:
        graph = trace(model_or_graph, example_inputs, tracer=tracer)
    if not graph.labelled or graph.n_dead != approach.n_dead or plugins:
        t0 = time.perf_counter()
        with _graph_held():
            label_mod.label(graph, n_dead=approach.n_dead, extensions=ext)
        graph.nx.graph["label_seconds"] = time.perf_counter() - t0
    return graph, rules


def predict(model_or_graph, example_inputs=None, *, approach: Approach | None = None,
            rules: RuleSet | None = None, tracer: str = "auto", plugins: Sequence = (), **approach_kwargs):
    """Predict the rate ladder of a model (or of an already labelled graph).

    Keyword arguments not listed here build the :class:`~ddgraph.core.approach.Approach`
    (``loss``, ``regime``, ``fisher``, ``n_dead`` and approach exponents such as ``alpha``, ``beta``).
    ``plugins`` are plugin files (or loaded plugins) whose primitives, patterns and rules join the
    run; ``rules`` replaces the rule set the plugins would give.

    Returns
    -------
    ddgraph.prediction.Prediction
    """
    approach = approach or Approach(**approach_kwargs)
    graph, rules = _prepared(model_or_graph, example_inputs, approach, rules, tracer, plugins)
    t0 = time.perf_counter()
    with _graph_held():
        run(graph, rules, approach)
        pred = assemble(graph, rules, approach)
    graph.nx.graph["predict_seconds"] = time.perf_counter() - t0
    return pred


def probe(model_or_graph, example_inputs=None, *, approach: Approach | None = None, rules: RuleSet | None = None,
          tracer: str = "auto", plugins: Sequence = (), grid=None, n_samples: int = 20000, sampler=None,
          seed: int = 0, chunk: int = 8192, noise: float = 1.0, progress: bool = True, ln_directions=None,
          cache_mb: float = 256, device=None, factor_budget: float | None = None, **approach_kwargs) -> Measurement:
    """Measure the rates on the model itself; the options are those of
    :func:`ddgraph.probing.measure.probe`, approach fields may be given as keyword arguments.
    Without ``grid`` the sweep is adaptive, steered by the model's predicted ladder. Inside an
    initialised ``torch.distributed`` process group the sample is shared over the ranks."""
    approach = approach or Approach(**approach_kwargs)
    grid = measure.check_grid(grid)  # before the trace: a bad option costs no time
    measure.check_samples(n_samples, chunk)
    distributed.check_budget(factor_budget)
    distributed.check_device(device)
    graph, rules = _prepared(model_or_graph, example_inputs, approach, rules, tracer, plugins)
    expected = expectations(predict(graph, approach=approach, rules=rules)) if grid is None else None
    return measure.probe(graph, approach=approach, rules=rules, grid=grid, n_samples=n_samples,
                         sampler=sampler, seed=seed, chunk=chunk, noise=noise, progress=progress,
                         ln_directions=ln_directions, cache_mb=cache_mb, expected=expected, device=device,
                         factor_budget=factor_budget)


def kernel_directions(pred) -> dict:
    """Normaliser kernel directions to check: LayerNorm's, and for a normaliser without a kernel
    (RMSNorm) the 1/gamma direction it lacks."""
    out = {k["node"]: k["direction"] for k in pred.ln_kernels if k["direction"] is not None}
    for n in pred.graph.nodes_exposing("no_kernel"):
        k = ln_kernel(pred.graph, n)
        if k["direction"] is not None:
            out[n] = k["direction"]
    return out


def check(model, example_inputs=None, *, approach: Approach | None = None, rules: RuleSet | None = None,
          tracer: str = "auto", grid=None, n_samples: int = 20000, progress: bool = True,
          sampler=None, seed: int = 0, plugins: Sequence = (), chunk: int = 8192, device=None,
          factor_budget: float | None = None, **approach_kwargs) -> Diff:
    """Predict, probe and diff in one go; returns a :class:`ddgraph.compare.checks.Diff`. Without ``grid``
    the probe sweeps adaptively and each observable is fitted on its own window. ``chunk``, ``device``
    and ``factor_budget`` are those of :func:`ddgraph.probing.measure.probe` (a process group shares the work)."""
    approach = approach or Approach(**approach_kwargs)
    grid = measure.check_grid(grid)  # before the trace: a bad option costs no time
    measure.check_samples(n_samples, chunk)
    distributed.check_budget(factor_budget)
    distributed.check_device(device)
    graph, rules = _prepared(model, example_inputs, approach, rules, tracer, plugins)
    pred = predict(graph, approach=approach, rules=rules)
    meas = measure.probe(pred.graph, approach=approach, grid=grid, n_samples=n_samples, progress=progress,
                         sampler=sampler, seed=seed, ln_directions=kernel_directions(pred), rules=rules,
                         expected=expectations(pred), chunk=chunk, device=device, factor_budget=factor_budget)
    return diff(pred, meas)
