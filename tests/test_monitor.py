"""ddgraph.monitor: the tiers read what they claim, leave the model alone, stay bounded, and fail clearly."""
import copy
import json
import math
import sys

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from ddgraph.cli import main
from ddgraph.errors import MissingDependency, MonitorError
from ddgraph.models.zoo import PreNormTransformer
from ddgraph.monitor import Cadence, Monitor, read_flags, read_scalars
from ddgraph.monitor.logs import read_rows

pytestmark = pytest.mark.usefixtures("one_thread")


class ResidualMLP(nn.Module):
    def __init__(self, width=8, depth=2, classes=3):
        super().__init__()
        self.inp = nn.Linear(6, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU())
                                    for _ in range(depth))
        self.bn = nn.BatchNorm1d(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        h = self.inp(x)
        for b in self.blocks:
            h = h + b(h)
        return self.head(self.bn(h))


def train(model, opt, steps, mon=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(32, 6, generator=gen)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if mon is not None:
            mon.log(loss=loss.item())


def test_monitor_reads_every_tier_and_does_not_change_training(tmp_path):
    torch.manual_seed(0)
    a = ResidualMLP()
    b = copy.deepcopy(a)
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.05), torch.optim.SGD(b.parameters(), lr=0.05)
    cad = Cadence(stream_every=5, factor_every=10, factor_batch_every=2, window=4, warmup=2)
    mon = Monitor(a, opt_a, logdir=tmp_path, cadence=cad)
    train(a, opt_a, 40, mon)
    mon.close()
    train(b, opt_b, 40)
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):  # parameters and BatchNorm buffers
        assert torch.equal(p, q), n
    assert not any(m._forward_hooks for m in a.modules())  # close removed every hook
    rows = read_rows(tmp_path)
    stream_steps = sorted({r["step"] for r in rows if r["tier"] == "stream"})
    assert stream_steps == list(range(0, 40, 5))
    assert {r["layer"] for r in rows if r["tier"] == "stream"} == {"blocks.0", "blocks.1"}
    norms = [r for r in rows if r["tier"] == "norm" and r["metric"] == "kernel_ratio"]
    assert {r["layer"] for r in norms} == {"blocks.0.0", "blocks.1.0"}
    assert max(r["value"] for r in norms) < 1e-10  # Prop 63, at every reading
    factor_steps = sorted({r["step"] for r in rows if r["tier"] == "factor"})
    assert factor_steps == [9, 19, 29, 39]
    assert {r["layer"] for r in rows if r["tier"] == "factor"} >= {"inp/A", "head/G", "blocks.1.1/G"}
    head_floor = [r["value"] for r in rows if r["layer"] == "head/G" and r["metric"] == "n_floor"]
    assert all(v >= 1 for v in head_floor)  # cross-entropy's logit-shift gauge: an exact zero of G at the head
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["blocks"] == ["blocks.0", "blocks.1"] and info["cadence"]["factor_every"] == 10


