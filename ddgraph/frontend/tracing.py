"""Tracing: an ``nn.Module`` becomes a functional fx graph with shapes, parameters and module paths.

``torch.fx.symbolic_trace`` is tried first (with every module traced through, so ``nn.Linear``
appears as ``F.linear`` on a ``get_attr`` parameter); ``torch.export.export(strict=False)`` takes
over where fx cannot trace (data-dependent control flow, ``nn.MultiheadAttention``, transformers).
Both give a GraphModule whose parameters are ``get_attr`` nodes named by their qualified names.

Nothing the user passed changes. Tracing runs the forward, whose Python code may update buffers in
place (a train-mode BatchNorm's ``num_batches_tracked``), flip flags or store constants on the root;
so both tracers run on a *twin* (:func:`_twin`): a deep copy that shares the parameters (no weight
memory, nothing copied for a meta model's weights) and owns its buffers, flags and attributes. A
forward that writes a shared parameter in place is stopped before the write (:class:`_ParameterGuard`)
and traced again on a full copy. Shape propagation runs on fake copies of the parameters and buffers.
A custom ``torch.autograd.Function`` stays one opaque call under fx (:func:`_opaque_functions`).
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import traceback
import warnings

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from ddgraph.errors import TraceError

logger = logging.getLogger(__name__)

TRACERS = ("auto", "fx", "export")
SMALL = "ddgraph_small_value"  # node.meta key of values propagated from one-token inputs


class _TraceThrough(torch.fx.Tracer):
    """An fx tracer that treats no module as a leaf: every module is traced into functional ops."""

    def is_leaf_module(self, m, qualname):  # noqa: D102 - fx hook
        return False


def _as_tuple(example_inputs) -> tuple:
    if example_inputs is None:
        return ()
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, dict):
        return ()
    return tuple(example_inputs)


def _as_kwargs(example_inputs) -> dict:
    return dict(example_inputs) if isinstance(example_inputs, dict) else {}


class _WritesParameter(Exception):
    """The forward writes one of the user's parameters in place (raised before the write)."""


def _storage_key(t: torch.Tensor):
    return None if t.device.type == "meta" else (t.device, t.untyped_storage().data_ptr())


class _ParameterGuard(TorchDispatchMode):
    """Raises :class:`_WritesParameter` before any op writes into the storage of a shared parameter
    (meta parameters hold no values and are not guarded)."""

    def __init__(self, params):
        super().__init__()
        self.keys = {k for k in (_storage_key(p) for p in params) if k is not None}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.keys and func._schema.is_mutable:
            for i, a in enumerate(func._schema.arguments):
                v = args[i] if i < len(args) else kwargs.get(a.name)
                if (a.alias_info is not None and a.alias_info.is_write and isinstance(v, torch.Tensor)
                        and _storage_key(v) in self.keys):
                    raise _WritesParameter(f"{func} writes a parameter in place")
        return func(*args, **kwargs)


def _twin(model: torch.nn.Module, share_parameters: bool = True) -> torch.nn.Module:
    """A deep copy of ``model`` to trace: its parameters shared (``share_parameters``), everything
    else (buffers, flags, attributes) its own, so the forward run by a tracer changes only the twin."""
    memo = {id(p): p for p in model.parameters()} if share_parameters else {}
    try:
        twin = copy.deepcopy(model, memo)
    except Exception as exc:
        raise TraceError(f"ddgraph traces a copy of {type(model).__name__} so that the model itself is not "
                         f"changed, and copy.deepcopy failed: {_short_failure(exc)}. Make the model "
                         "deep-copyable (or trace a submodule that is)") from None
    return _without_cache(twin)


def _without_cache(twin: torch.nn.Module) -> torch.nn.Module:
    """A model whose ``forward`` takes ``use_cache`` (transformers' language models, on by default)
    returns a cache object tracers cannot follow: its twin runs with ``use_cache=False`` and returns
    its logits (or first output). Re-classed in place, so parameter names do not change."""
    base = type(twin)
    if "use_cache" not in inspect.signature(base.forward).parameters:
        return twin

    def forward(self, *args, **kwargs):
        out = base.forward(self, *args, **{**kwargs, "use_cache": False})
        if hasattr(out, "keys"):
            return out["logits"] if "logits" in out.keys() else next(iter(out.values()))
        return out[0] if isinstance(out, (tuple, list)) else out

    forward.__signature__ = inspect.signature(base.forward)  # export binds inputs by the real names
    twin.__class__ = type(base.__name__, (base,), {"forward": forward, "__module__": base.__module__,
                                                   "__qualname__": base.__qualname__})
    twin.ddgraph_note = f"{base.__name__} was traced with use_cache=False, reading its logits (or first output)"
    logger.info(twin.ddgraph_note)
    return twin


