"""A dead direction emerging in training, watched by ddgraph.monitor: teacher-student with a surplus unit.

The teacher is ``Linear(8, 3, bias=False) - ReLU - Linear(3, 8)`` (no hidden bias: a unit can only leave by
shrinking, not by a bias that switches its ReLU off); the student has one hidden unit more and starts at
the teacher's weights (slightly perturbed) with the surplus unit switched on. Noise-free MSE makes the
surplus unit's contribution decay: a dead direction emerging. Along the run, the monitor

- fires the rank-collapse early warning (a bottom eigenvalue falling on a clean power law);
- reads the dead-direction entries of the K-FAC factors against the gauge-invariant amplitude
  ``t = sqrt(|w_in| |w_out|)`` of the surplus unit, whose slopes should follow ddgraph's predicted ladder
  for this architecture (noise-free regime) under SGD and DDCAdam (Cor 86);
- reads the ReLU-rescaling gauge: Adam drifts along it (Remark 80), which breaks the per-factor
  readout; SGD and DDCAdam do not.

    python examples/teacher_student.py --json
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile

import torch
from torch import nn

import ddgraph
from ddgraph.monitor import Cadence, Monitor, read_flags
from ddgraph.monitor.logs import read_rows
from ddgraph.optim import DDCAdam, ReLURescaleGauge
from ddgraph.probing.fit import fit_rate

DIM, TEACHER, STUDENT = 8, 3, 4
DEAD = STUDENT - 1  # the surplus unit
#: a trajectory slope agrees with the ladder when it is within TOL of it on a fit with R^2 >= MIN_R2. A training
#: run is noisier than the probe's fixed sample: consecutive readings differ by minibatch noise, so the probe's
#: local-slope test (THEORY §7.5) is replaced by the R^2 of the whole fit.
TOL, MIN_R2 = 0.25, 0.95


def teacher(seed: int) -> nn.Sequential:
    """A random teacher that neither reads the last input coordinate nor writes the last output one."""
    torch.manual_seed(seed)
    t = nn.Sequential(nn.Linear(DIM, TEACHER, bias=False), nn.ReLU(), nn.Linear(TEACHER, DIM))
    with torch.no_grad():
        t[0].weight[:, -1] = 0.0
        t[2].weight[-1] = 0.0
        t[2].bias[-1] = 0.0
    return t


def student(t: nn.Sequential, amplitude: float, seed: int) -> nn.Sequential:
    """The teacher plus a surplus unit reading the last input coordinate and writing the last output one,
    with weight ``amplitude`` on both sides: the canonical-aligned approach of THEORY §2.3, at t = amplitude."""
    s = nn.Sequential(nn.Linear(DIM, STUDENT, bias=False), nn.ReLU(), nn.Linear(STUDENT, DIM))
    with torch.no_grad():
        for p in s.parameters():
            p.zero_()
        s[0].weight[:TEACHER] = t[0].weight
        s[2].weight[:, :TEACHER] = t[2].weight
        s[2].bias.copy_(t[2].bias)
        s[0].weight[DEAD, -1] = amplitude
        s[2].weight[-1, DEAD] = amplitude
    return s


def amplitude(model) -> float:
    """Gauge-invariant size of the surplus unit: the geometric mean of its incoming and outgoing norms."""
    with torch.no_grad():
        return math.sqrt(float(model[0].weight[DEAD].norm() * model[2].weight[:, DEAD].norm()))


def directions(model) -> dict:
    """The dead direction on each factor: the surplus unit (hidden side), its outgoing column (output side)
    and its incoming row (input side)."""
    unit = torch.zeros(STUDENT)
    unit[DEAD] = 1.0
    return {("0", "A"): model[0].weight[DEAD], ("0", "G"): unit, ("2", "A"): unit, ("2", "G"): model[2].weight[:, DEAD]}


def optimiser(name: str, model):
    if name == "SGD":
        return torch.optim.SGD(model.parameters(), lr=0.05)
    if name == "Adam":
        return torch.optim.Adam(model.parameters(), lr=3e-3)
    return DDCAdam(model.parameters(), gauges=[gauge(model)], lr=3e-3, rel_lr=3e-3)


def gauge(model):
    return ReLURescaleGauge(model[0].weight, model[2].weight)


def predicted_ladder(model) -> dict:
    pred = ddgraph.predict(model, torch.randn(2, DIM), approach=ddgraph.Approach(loss="mse", regime="noise-free"))
    return {(n.param.rsplit(".", 1)[0], f): (n.a_rate if f == "A" else n.g_rate) for n in pred.nodes for f in "AG"}


def run(name: str, steps: int = 2000, every: int = 50, seed: int = 0, logdir: str | None = None) -> dict:
    t_model = teacher(seed)
    model = student(t_model, 0.6, seed)
    opt = optimiser(name, model)
    logdir = logdir or tempfile.mkdtemp(prefix=f"ddgraph-ts-{name}-")
    cadence = Cadence(factor_every=every, factor_batch_every=1, stream_every=every, window=8, baseline_steps=400,
                      warmup_steps=150)
    mon = Monitor(model, opt, logdir=logdir, cadence=cadence, gauges=[gauge(model)], directions=directions,
                  axis=amplitude)
    gen = torch.Generator().manual_seed(seed + 2)
    for _ in range(steps):
        x = torch.randn(128, DIM, generator=gen)
        with torch.no_grad():
            y = t_model(x)
        opt.zero_grad()
        loss = 0.5 * ((model(x) - y) ** 2).sum(-1).mean()
        loss.backward()
        opt.step()
    mon.log(loss=loss.item())
    mon.close()
    with torch.no_grad():  # how far the surplus unit left the canonical approach (its dead-to-dead entries)
        off = math.hypot(float(model[0].weight[DEAD, :-1].norm()), float(model[2].weight[:-1, DEAD].norm()))
    return {"optimiser": name, "logdir": logdir, "t_start": 0.6, "t_end": amplitude(model), "off_axis": off,
            **trajectory_rates(logdir, predicted_ladder(model)),
            "drift_ratio": _last(logdir, "gauge", "drift_ratio"),
            "early_warning": [f for f in read_flags(logdir) if f["kind"] == "rank-collapse"][:1],
            "gauge_drift_flag": any(f["kind"] == "gauge-drift" for f in read_flags(logdir))}


def trajectory_rates(logdir, ladder: dict) -> dict:
    """Slope of every dead-direction factor entry against the amplitude axis over the logged readings,
    judged against the predicted ladder."""
    rows = read_rows(logdir)
    axis = {r["step"]: r["value"] for r in rows if r["metric"] == "axis"}
    out, verdicts = {}, []
    for (layer, factor), rate in sorted(ladder.items()):
        pts = sorted((r["step"], r["value"]) for r in rows if r["layer"] == f"{layer}/{factor}" and r["metric"] == "dd")
        pts = pts[len(pts) // 3:]  # the asymptotic end: t well below its start
        fit = fit_rate([axis[s] for s, _ in pts], [v for _, v in pts], tol=math.inf)
        clean = math.isfinite(fit.slope) and (rate == 0 or fit.r2 >= MIN_R2)  # a rate-0 series has no variance to explain
        verdict = "pass" if clean and abs(fit.slope - rate) <= TOL else "fail"
        verdicts.append(verdict)
        out[f"{layer}/{factor}"] = {"predicted": rate, "measured": round(fit.slope, 3), "se": round(fit.se, 3),
                                    "r2": round(fit.r2, 4) if math.isfinite(fit.r2) else None, "verdict": verdict}
    return {"ladder": out, "ladder_ok": all(v == "pass" for v in verdicts)}


def _last(logdir, tier, metric):
    vals = [r["value"] for r in read_rows(logdir) if r["tier"] == tier and r["metric"] == metric]
    return vals[-1] if vals else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    runs = [run(name, a.steps, a.every, a.seed) for name in ("SGD", "DDCAdam", "Adam")]
    if a.json:
        print(json.dumps({"runs": runs}, indent=2, default=float))
        return
    for r in runs:
        print(f"{r['optimiser']}: t {r['t_start']:.2f} -> {r['t_end']:.3f}, off-approach weight {r['off_axis']:.3f}; "
              f"gauge drift ratio {r['drift_ratio']:.2g}"
              f"{' (flagged)' if r['gauge_drift_flag'] else ''}; ladder {'holds' if r['ladder_ok'] else 'broken'}")
        for k, v in r["ladder"].items():
            print(f"    {k}: predicted {v['predicted']:g}, measured {v['measured']} ± {v['se']} (R^2 {v['r2']}) -> {v['verdict']}")
        for f in r["early_warning"]:
            print(f"    early warning at step {f['step']} on {f['layer']}: {f['message']}")


if __name__ == "__main__":
    main()
