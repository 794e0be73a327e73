"""Algorithm 1's task-expansion setup, watched by ddgraph.monitor.

A classifier (encoder ``Linear-ReLU-Linear-ReLU``, head ``Linear``) learns the first classes of a Gaussian
mixture; at ``expansion_step`` its head grows to cover every class (old rows kept, new rows randomly
initialised, encoder reused) and training goes on over all classes. The monitor reads the K-FAC factors
every ``--every`` steps; its task-expansion flag should fire at the first reading after the expansion, at
the head first.

    python examples/task_expansion.py --json
"""
from __future__ import annotations

import argparse
import json
import tempfile

import torch
from torch import nn

from ddgraph.monitor import Cadence, Monitor

DIM, HIDDEN, OLD, NEW = 16, 32, 3, 3


class Classifier(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU())
        self.head = nn.Linear(HIDDEN, classes)

    def forward(self, x):
        return self.head(self.encoder(x))

    def expand(self, classes: int, generator: torch.Generator) -> None:
        """Grow the head to ``classes`` outputs: old rows kept, new rows drawn like a fresh nn.Linear."""
        old = self.head
        new = nn.Linear(old.in_features, classes)
        bound = 1 / old.in_features**0.5
        with torch.no_grad():
            new.weight.uniform_(-bound, bound, generator=generator)
            new.bias.uniform_(-bound, bound, generator=generator)
            new.weight[: old.out_features] = old.weight
            new.bias[: old.out_features] = old.bias
        self.head = new


def batches(classes: int, size: int, gen: torch.Generator):
    """Endless batches of the mixture restricted to the first ``classes`` classes (means fixed)."""
    means = torch.randn(OLD + NEW, DIM, generator=torch.Generator().manual_seed(7)) * 1.5
    while True:
        y = torch.randint(0, classes, (size,), generator=gen)
        yield means[y] + torch.randn(size, DIM, generator=gen), y


def run(steps: int = 600, expansion_step: int = 300, every: int = 20, seed: int = 0, logdir: str | None = None,
        lr: float = 0.05) -> dict:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = Classifier(OLD)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    logdir = logdir or tempfile.mkdtemp(prefix="ddgraph-expansion-")
    # the baseline spans 160 steps of the 300-step old-task phase, in steps, so any reading cadence sees the same one
    cadence = Cadence(factor_every=every, factor_batch_every=1, stream_every=every, baseline_steps=160, warmup_steps=60)
    mon = Monitor(model, opt, logdir=logdir, cadence=cadence)
    data = batches(OLD, 64, gen)
    for step in range(steps):
        if step == expansion_step:
            model.expand(OLD + NEW, gen)
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            mon.rewire(opt)
            data = batches(OLD + NEW, 64, gen)
        x, y = next(data)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        mon.log(loss=loss.item())
    mon.close()
    first = {}  # layer -> its first task-expansion flag
    for f in mon.flags:
        if f.kind == "task-expansion":
            first.setdefault(f.layer, f)
    # the origin of the signal: the earliest flag, and at one reading the largest jump (Algorithm 1 (b))
    origin = min(first.values(), key=lambda f: (f.step, -f.evidence["ratio"])) if first else None
    return {"expansion_step": expansion_step, "flagged_step": origin.step if origin else None,
            "first_layer": origin.layer if origin else None, "reading_every": every,
            "flagged_layers": {k: {"step": f.step, "ratio": f.evidence["ratio"]} for k, f in first.items()},
            "depth_order": [n for n in mon.factors.layers], "flags": [f.as_dict() for f in mon.flags],
            "logdir": logdir}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--expansion-step", type=int, default=300)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--logdir", default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    out = run(a.steps, a.expansion_step, a.every, a.seed, a.logdir)
    if a.json:
        print(json.dumps(out, indent=2, default=float))
        return
    print(f"head expanded at step {out['expansion_step']}; task-expansion flag first at step {out['flagged_step']} "
          f"on {out['first_layer']} (readings every {out['reading_every']} steps); log in {out['logdir']}")
    for f in out["flags"]:
        print(f"  step {f['step']:5d}  {f['kind']:15s} {f['layer']:12s} {f['message']}")


if __name__ == "__main__":
    main()