def copy_quietly(obj):
    """``copy.deepcopy``, without the deprecation warnings torch's own pytree specs raise when an
    exported graph is copied (noise about torch, not about the model)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return copy.deepcopy(obj)


NOTE = "ddgraph_note"  # GraphModule.meta key: what tracing did to the model's call, said to the user


def _opaque_call(fn_cls):
    """A plain function calling ``fn_cls.apply``, named as the Function (the graph node's target)."""
    def call(*args, **kwargs):
        return fn_cls.apply(*args, **kwargs)

    call.__name__ = call.__qualname__ = fn_cls.__name__
    call.__module__ = fn_cls.__module__
    call.ddgraph_function = fn_cls
    return call


FUNCTION = "ddgraph_function"  # node.meta["custom"] key: the custom autograd Function a node computes


def _custom(cls) -> bool:
    """A user's ``torch.autograd.Function`` (those defined inside torch, activation checkpointing, are
    traced through: their backward is their forward's derivative)."""
    return (cls.__module__ or "").split(".")[0] != "torch"


@contextlib.contextmanager
def _opaque_functions(export: bool = False):
    """While a tracer runs, a call of a custom ``torch.autograd.Function`` stays recognisable.

    Under fx, a call on a traced value becomes one ``call_function`` node (its forward is not
    inlined, so its own backward stays in force when the graph runs). Under torch.export, which
    inlines the forward, every op of it carries ``meta["custom"][FUNCTION]`` (the class name), so the
    labeller can treat them as opaque."""
    import torch.fx.traceback as fx_traceback

    Function = torch.autograd.Function
    had_own = "apply" in Function.__dict__
    descriptor = inspect.getattr_static(Function, "apply")  # a classmethod, or a C one (torch >= 2.14)

    def original(cls, *args, **kwargs):
        return descriptor.__get__(None, cls)(*args, **kwargs)

    def apply(cls, *args, **kwargs):
        if not _custom(cls):
            return original(cls, *args, **kwargs)
        proxies: list = []
        torch.fx.node.map_aggregate((args, kwargs),
                                    lambda x: proxies.append(x) if isinstance(x, torch.fx.Proxy) else None)
        if proxies:
            return proxies[0].tracer.create_proxy("call_function", _opaque_call(cls), args, kwargs)
        with fx_traceback.annotate({FUNCTION: cls.__name__}):
            return original(cls, *args, **kwargs)

    torch.autograd.Function.apply = classmethod(apply)
    try:  # (fx records module paths only when node meta is not being preserved)
        with fx_traceback.preserve_node_meta() if export else contextlib.nullcontext():
            yield
    finally:
        if had_own:
            Function.apply = descriptor
        else:
            del Function.apply


def trace_fx(model: torch.nn.Module, example_inputs=None) -> torch.fx.GraphModule:
    """Symbolically trace ``model`` through every submodule (on a twin: the model is not changed).
    Arguments of ``forward`` that the example inputs leave at their defaults (``mask=None``) are
    traced as those constants."""
    concrete = _defaulted(model, example_inputs) or None
    twin = _twin(model)
    try:
        with _ParameterGuard(list(model.parameters())):
            with _opaque_functions():
                graph = _TraceThrough().trace(twin, concrete_args=concrete)
    except _WritesParameter as exc:
        logger.info("%s: the forward %s; tracing a full copy", type(model).__name__, exc)
        twin = _twin(model, share_parameters=False)
        with _opaque_functions():
            graph = _TraceThrough().trace(twin, concrete_args=concrete)
    gm = torch.fx.GraphModule(twin, graph, class_name=type(model).__name__)
    gm.meta[NOTE] = getattr(twin, NOTE, None)
    return gm


def _defaulted(model: torch.nn.Module, example_inputs) -> dict:
    """``forward``'s parameters the example inputs do not give, with their default values."""
    if example_inputs is None:
        return {}
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    given = set(_as_kwargs(example_inputs)) | {p.name for p in params[:len(_as_tuple(example_inputs))]}
    return {p.name: p.default for p in params if p.name not in given and p.default is not p.empty}


class _Quiet(logging.Filter):
    """Hold back torch's own log records (graph dumps of a failed export) and pass them to ddgraph's
    logger at DEBUG: the TraceError says what failed in one line per tracer."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("torch"):
            logger.debug("torch.export log (%s): %s", record.name, record.getMessage().strip().splitlines()[0]
                         if record.getMessage().strip() else "")
            return False
        return True


@contextlib.contextmanager
def _quiet_torch_logs():
    import io

    quiet = _Quiet()
    handlers = {h for name, lg in list(logging.Logger.manager.loggerDict.items())
                if name.startswith("torch") and isinstance(lg, logging.Logger) for h in lg.handlers}
    for h in handlers:
        h.addFilter(quiet)
    held = io.StringIO()  # a failed export prints its graph: keep it for the debug log, not the terminal
    try:  # so do torch's own warnings (pytree deprecations, guard notes): they say nothing about the model
        with contextlib.redirect_stdout(held), contextlib.redirect_stderr(held), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for h in handlers:
            h.removeFilter(quiet)
        if held.getvalue().strip():
            logger.debug("torch.export printed:\n%s", held.getvalue())
        for w in caught:
            logger.debug("torch.export warned: %s: %s", w.category.__name__, w.message)


def trace_export(model: torch.nn.Module, example_inputs) -> torch.fx.GraphModule:
    """Export ``model`` (non-strict, on a twin) and return the unlifted GraphModule (parameters as get_attr)."""
    args, kwargs = _as_tuple(example_inputs), _as_kwargs(example_inputs)
    if not args and not kwargs:
        raise TraceError("torch.export needs example inputs; pass example_inputs=...")
    with _quiet_torch_logs():
        return _export(_twin(model), args, kwargs)


def _export(model, args, kwargs) -> torch.fx.GraphModule:
    try:  # a free batch axis, so the probe can run the graph on chunks of any size; export fixes
        # an axis of size 1, so a batch-1 example is traced as two copies of itself
        with _opaque_functions(export=True):
            exported = torch.export.export(model, tuple(_two_rows(a) for a in args),
                                           {k: _two_rows(v) for k, v in kwargs.items()}, strict=False,
                                           dynamic_shapes=_batch_dynamic(args, kwargs))
    except Exception as exc:
        logger.debug("torch.export with a free batch axis failed (%s); exporting with static shapes",
                     _short_failure(exc))
        with _opaque_functions(export=True):
            exported = torch.export.export(model, args, kwargs, strict=False)
    gm = exported.module()
    gm.meta[NOTE] = getattr(model, NOTE, None)
    return gm


def _two_rows(v):
    """A batch-1 tensor repeated to batch 2 (a copy; the user's input is not touched)."""
    if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == 1:
        return v.expand(2, *v.shape[1:]).clone()
    return v


def _batch_dynamic(args, kwargs):
    """``dynamic_shapes`` marking axis 0 of every tensor input as free, and the token axis of token ids
    and of (batch, tokens, features) inputs (AUTO: no error if fixed), so that the graph's views follow
    the input's sizes and its shapes can be propagated from one-token inputs (:func:`one_token_inputs`)."""
    def spec(v):
        if not isinstance(v, torch.Tensor) or v.dim() == 0:
            return None
        tokens = v.dim() == 2 and not v.is_floating_point() or v.dim() == 3 and v.is_floating_point()
        return {0: torch.export.Dim.AUTO, 1: torch.export.Dim.AUTO} if tokens else {0: torch.export.Dim.AUTO}
    if kwargs and not args:
        return {k: spec(v) for k, v in kwargs.items()}
    return tuple(spec(a) for a in args)


def _short_failure(exc: BaseException) -> str:
    """The user-relevant part of a tracer failure: its message and the innermost model frame."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/torch/" not in f.filename and "/ddgraph/" not in f.filename]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno}, in {frames[-1].name})" if frames else ""
    return f"{type(exc).__name__}: {msg[:300]}{where}"


UNWRAPPED = "the torch.compile wrapper was unwrapped: its original module was traced"


def uncompiled(model: torch.nn.Module) -> torch.nn.Module:
    """The module a ``torch.compile`` wrapper compiles, or ``model`` itself."""
    inner = getattr(model, "_orig_mod", None)
    return inner if type(model).__name__ == "OptimizedModule" and isinstance(inner, torch.nn.Module) else model


def trace_module(model: torch.nn.Module, example_inputs=None, *, tracer: str = "auto"):
    """Trace ``model`` with the requested tracer; returns ``(graph_module, tracer_used)``.

    Raises
    ------
    TraceError
        When no tracer succeeds; the message says what each tracer reported and what to try.
    """
    if tracer not in TRACERS:
        raise TraceError(f"unknown tracer {tracer!r}; expected one of {', '.join(TRACERS)}")
    if uncompiled(model) is not model:  # torch.compile's wrapper: trace the module it compiles
        gm, used = trace_module(uncompiled(model), example_inputs, tracer=tracer)
        gm.meta[NOTE] = "; ".join(n for n in (UNWRAPPED, gm.meta.get(NOTE)) if n)
        return gm, used
    failures = []
    if tracer in ("auto", "fx"):
        try:
            return trace_fx(model, example_inputs), "fx"
        except Exception as exc:  # fx raises many kinds; we report them, never swallow silently
            failures.append(f"torch.fx.symbolic_trace failed: {_short_failure(exc)}")
            if tracer == "auto":
                logger.info("%s: %s; trying torch.export", type(model).__name__, failures[-1])
    if tracer in ("auto", "export"):
        try:
            return trace_export(model, example_inputs), "export"
        except TraceError as exc:
            failures.append(f"torch.export failed: {exc}")
        except Exception as exc:
            failures.append(f"torch.export.export(strict=False) failed: {_short_failure(exc)}")
    advice = ("What you can do: make the failing code traceable (avoid Python control flow on "
              "tensor values), pass example_inputs so torch.export can run, or trace a submodule.")
    raise TraceError(f"could not trace {type(model).__name__}:\n  - " + "\n  - ".join(failures)
                     + "\n" + advice)


class _ValueRecorder(torch.fx.Interpreter):
    """Runs a GraphModule on fake tensors and keeps every node's (fake) value in ``node.meta[key]``."""

    def __init__(self, gm, key: str):
        super().__init__(gm)
        self.key = key

    def run_node(self, n):
        try:
            value = super().run_node(n)
        except Exception as exc:
            raise TraceError(f"shape propagation failed at node {n.name!r} ({n.format_node()}): "
                             f"{_short_failure(exc)}") from None
        n.meta[self.key] = value
        return value

    def get_attr(self, target, args, kwargs):  # parameters and buffers as fakes: nothing real is written
        value = super().get_attr(target, args, kwargs)
        mode = torch._guards.detect_fake_mode()
        return mode.from_tensor(value) if isinstance(value, torch.Tensor) and mode is not None else value


def propagate_shapes(gm: torch.fx.GraphModule, example_inputs, key: str = "ddgraph_value") -> None:
    """Record shapes and dtypes of every node under ``node.meta[key]``, computing nothing (fake tensors)."""
    args, kwargs = _as_tuple(example_inputs), _as_kwargs(example_inputs)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = lambda v: mode.from_tensor(v) if isinstance(v, torch.Tensor) else v  # noqa: E731
        if kwargs and not args:
            flat = [fake(kwargs.get(p.target, kwargs.get(p.name))) for p in placeholders]
        else:
            flat = [fake(a) for a in args]
            if kwargs:
                flat += [fake(kwargs[k]) for k in kwargs]
        # placeholders left at their defaults (forward(x, mask=None) traced with concrete_args)
        flat += [p.args[0] for p in placeholders[len(flat):] if p.args]
        if len(flat) != len(placeholders):
            raise TraceError(f"the traced graph takes {len(placeholders)} inputs "
                             f"({', '.join(p.name for p in placeholders)}) but {len(flat)} were given")
        _ValueRecorder(gm, key).run(*flat)


def one_token_inputs(example_inputs):
    """The example inputs with batch and token axes shrunk to 1 (channel and spatial axes kept).

    The dead-coordinate analysis only needs channel structure, so it runs on these when the traced
    graph allows (fx graphs compute their view sizes from the input); see :mod:`ddgraph.frontend.channels`.
    """
    def shrink(v):
        if not isinstance(v, torch.Tensor) or v.dim() == 0:
            return v
        if not v.is_floating_point():
            return v[(slice(0, 1),) * v.dim()]  # ids: one sample, one token
        if v.dim() == 3:
            return v[:1, :1]  # (batch, tokens, features)
        return v[:1]  # (batch, features) or (batch, channels, *spatial)

    if isinstance(example_inputs, dict):
        return {k: shrink(v) for k, v in example_inputs.items()}
    if isinstance(example_inputs, torch.Tensor):
        return shrink(example_inputs)
    return tuple(shrink(v) for v in example_inputs)
