"""Static, regime-independent observables of a model with real (trained or random) weights.

No approach, no t: the model as it is, on a calibration batch.

- **LayerNorm kernel** (Prop 63): the output covariance of every LayerNorm has an exact zero
  eigenvalue along ``u = (1/gamma)/|1/gamma|``. Checked as ``u^T C u / tr C`` (should be ~1e-16); the
  |cosine| of C's bottom eigenvector with u is reported too (1 when the kernel is u alone).
- **RMSNorm** has no such direction: the same numbers are reported, and ``lambda_min / tr`` stays
  well above the floor.
- **Residual stream health** (Cor 58): the smallest active singular value of the stream's
  activation matrix (rows = samples x positions) at every residual add, in depth order. A collapse
  along depth says the stream has lost a direction.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import attrs
import torch

from ddgraph.compare.verdicts import Verdict
from ddgraph.core.graph import PRIMITIVE
from ddgraph.errors import DDGraphError, TargetError
from ddgraph.frontend.tracing import copy_quietly


class InspectError(DDGraphError):
    """A checkpoint that cannot be read, or that does not fit the model."""


@attrs.frozen
class Inspection:
    model: str
    n_rows: int
    norms: tuple[dict, ...]  # one per LayerNorm / RMSNorm, graph order
    stream: tuple[dict, ...]  # one per residual add, graph order

    @property
    def ok(self) -> bool:
        return all(n["verdict"] == Verdict.PASS for n in self.norms)

    def to_json(self) -> dict:
        return {"model": self.model, "rows": self.n_rows, "norms": list(self.norms), "stream": list(self.stream),
                "ok": self.ok}


def load_checkpoint(path: str | Path) -> dict:
    """A state dict from ``path``, read with ``torch.load(weights_only=True)``.

    Accepts a bare state dict or a dict holding one under ``state_dict`` / ``model``.

    Raises
    ------
    InspectError
        When the file is missing, is not a PyTorch checkpoint, or holds no tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InspectError(f"{path}: no such file")
    import pickle
    import zipfile

    with open(path, "rb") as fh:
        head = fh.read(4)
    legacy = head[:1] == b"\x80"  # torch.save(..., _use_new_zipfile_serialization=False): a bare pickle stream
    if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        raise InspectError(f"{path} is truncated or corrupt: it starts as the zip archive torch.save writes but its "
                           "directory is missing (an interrupted copy or download?); save or copy it again")
    if not legacy and not zipfile.is_zipfile(path):
        raise InspectError(f"{path} is not a PyTorch checkpoint (torch.save writes a zip archive, or a pickle "
                           "stream in the legacy format; this file is neither). Save the weights with "
                           "torch.save(model.state_dict(), path)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # not a foreign object: a broken pickle stream
            raise InspectError(f"{path}: this {'legacy-format (non-zip) ' if legacy else ''}checkpoint is truncated or "
                               "corrupt (its pickle stream does not parse); save or copy it again") from None
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InspectError(f"{path} is a {'legacy-format (non-zip) ' if legacy else ''}PyTorch checkpoint that does "
                           f"not load with torch.load(weights_only=True): it holds objects other than tensors and "
                           f"containers ({first}). Re-save the state dict alone: torch.save(model.state_dict(), "
                           "path)") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        kind = "legacy-format (non-zip) checkpoint" if legacy else "checkpoint"
        raise InspectError(f"{path}: this {kind} is truncated or corrupt ({type(exc).__name__}: {first}); save or "
                           "copy it again" + (" (a current torch.save writes the zip format)" if legacy else "")) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InspectError(f"{path}: loaded a {type(obj).__name__}, not a state dict of tensors "
                           "(save one with torch.save(model.state_dict(), path))")
    return obj


def apply_checkpoint(model: torch.nn.Module, state: dict, path: str = "checkpoint") -> None:
    """Load ``state`` into ``model`` strictly; mismatches are an :class:`InspectError` naming keys.

    ``model`` is the one the ``--model`` factory just built for this run (never a user's object).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]

    def names(keys):
        return ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")

    parts = [f"missing keys: {names(missing)}" if missing else "",
             f"unexpected keys: {names(unexpected)}" if unexpected else "",
             f"shape mismatch (checkpoint vs model): {names(shapes)}" if shapes else ""]
    if any(parts):
        raise InspectError(f"{path} does not fit {type(model).__name__}: " + "; ".join(p for p in parts if p)
                           + ". Pass the --model factory the checkpoint was saved from")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        text = " ".join(str(exc).split())
        raise InspectError(f"{path} does not fit {type(model).__name__}: {text[:600]}") from None


def _calibration(graph, n: int, seed: int):
    from ddgraph.probing.data import gaussian_like
    from ddgraph.probing.sites import weight_sites

    sites, _ = weight_sites(graph)
    vocab = next((s.vocab for s in sites if s.kind == "embedding"), None)
    return gaussian_like(graph.example_inputs, vocab)(0, n, torch.Generator().manual_seed(seed))


class _Watch(torch.fx.Interpreter):
    def __init__(self, gm, watch):
        super().__init__(gm)
        self.watch, self.seen = watch, {}

    def run_node(self, n):
        out = super().run_node(n)
        if n.name in self.watch:
            self.seen[n.name] = out.detach()
        return out


def inspect(model: torch.nn.Module, example_inputs=None, *, n: int = 512, seed: int = 0,
            calibration=None) -> Inspection:
    """Check every norm's kernel direction and profile the residual stream on a calibration batch.

    Parameters
    ----------
    model : a model with real weights (not on the meta device).
    example_inputs : example inputs (their per-sample shapes shape the calibration batch).
    n : calibration batch size (Gaussian inputs, or uniform token ids for an embedding model).
    calibration : your own batch (a tensor or tuple of tensors) instead of the Gaussian one.
    """
    
    from ddgraph import api
    from ddgraph.prediction import ln_kernel
    from ddgraph.probing.canonical import _fp64_graph, deterministic
    from ddgraph.probing.observables import LN_RATIO_MAX, holds_kernel, kernel_check

    if n < 2 and calibration is None:
        raise InspectError(f"n={n}: a covariance needs at least 2 calibration rows (default 512)")
    if any(p.device.type == "meta" for p in model.parameters()):
        raise InspectError("the model's weights are on the meta device; inspect needs real weights")
    graph = api.label(api.trace(model, example_inputs))
    g = graph.nx
    kernel = set(graph.nodes_exposing("kernel"))
    norms = [x for x in graph.order() if x in kernel or x in set(graph.nodes_exposing("no_kernel"))]
    adds = graph.nodes_exposing("stream")
    inputs = calibration if calibration is not None else _calibration(graph, n, seed)
    inputs = tuple(t.detach().to(torch.float64, copy=True) if t.is_floating_point() else t.detach().clone()
                   for t in (inputs if isinstance(inputs, (tuple, list)) else (inputs,)))  # the user's batch is never written
    gm = _fp64_graph(copy_quietly(graph.gm).double())
    for note in deterministic(gm):  # train-mode dropout off on this copy; other random ops refused
        logging.getLogger(__name__).warning("inspect: %s", note)
    w = _Watch(gm, set(norms) | set(adds))
    with torch.no_grad():
        w.run(*inputs)
    out_norms = []
    for name in norms:
        d = g.nodes[name]
        x = w.seen[name]
        rows = x.reshape(-1, x.shape[-1])
        cov = torch.cov(rows.T)
        k = ln_kernel(graph, name)
        u = torch.tensor(k["direction"], dtype=cov.dtype)
        chk = kernel_check(cov, u)
        if name in kernel:
            ok = holds_kernel(chk["rayleigh"])
            claim = "exact kernel along 1/gamma (Prop 63)"
        else:
            ok = chk["ratio"] > LN_RATIO_MAX
            claim = "no kernel direction (RMSNorm)"
        out_norms.append({"node": name, "module": d.get("module") or name, "kind": d[PRIMITIVE],
                          "exact_kernel": name in kernel,
                          "ratio": chk["ratio"], "rayleigh": chk["rayleigh"], "cosine": chk["cosine"], "claim": claim,
                          "verdict": Verdict.PASS if ok else Verdict.FAIL})
    out_stream = []
    for depth, name in enumerate(adds):
        x = w.seen[name]
        rows = x.reshape(-1, x.shape[-1])
        active = rows.abs().amax(0) > 0
        s = torch.linalg.svdvals(rows[:, active]) / math.sqrt(rows.shape[0]) if active.any() else torch.zeros(1)
        out_stream.append({"node": name, "module": g.nodes[name].get("module") or name, "depth": depth,
                           "sigma_min": float(s[-1]), "sigma_max": float(s[0]),
                           "active": int(active.sum()), "width": int(rows.shape[1])})
    rows_n = inputs[0].shape[0] * (inputs[0].shape[1] if inputs[0].dim() > 1 and not inputs[0].is_floating_point() else 1)
    return Inspection(model=type(model).__name__, n_rows=int(rows_n), norms=tuple(out_norms), stream=tuple(out_stream))


def plot(ins: Inspection, path: str | Path) -> Path:
    """The structural-health plot: stream sigma_min across depth, and each norm's lambda_min/trace."""
    from ddgraph._optional import pyplot
    from ddgraph.probing.observables import LN_RATIO_MAX

    plt = pyplot("the inspect plot")
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    if ins.stream:
        a.semilogy([s["depth"] for s in ins.stream], [max(s["sigma_min"], 1e-300) for s in ins.stream], "o-",
                   label="sigma_min (active)")
        a.semilogy([s["depth"] for s in ins.stream], [s["sigma_max"] for s in ins.stream], "s--", alpha=0.5,
                   label="sigma_max")
        a.legend()
    a.set(title="residual stream across depth (Cor 58)", xlabel="residual add (depth order)",
          ylabel="singular value / sqrt(rows)")
    if ins.norms:
        colours = ["tab:blue" if x["exact_kernel"] else "tab:orange" for x in ins.norms]
        b.bar(range(len(ins.norms)), [max(abs(x["ratio"]), 1e-20) for x in ins.norms], color=colours)
        b.set_yscale("log")
        b.axhline(LN_RATIO_MAX, color="k", lw=0.8, ls=":")
    b.set(title="norm output: lambda_min / trace (blue: exact kernel, orange: none)", xlabel="norm (graph order)")
    fig.suptitle(f"{ins.model}: static structure on {ins.n_rows} calibration rows")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def resolve(target: str, model_target: str | None = None):
    """``(model, example_inputs)`` for ``ddgraph inspect``: a factory TARGET, or a checkpoint FILE
    loaded into ``model_target``'s model."""
    from ddgraph.frontend.target import load_target

    path = Path(target)
    if ":" in target and not path.is_file():
        model, inputs, _ = load_target(target)
        if model_target:
            raise InspectError("--model is for checkpoints; TARGET is already a factory")
        return model, inputs
    state = load_checkpoint(path)
    if not model_target:
        raise InspectError(f"{path} holds a state dict; say which model it belongs to with "
                           "--model path/to/file.py:factory (or package.module:factory)")
    try:
        model, inputs, _ = load_target(model_target)
    except TargetError:
        raise
    apply_checkpoint(model, state, str(path))
    return model, inputs