def test_memory_is_bounded_by_the_window(tmp_path):
    model = ResidualMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    cad = Cadence(stream_every=50, factor_every=2, factor_batch_every=1, window=4, warmup=2, baseline_steps=8,
                  warmup_steps=4)
    mon = Monitor(model, opt, logdir=tmp_path, cadence=cad, tensorboard=False)
    train(model, opt, 60)
    assert all(len(h) <= 4 for h in mon.collapse.history.values())
    assert all(len(h) <= cad.baseline_steps // cad.factor_every + 1 for h in mon.expansion.history.values())
    assert all(acc.n_a <= 32 for acc in mon.factors.acc.values())  # reset at every reading
    mon.close()


def test_expected_fisher_leaves_the_model_alone(tmp_path):
    model = ResidualMLP().train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    before = copy.deepcopy(model.state_dict())
    mon = Monitor(model, None, logdir=tmp_path, tensorboard=False)
    out = mon.expected(torch.randn(256, 6), loss="ce", generator=torch.Generator().manual_seed(0))
    mon.close()
    assert model.training and all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert out["head"]["G"].n_floor == 1 and out["head"]["A"].n_floor == 0  # the CE gauge zero, nothing else
    assert {r["tier"] for r in read_rows(tmp_path)} == {"expected"}


def test_rank_collapse_is_quiet_on_a_stationary_run(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    cad = Cadence(factor_every=20, factor_batch_every=1, baseline_steps=160, warmup_steps=60)
    mon = Monitor(model, opt, logdir=tmp_path, cadence=cad)
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, 2, generator=gen)
    for _ in range(600):
        x = torch.randn(64, 6, generator=gen)
        opt.zero_grad()
        ((model(x) - x @ w - torch.randn(64, 2, generator=gen)) ** 2).mean().backward()
        opt.step()
    mon.close()
    assert mon.flags == []
    assert read_flags(tmp_path) == []


def test_task_expansion_is_flagged_at_the_expansion_and_at_the_head():
    from task_expansion import run

    out = run(steps=360, expansion_step=200, every=20)
    assert out["expansion_step"] < out["flagged_step"] <= out["expansion_step"] + out["reading_every"]
    assert out["first_layer"] == "head"
    assert all(f["step"] > out["expansion_step"] for f in out["flags"] if f["kind"] == "task-expansion")
    ratios = {k: v["ratio"] for k, v in out["flagged_layers"].items()}
    assert ratios["head"] == max(ratios.values())


@pytest.mark.parametrize("every", [2, 20])
def test_task_expansion_flag_does_not_depend_on_the_cadence(every):
    # the baseline is a stretch of training steps, not a number of readings: a fine cadence's readings
    # (each an average over fewer batches) must not raise the flag before the expansion
    from task_expansion import run

    out = run(steps=240, expansion_step=200, every=every)
    steps = [f["step"] for f in out["flags"] if f["kind"] == "task-expansion"]
    assert steps and min(steps) > out["expansion_step"], steps
    assert out["flagged_step"] < out["expansion_step"] + every


def test_teacher_student_ladder_warning_and_gauge_drift():
    from teacher_student import run

    sgd, ddc, adam = (run(name, steps=1500) for name in ("SGD", "DDCAdam", "Adam"))
    assert sgd["ladder_ok"], sgd["ladder"]  # Cor 86 on the SGD trajectory, against ddgraph's predicted ladder
    assert sgd["early_warning"] and sgd["early_warning"][0]["evidence"]["drop"] >= Cadence().collapse
    assert adam["gauge_drift_flag"] and not sgd["gauge_drift_flag"] and not ddc["gauge_drift_flag"]
    assert ddc["drift_ratio"] < sgd["drift_ratio"] < adam["drift_ratio"]
    # where DDCAdam's readout breaks, the run left the canonical approach (Cor 86's hypothesis), and says so
    assert ddc["ladder_ok"] or ddc["off_axis"] > 0.1


def test_transformer_stream_profile():
    from transformer_stream import run

    out = run(steps=120, every=20, depth=2)
    assert out["blocks"] == ["blocks.0", "blocks.1"]
    assert len(out["profile"]) == 6 and all(v is not None and v > 0 for vals in out["profile"].values() for v in vals)
    assert out["ln_kernel_ratio_max"] < 1e-10 and out["ln_null_dim_max"] >= 1
    assert out["loss_end"] < out["loss_start"]


def test_report_command(tmp_path):
    model = PreNormTransformer(depth=2, width=16, heads=2, vocab=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mon = Monitor(model, opt, logdir=tmp_path / "log", cadence=Cadence(stream_every=2, factor_every=4, factor_batch_every=1,
                                                                      window=4, warmup=2), parquet=True)
    for _ in range(12):
        ids = torch.randint(0, 8, (4, 5))
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(ids).reshape(-1, 8), ids.reshape(-1))
        loss.backward()
        opt.step()
        mon.log(loss=loss.item())
    mon.close()
    assert list((tmp_path / "log").glob("events.out.tfevents.*"))  # TensorBoard is installed here
    frame = read_scalars(tmp_path / "log")
    assert len(frame) == len(read_rows(tmp_path / "log"))
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "log" / "scalars.parquet")) == len(frame)
    res = CliRunner().invoke(main, ["monitor", "report", str(tmp_path / "log"), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {p.rsplit("/", 1)[-1] for p in out["figures"]} == {"stream.png", "norm.png", "factor.png", "train.png"}
    assert out["steps"] == [0, 11]
    bad = CliRunner().invoke(main, ["monitor", "report", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "no such directory" in bad.output
    (tmp_path / "empty").mkdir()
    bad = CliRunner().invoke(main, ["monitor", "report", str(tmp_path / "empty")])
    assert bad.exit_code == 2 and "scalars.csv" in bad.output


@pytest.mark.parametrize("kwargs,match", [
    ({"layers": ["blocks.0"]}, "not an nn.Linear"),
    ({"blocks": ["nope"]}, "not a module"),
    ({"norms": ["head"]}, "not an nn.LayerNorm"),
    ({"cadence": "fast"}, "Cadence"),
    ({"axis": 3.0}, "callable"),
])
def test_bad_options_are_named(tmp_path, kwargs, match):
    model = ResidualMLP()
    with pytest.raises(MonitorError, match=match):
        Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1), logdir=tmp_path, **kwargs)


@pytest.mark.parametrize("kwargs,match", [({"window": 3}, "at least 4"), ({"spike": 0.5}, "> 1"),
                                          ({"factor_every": 0}, ">= 1"), ({"warmup": 8}, "below window"),
                                          ({"warmup_steps": 1600}, "below baseline_steps")])
def test_bad_cadence_is_named(kwargs, match):
    with pytest.raises(MonitorError, match=match):
        Cadence(**kwargs)


def test_bad_axis_and_directions_are_named_at_the_reading(tmp_path):
    model = ResidualMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cad = Cadence(factor_every=2, factor_batch_every=1, window=4, warmup=2)
    mon = Monitor(model, opt, logdir=tmp_path / "a", cadence=cad, axis=lambda m: -1.0)
    with pytest.raises(MonitorError, match="positive"):
        train(model, opt, 2)
    mon.close()
    mon = Monitor(model, opt, logdir=tmp_path / "b", cadence=cad, directions=lambda m: {("head", "A"): torch.ones(3)})
    with pytest.raises(MonitorError, match="8-dimensional"):
        train(model, opt, 2)
    mon.close()


def test_a_missing_tensorboard_is_named_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    model = ResidualMLP()
    with pytest.raises(MissingDependency, match="monitor"):
        Monitor(model, None, logdir=tmp_path, tensorboard=True)
    mon = Monitor(model, None, logdir=tmp_path / "auto")  # default: TensorBoard only when installed
    assert mon.writer.tb is None
    mon.close()


def test_trainer_callback_drives_a_monitor(tmp_path):
    from types import SimpleNamespace

    from ddgraph.monitor.adapters import lightning_callback, trainer_callback

    model = ResidualMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    cb = trainer_callback(cadence=Cadence(stream_every=1, factor_every=3, factor_batch_every=1, window=4, warmup=2))
    args = SimpleNamespace(output_dir=str(tmp_path))
    cb.on_train_begin(args, None, None, model=model)
    for _ in range(6):
        train(model, opt, 1)
        cb.on_step_end(args, None, None)
        cb.on_log(args, None, None, logs={"loss": 0.5})
    cb.on_train_end(args, None, None)
    rows = read_rows(tmp_path / "ddgraph-monitor")
    assert sorted({r["step"] for r in rows if r["tier"] == "factor"}) == [2, 5]
    assert sum(r["tier"] == "train" for r in rows) == 6
    try:
        import lightning  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(MissingDependency, match="pip install lightning"):
            lightning_callback()


def test_continuity_and_bottom_spectrum_are_read():
    from ddgraph.monitor.spectrum import spectrum

    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    m = q @ torch.diag(torch.tensor([0.0, 1e-3, 1.0, 2.0, 3.0], dtype=torch.float64)) @ q.T
    s = spectrum(m, 2)
    assert s.n_floor == 1 and math.isclose(s.lambda_min, 1e-3, rel_tol=1e-6)
    assert math.isclose(s.continuity(spectrum(m, 2)), 1.0, rel_tol=1e-9)
    assert s.continuity(spectrum(torch.eye(5, dtype=torch.float64) + m, 2)) < 1.0 + 1e-12
    assert s.bottom(2)[1] == pytest.approx(1e-3 / 3)
