"""The :class:`Monitor`: the tiers, the flags and the writers, attached to a model and an optimiser."""
from __future__ import annotations

import math

import attrs
import torch
from torch import nn

from ddgraph.errors import MonitorError
from ddgraph.monitor.cadence import Cadence
from ddgraph.monitor.factors import FactorTier, expected_factors
from ddgraph.monitor.flags import Flag, GaugeDrift, RankCollapse, TaskExpansion, default_gauges
from ddgraph.monitor.logs import LogWriter
from ddgraph.monitor.spectrum import spectrum
from ddgraph.monitor.stream import StreamTier


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


class Monitor:
    """Read the dead-direction observables of ``model`` while ``optimizer`` trains it.

    Parameters
    ----------
    model : the model being trained (nothing of it is changed: hooks only read).
    optimizer : a ``torch.optim.Optimizer``; readings follow its ``step()``. Without one, call :meth:`step`
        after each optimiser step yourself.
    logdir : the log directory (created; ``scalars.csv`` and ``flags.jsonl`` are always written).
    cadence : a :class:`~ddgraph.monitor.Cadence` (default: stream every 10 steps, factors every 100).
    blocks : module names whose outputs are the residual stream (default: every ``nn.ModuleList`` item whose
        output is shaped like its input).
    norms : LayerNorm module names (default: every ``nn.LayerNorm``).
    layers : ``nn.Linear`` module names whose K-FAC factors are read (default: all of them).
    gauges : gauge specs (:mod:`ddgraph.optim.gauges`) drift is read on (default: DDCAdam's own, else none).
    directions : ``callable(model) -> {(layer, "A" or "G"): vector}``, directions whose factor entry
        ``v^T F v / |v|^2`` is logged at each periodic reading as ``dd`` (a known dead direction, a LoRA subspace
        column, an LN kernel direction).
    axis : ``callable(model) -> float``, the t-axis rates are fitted against across readings (default: 1/step,
        a monitoring convenience; a geometric axis, e.g. the amplitude of a known direction, gives the
        trajectory rate of Cor 86).
    tensorboard : write TensorBoard events (None: when ``tensorboard`` is installed; True: required).
    parquet : also write ``scalars.parquet`` at close (needs pandas and pyarrow).

    Examples
    --------
    >>> mon = Monitor(model, opt, logdir="runs/a")        # doctest: +SKIP
    >>> for x, y in data: ...; loss.backward(); opt.step()  # doctest: +SKIP
    >>> mon.close(); [f.kind for f in mon.flags]           # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                 logdir="ddgraph-monitor", cadence: Cadence | None = None, blocks=None, norms=None, layers=None,
                 gauges=None, directions=None, axis=None, tensorboard: bool | None = None, parquet: bool = False):
        if not isinstance(model, nn.Module):
            raise MonitorError(f"Monitor: model is a {type(model).__name__}, not a torch.nn.Module")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise MonitorError(f"Monitor: optimizer is a {type(optimizer).__name__}, not a torch.optim.Optimizer")
        if cadence is not None and not isinstance(cadence, Cadence):
            raise MonitorError(f"Monitor: cadence is a {type(cadence).__name__}; pass ddgraph.monitor.Cadence(...)")
        for what, fn in (("axis", axis), ("directions", directions)):
            if fn is not None and not callable(fn):
                raise MonitorError(f"Monitor: {what} must be a callable taking the model (or None)")
        self.model, self.cadence, self.axis, self.directions = model, cadence or Cadence(), axis, directions
        modules = dict(model.named_modules())
        for what, names in (("blocks", blocks), ("norms", norms)):
            missing = [n for n in (names or ()) if n not in modules]
            if missing:
                raise MonitorError(f"{what}: {', '.join(map(repr, missing))} not a module of {type(model).__name__}")
        not_ln = [n for n in (norms or ()) if not isinstance(modules[n], nn.LayerNorm)]
        if not_ln:
            raise MonitorError(f"norms: {', '.join(map(repr, not_ln))} not an nn.LayerNorm (Prop 63's kernel is LayerNorm's)")
        self.steps = 0
        self.flags: list[Flag] = []
        self.writer = LogWriter(logdir, tensorboard=_tensorboard_available() if tensorboard is None else tensorboard,
                                parquet=parquet)
        self.stream = StreamTier(model, blocks, norms, self.cadence.max_rows, self._record)
        self.factors = FactorTier(model, layers, self.cadence.max_rows)
        self._names = {id(p): n for n, p in model.named_parameters()}
        specs = default_gauges(model, optimizer) if gauges is None else list(gauges)
        self.drift = GaugeDrift(self.cadence, specs, self._names) if specs else None
        self.expansion, self.collapse = TaskExpansion(self.cadence), RankCollapse(self.cadence)
        self._previous: dict = {}
        self._hook = None
        self._attach(optimizer)
        self._arm()
        self.writer.describe({"model": type(model).__name__, "optimizer": type(optimizer).__name__,
                              "cadence": attrs.asdict(self.cadence),
                              "blocks": self.stream.blocks, "norms": self.stream.norms, "layers": self.factors.layers,
                              "gauges": [g.layout.kind for g in specs], "axis": "custom" if axis else "1/step",
                              "tensorboard": self.writer.tb is not None})

    # -- wiring ---------------------------------------------------------------------------------------
    def _attach(self, optimizer) -> None:
        if self._hook is not None:
            self._hook.remove()
        self._hook = optimizer.register_step_post_hook(lambda *_: self.step()) if optimizer is not None else None

    def rewire(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Hook the model's current layers again after surgery (a grown head, a replaced block), and follow
        ``optimizer`` if a new one was made. Baselines are kept per layer name, so a change shows as a flag."""
        self.factors.rewire()
        if optimizer is not None:
            self._attach(optimizer)

    def _arm(self) -> None:
        c, n = self.cadence, self.steps
        self.stream.arm(n % c.stream_every == 0)
        self.factors.armed = n % c.factor_batch_every == 0

    def _record(self, tier: str, layer: str, values: dict) -> None:
        self.writer.scalars(self.steps, tier, layer, values)

    # -- reading --------------------------------------------------------------------------------------
    def step(self) -> None:
        """One optimiser step has finished: read what is due, then arm the hooks for the next forward."""
        if (self.steps + 1) % self.cadence.factor_every == 0:
            self._read_factors()
        self.steps += 1
        self._arm()

    def log(self, **values) -> None:
        """Log training scalars (e.g. ``loss=...``) beside the readings, against the optimiser step just taken
        (call it after ``optimizer.step()``)."""
        self.writer.scalars(max(self.steps - 1, 0), "train", "-", {k: float(v) for k, v in values.items()})

    def _fire(self, flag: Flag | None) -> None:
        if flag is not None:
            self.flags.append(flag)
            self.writer.flag(flag)

    def _axis(self) -> float:
        if self.axis is None:
            return 1.0 / (self.steps + 1)
        t = float(self.axis(self.model))
        if not (math.isfinite(t) and t > 0):
            raise MonitorError(f"Monitor axis returned {t!r} at step {self.steps}; it must be a positive number")
        return t

    def _read_factors(self) -> None:
        step, k, t = self.steps, self.cadence.bottom, self._axis()
        wanted = self._directions()
        for layer, mats in self.factors.read().items():
            a, g = (spectrum(m, k) for m in mats)
            for name, s, m in (("A", a, mats[0]), ("G", g, mats[1])):
                values = {"lambda_max": s.lambda_max, "lambda_min": s.lambda_min, "condition": s.condition,
                          "anisotropy": s.anisotropy, "n_floor": s.n_floor,
                          "continuity": s.continuity(self._previous.get((layer, name))),
                          **{f"bottom_{i}": v for i, v in enumerate(s.bottom(k))}}
                if (layer, name) in wanted:
                    values["dd"] = _entry(m, wanted[(layer, name)], layer, name)
                self._previous[(layer, name)] = s
                flag, sel = self.collapse.observe(step, layer, name, s, t)
                if sel:
                    values.update({"selection_pass": float(sel["verdict"] == "pass"),
                                   "selection_k": math.nan if sel["k"] is None else sel["k"],
                                   "n_decaying": sel.get("n_decaying", 0) + sel.get("n_transversal", 0),
                                   "n_non_degenerate": sel.get("n_non-degenerate", 0)})
                self.writer.scalars(step, "factor", f"{layer}/{name}", values)
                self.writer.histogram(step, f"spectrum/{layer}/{name}", torch.log10(s.active.clamp_min(1e-300)))
                self._fire(flag)
            self._fire(self.expansion.observe(step, layer, a, g))
        if self.drift is not None:
            flags, values = self.drift.observe(step)
            for name, v in values.items():
                self.writer.scalars(step, "gauge", name, v)
            for f in flags:
                self._fire(f)
        self.writer.scalars(step, "factor", "-", {"axis": t})
        self.writer.flush()

    def _directions(self) -> dict:
        if self.directions is None:
            return {}
        with torch.no_grad():
            out = self.directions(self.model)
        if not isinstance(out, dict):
            raise MonitorError(f"Monitor directions returned a {type(out).__name__}; expected a dict "
                               "{(layer, 'A' or 'G'): vector}")
        return out

    def expected(self, inputs, *, loss: str, generator: torch.Generator | None = None) -> dict:
        """On demand: K-FAC spectra with the expected Fisher on ``inputs`` (labels drawn from the model),
        logged under tier ``expected``; returns ``{layer: {"A": Spectrum, "G": Spectrum}}``."""
        armed, factors_armed = self.stream.armed, self.factors.armed
        self.stream.armed = self.factors.armed = False  # the extra pass is not a training batch
        try:
            out = expected_factors(self.model, inputs, loss=loss, k=self.cadence.bottom, layers=self.factors.layers,
                                   max_rows=max(self.cadence.max_rows, 4096), generator=generator)
        finally:
            self.stream.armed, self.factors.armed = armed, factors_armed
        for layer, (a, g) in out.items():
            for name, s in (("A", a), ("G", g)):
                self.writer.scalars(self.steps, "expected", f"{layer}/{name}",
                                    {"lambda_max": s.lambda_max, "lambda_min": s.lambda_min, "condition": s.condition,
                                     "anisotropy": s.anisotropy, **{f"bottom_{i}": v for i, v in
                                                                    enumerate(s.bottom(self.cadence.bottom))}})
        self.writer.flush()
        return {layer: {"A": a, "G": g} for layer, (a, g) in out.items()}

    def close(self) -> None:
        """Remove every hook and close the logs (idempotent)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.stream.remove()
        self.factors.remove()
        self.writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _entry(m: torch.Tensor, v, layer: str, factor: str) -> float:
    """``v^T m v / |v|^2``: the factor's entry along ``v``."""
    v = torch.as_tensor(v).detach().to(torch.float64).flatten()
    if v.numel() != m.shape[0] or not float(v.norm()) > 0:
        raise MonitorError(f"Monitor directions: the vector for ({layer!r}, {factor!r}) has {v.numel()} entries "
                           f"(norm {float(v.norm()):.3g}); the {factor} factor is {m.shape[0]}-dimensional")
    return float(v @ m.to(torch.float64) @ v / (v @ v))
