"""Nothing the user passes changes (issue 13): parameters, buffers, flags, requires_grad, inputs.

Each model below updates its own state when its forward runs (buffers written in place, a
train-mode BatchNorm's statistics and ``num_batches_tracked``, train-mode Dropout, a frozen weight,
a submodule in eval mode); ddgraph runs that forward while tracing, so every entry point is checked
against a full snapshot taken before the call.
"""
import importlib.util
import itertools
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import ddgraph
import ddgraph.frontend.target as target_mod
from ddgraph.errors import DDGraphError
from ddgraph.inspect import inspect

cli_main = importlib.import_module("ddgraph.cli.main")  # the module (ddgraph.cli re-exports the command)
_spec = importlib.util.spec_from_file_location("stateful", Path(__file__).parent / "fixtures" / "stateful.py")
stateful = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stateful)

FACTORIES = ["buffers", "batchnorm_train", "batchnorm_eval", "dropout_train", "layernorm", "writes_input"]
PROBE = dict(n_samples=256, grid=[1e-2, 3e-3, 1e-3], progress=False)


def _tensor(t: torch.Tensor):
    return t.detach().clone(), t.dtype, t.device, t.requires_grad, t._version, id(t)


def snapshot(model, inputs) -> dict:
    named = itertools.chain(model.named_parameters(remove_duplicate=False),
                            model.named_buffers(remove_duplicate=False))
    return {"tensors": {name: _tensor(t) for name, t in named},
            "training": {name: m.training for name, m in model.named_modules()},
            "attributes": {name: sorted(vars(m)) for name, m in model.named_modules()},
            "inputs": [_tensor(x) for x in inputs]}


def assert_unchanged(before: dict, model, inputs) -> None:
    after = snapshot(model, inputs)
    assert after["training"] == before["training"], "a train/eval flag changed"
    assert after["attributes"] == before["attributes"], "attributes were added to or removed from a module"
    assert after["tensors"].keys() == before["tensors"].keys(), "parameters or buffers were added or removed"
    for name, (value, *meta) in before["tensors"].items():
        now, *meta_now = after["tensors"][name]
        assert meta_now == meta, f"{name}: dtype, device, requires_grad, version or identity changed"
        assert torch.equal(now, value), f"{name}: its value changed"
    for k, ((value, *meta), (now, *meta_now)) in enumerate(zip(before["inputs"], after["inputs"])):
        assert meta_now == meta and torch.equal(now, value), f"example input {k} changed"


def _forward_changes_state(factory: str) -> bool:
    """The fixture really is stateful: one forward of it changes the snapshot (else the test is empty)."""
    model, inputs = getattr(stateful, factory)()
    before = snapshot(model, inputs)
    model(*inputs)
    try:
        assert_unchanged(before, model, inputs)
    except AssertionError:
        return True
    return False


CALLS = {
    "predict": lambda m, x: ddgraph.predict(m, x),
    "probe": lambda m, x: ddgraph.probe(m, x, **PROBE),
    "check": lambda m, x: ddgraph.check(m, x, **PROBE),
    "inspect": lambda m, x: inspect(m, x, n=64),
}


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize("call", list(CALLS))
def test_api_leaves_the_model_and_inputs_unchanged(factory, call):
    if factory == "writes_input" and call in ("probe", "check"):
        pytest.skip("the probe cannot run a forward that writes its input in place (a leaf that requires grad)")
    model, inputs = getattr(stateful, factory)()
    before = snapshot(model, inputs)
    try:
        CALLS[call](model, inputs)
    except DDGraphError:
        pass  # a refused model must be left as untouched as an accepted one
    assert_unchanged(before, model, inputs)


@pytest.mark.parametrize("factory", ["buffers", "batchnorm_train", "layernorm", "writes_input"])
def test_fixture_forward_is_stateful(factory):
    assert _forward_changes_state(factory)


def test_trace_with_every_tracer_leaves_the_model_unchanged():
    for tracer in ("fx", "export"):
        model, inputs = stateful.buffers()
        before = snapshot(model, inputs)
        graph = ddgraph.trace(model, inputs, tracer=tracer)
        assert graph.tracer == tracer
        assert_unchanged(before, model, inputs)


def test_inspect_leaves_a_calibration_batch_unchanged():
    model, inputs = stateful.writes_input()
    calibration = torch.randn(16, 4, dtype=torch.float64)
    before = snapshot(model, (calibration,))
    inspect(model, inputs, calibration=calibration)
    assert_unchanged(before, model, (calibration,))


def test_tracing_keeps_the_train_mode_semantics():
    """The user's flags stay put, and the graph is the forward the model runs in its own mode."""
    for tracer in ("fx", "export"):
        model, inputs = stateful.dropout_train()
        graph = ddgraph.label(ddgraph.trace(model, inputs, tracer=tracer))
        assert model.training and model.drop.training
        gm = graph.gm.double()
        x = torch.ones(64, 4, dtype=torch.float64)
        assert not torch.equal(gm(x), gm(x))  # train-mode dropout: two runs differ


def test_parameters_are_shared_not_copied():
    """The traced graph reads the user's parameters (no weight memory); its buffers are its own."""
    model, inputs = stateful.buffers()
    graph = ddgraph.trace(model, inputs, tracer="fx")
    assert graph.gm.a.weight is model.a.weight
    assert graph.gm.get_buffer("ema") is not model.ema


def test_a_forward_writing_a_parameter_traces_a_copy():
    class Writes(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)

        def forward(self, x):
            with torch.no_grad():
                next(self.parameters()).mul_(2.0)
            return self.b(torch.relu(self.a(x)))

    model, inputs = Writes(), (torch.randn(2, 4),)
    before = snapshot(model, inputs)
    graph = ddgraph.trace(model, inputs, tracer="fx")
    assert_unchanged(before, model, inputs)
    assert graph.gm.a.weight is not model.a.weight
    assert torch.equal(graph.gm.a.weight, 2 * model.a.weight)  # the trace saw the forward's write


def test_meta_model_traces_without_copying_weights():
    with torch.device("meta"):
        model = stateful.BatchNormNet().train()
    graph = ddgraph.trace(model, (torch.randn(8, 4),))
    assert all(p.device.type == "meta" for p in graph.gm.parameters())
    assert {id(p) for p in graph.gm.parameters()} <= {id(p) for p in model.parameters()}
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("factory", ["buffers", "batchnorm_train", "dropout_train", "layernorm"])
@pytest.mark.parametrize("command", [
    ["predict"],
    ["probe", "--samples", "256", "--grid", "1e-2,3e-3,1e-3", "--no-progress"],
    ["diff", "--samples", "256", "--grid", "1e-2,3e-3,1e-3", "--no-progress"],
    ["inspect", "--rows", "64"],
])
def test_cli_leaves_the_factorys_model_unchanged(factory, command, monkeypatch):
    made = []
    real = target_mod.load_target

    def load(target):
        model, inputs, name = real(target)
        made.append((model, inputs, snapshot(model, inputs)))
        return model, inputs, name

    monkeypatch.setattr(cli_main, "load_target", load)
    monkeypatch.setattr(target_mod, "load_target", load)
    res = CliRunner().invoke(cli_main.main, [command[0], f"tests/fixtures/stateful.py:{factory}", *command[1:]])
    assert res.exit_code in (0, 1, 2), res.output
    assert "Traceback" not in res.output
    assert len(made) == 1
    model, inputs, before = made[0]
    assert_unchanged(before, model, inputs)
