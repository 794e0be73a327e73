"""The monitor's alarms: each fires on a scale-free statistic against the run's own history, and
carries the step, the layer and the evidence (docs/MONITOR.md says when each is trustworthy).

- :class:`TaskExpansion` (Algorithm 1): a layer's K-FAC G top eigenvalue jumps ``spike`` times above every
  reading of the window while A stays put. Fresh outputs inject a high-variance gradient block the
  converged ones lack; the head is where it starts.
- :class:`RankCollapse` (selection rule, THEORY §5; paper §5.1): a bottom eigenvalue of a factor, relative
  to the factor's lambda_max, has fallen by ``collapse`` across the window on a clean power law of the run's
  axis: a direction that was not moving is turning transversal, a dead direction emerging.
- :class:`GaugeDrift` (Remark 80): the loss is invariant along a gauge orbit, so its gradient has no
  component there; gauge coordinates that move by more than ``drift`` of the gauged parameters' own
  displacement show a non-equivariant optimiser (Adam) walking along the orbit. DDCAdam and SGD do not.

Every detector is quiet by default: it needs ``warmup`` readings of history, and a (layer, kind) that fired
stays silent for a full window. Baseline, warm-up and silence are counted in training steps
(``baseline_steps``, ``warmup_steps``), not readings, so each detector reads the same stretch of training at
any ``factor_every``; rank collapse fits ``window`` readings spread over that stretch.
"""
from __future__ import annotations

import math
from collections import deque

import attrs
import numpy as np
import torch

from ddgraph.monitor.cadence import Cadence
from ddgraph.slt.selection import select_transversal

TASK_EXPANSION, RANK_COLLAPSE, GAUGE_DRIFT = "task-expansion", "rank-collapse", "gauge-drift"

#: a decay counts as a clean power law when its log-log fit explains this much of the variance
MIN_R2 = 0.9


@attrs.frozen
class Flag:
    """One alarm: what fired, at which optimiser step and layer, why (``message``) and on what numbers."""

    kind: str
    step: int
    layer: str
    message: str
    evidence: dict

    def as_dict(self) -> dict:
        return {"kind": self.kind, "step": self.step, "layer": self.layer, "message": self.message,
                "evidence": self.evidence}


class _StepQuiet:
    """History per key over the last ``baseline_steps`` training steps, and the silence after a flag, in steps.

    A reading is an average over the batches since the previous one, so a fine cadence's readings are
    noisier, and a window of a few readings spans a few steps of minibatch noise: the baseline must cover
    a stretch of training, whatever the cadence. Memory is bounded by ``baseline_steps / factor_every``.
    """

    def __init__(self, cadence: Cadence):
        self.cadence = cadence
        self.history: dict = {}
        self.silent_until: dict = {}

    def push(self, key, step: int, value) -> list:
        """Record ``value`` at ``step``; return the readings before it within ``baseline_steps``."""
        h = self.history.setdefault(key, deque())
        while h and h[0][0] < step - self.cadence.baseline_steps:
            h.popleft()
        past = list(h)
        h.append((step, value))
        return past

    def ready(self, key, step: int, past: list) -> bool:
        """Enough history (``warmup`` readings spanning ``warmup_steps``) and not silenced by a recent flag."""
        c = self.cadence
        return (step > self.silent_until.get(key, -math.inf) and len(past) >= c.warmup
                and step - past[0][0] >= c.warmup_steps)

    def fired(self, key, step: int) -> None:
        self.silent_until[key] = step + self.cadence.baseline_steps


class TaskExpansion(_StepQuiet):
    """A jump of G's top eigenvalue above every reading of the baseline, with A steady, per layer.

    Fresh outputs inject a gradient block of variance ``sigma_new^2`` far above the converged outputs'
    ``sigma_old^2``; the paper's anisotropy ``kappa(G) ~ sigma_new^2 / sigma_old^2`` spikes because its
    numerator does. ``lambda_max(G)`` is that numerator; it is compared with the *largest* reading of the
    last ``baseline_steps`` steps (so the baseline's own scatter is part of the threshold) rather than
    divided by ``lambda_min``, which at a converged head sits in the noise. ``lambda_max(A)`` must stay
    within ``spike`` of its running median: the change is on the gradient side (A3: encoder unchanged), not
    an input shift.
    """

    def observe(self, step: int, layer: str, a, g) -> Flag | None:
        history = self.push(layer, step, (g.lambda_max, a.lambda_max))
        if not self.ready(layer, step, history) or not g.lambda_max > 0:
            return None
        past, steps = [v for _, v in history], step - history[0][0]
        top = max(v for v, _ in past)
        a_base = float(np.median([v for _, v in past]))
        ratio = g.lambda_max / top if top > 0 else math.inf
        a_ratio = a.lambda_max / a_base if a_base > 0 else math.inf
        if ratio < self.cadence.spike or not 1 / self.cadence.spike < a_ratio < self.cadence.spike:
            return None
        self.fired(layer, step)
        return Flag(TASK_EXPANSION, step, layer,
                    f"G's top eigenvalue {g.lambda_max:.3g} is {ratio:.1f}x the largest of the last {len(past)} "
                    f"readings ({steps} steps; threshold {self.cadence.spike:g}x) while A moved {a_ratio:.2f}x: a new "
                    "high-variance gradient block, as when a head grows new outputs (Algorithm 1)",
                    {"g_lambda_max": g.lambda_max, "window_max": top, "ratio": ratio, "threshold": self.cadence.spike,
                     "a_ratio": a_ratio, "window_readings": len(past), "window_steps": steps,
                     "g_condition": g.condition, "g_anisotropy": g.anisotropy, "g_dim": int(g.evals.numel())})


class RankCollapse(_StepQuiet):
    """The selection rule on each factor's bottom ranks across the last ``baseline_steps`` steps.

    The fit takes ``window`` readings spread evenly over those steps (all of them at ``factor_every =
    baseline_steps / window``), so the drop it measures is over the same stretch of training at any
    cadence; it waits until the readings cover ``baseline_steps`` steps.
    """

    def observe(self, step: int, layer: str, factor: str, spec, axis: float) -> tuple[Flag | None, dict]:
        key, c = (layer, factor), self.cadence
        h = self.history.setdefault(key, deque())
        h.append((step, (axis, spec.evals[: c.bottom].tolist() + [spec.lambda_max])))
        while h[0][0] <= step - c.baseline_steps:
            h.popleft()
        # each reading averages the factor_every steps up to it, so the history covers this many steps
        covered = step - h[0][0] + c.factor_every >= c.baseline_steps
        picked = sorted({round(i) for i in np.linspace(0, len(h) - 1, c.window)})
        w = [h[i][1] for i in picked]
        ready = covered and len(w) == c.window and len({len(v) for _, v in w}) == 1 and len({t for t, _ in w}) == len(w)
        if not ready:
            return None, {}
        ts = [t for t, _ in w]
        spectra = [v for _, v in w]
        sel = select_transversal(ts, spectra)
        summary = {"verdict": sel.verdict, "k": sel.k, "transversal": sel.transversal,
                   **{f"n_{kind}": n for kind, n in sel.kinds().items()}}
        if not step > self.silent_until.get(key, -math.inf):
            return None, summary
        rel = np.asarray(spectra, float)
        rel = rel[:, :-1] / rel[:, -1:]
        for r in sel.ranks[:-1]:
            first, last = rel[0, r.rank], rel[-1, r.rank]
            drop = first / last if last > 0 else math.inf
            if not (drop >= self.cadence.collapse and r.fit.slope > 0 and r.fit.r2 >= MIN_R2):
                continue
            self.fired(key, step)
            return Flag(RANK_COLLAPSE, step, layer,
                        f"{factor}-factor bottom rank {r.rank} fell {drop:.3g}x relative to lambda_max over the last "
                        f"{len(w)} readings ({step - h[0][0] + c.factor_every} steps), on a power law of slope {r.fit.slope:.2f} (R^2 {r.fit.r2:.2f}); "
                        f"selection rule: {r.kind}: a direction turning transversal (a dead direction emerging)",
                        {"factor": factor, "rank": r.rank, "drop": drop, "threshold": self.cadence.collapse,
                         "slope": r.fit.slope, "r2": r.fit.r2, "kind": r.kind, "selection": sel.verdict,
                         "k": sel.k, "window_readings": len(w),
                         "window_steps": step - h[0][0] + c.factor_every}), summary
        return None, summary


class GaugeDrift(_StepQuiet):
    """Displacement of gauge coordinates against the gauged parameters' own displacement, per gauge."""

    def __init__(self, cadence: Cadence, gauges, names: dict[int, str]):
        super().__init__(cadence)
        self.names = names
        from ddgraph.optim.orbit import gauge_coordinates

        self._coords = gauge_coordinates
        self.gauges = list(gauges)
        self.start = [(self._coords(g), [p.detach().double().clone() for p in g.params]) for g in self.gauges]

    def observe(self, step: int) -> tuple[list[Flag], dict]:
        flags, values = [], {}
        names = self.names
        for g, (c0, p0) in zip(self.gauges, self.start):
            name = f"{g.layout.kind}:" + ",".join(names.get(id(p), str(tuple(p.shape))) for p in g.params)
            moved = math.sqrt(sum(float((p.detach().double() - q).pow(2).sum()) for p, q in zip(g.params, p0)))
            along = float((self._coords(g) - c0).norm())
            ratio = along / moved if moved > 0 else 0.0
            values[name] = {"gauge_shift": along, "param_shift": moved, "drift_ratio": ratio}
            history = self.push(name, step, ratio)
            if not self.ready(name, step, history) or ratio <= self.cadence.drift:
                continue
            self.fired(name, step)
            flags.append(Flag(GAUGE_DRIFT, step, name,
                              f"{g.layout.kind}: the gauge coordinates moved {along:.3g} while the parameters moved {moved:.3g} "
                              f"(ratio {ratio:.2g} > {self.cadence.drift:g}): the optimiser walks along a direction the "
                              "loss cannot see (gauge-mode drift, Remark 80); rates read on this run are confounded",
                              {"gauge": g.layout.kind, "gauge_shift": along, "param_shift": moved, "ratio": ratio,
                               "threshold": self.cadence.drift}))
        return flags, values


def default_gauges(model: torch.nn.Module, optimizer) -> list:
    """The gauges drift is read on: DDCAdam's own, else none (pass ``gauges=`` to :class:`Monitor`)."""
    return list(getattr(optimizer, "gauges", ()) or ())
