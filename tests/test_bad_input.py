"""The exit-code contract (0 pass, 1 fail, 2 bad input, 3 internal error) and every bad or unusual
input of issue 13: a named message, no traceback, nothing the user passed changed."""
import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import ddgraph
import ddgraph.inspect  # noqa: F401  (the module, patched below)
from ddgraph.cli.main import main
from ddgraph.errors import NothingToCheck, OptionError, ProbeError, StochasticModelError, TraceError

FIX = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIX))
import bad_models as M  # noqa: E402

T = str(FIX / "bad_models.py")
FAST = ("--samples", "300", "--no-progress")


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _no_trace(monkeypatch):
    """Loading a target fails the test: options must be refused before the model is built or traced."""
    def boom(*a, **k):
        raise AssertionError("the target was loaded before the options were checked")
    monkeypatch.setattr(sys.modules["ddgraph.cli.main"], "load_target", boom)
    monkeypatch.setattr(sys.modules["ddgraph.inspect"], "resolve", boom)


# -- the contract -----------------------------------------------------------------------------------

def test_internal_error_is_one_line_exit_3_and_debug_shows_the_traceback(monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("boom\nsecond line")
    monkeypatch.setattr(sys.modules["ddgraph.api"], "predict", broken)
    res = invoke("predict", "examples/chains.py:deep_linear")
    assert res.exit_code == 3
    assert "internal error" in res.output and "RuntimeError: boom" in res.output and "--debug" in res.output
    assert "Traceback" not in res.output and "second line" not in res.output
    res = invoke("--debug", "predict", "examples/chains.py:deep_linear")
    assert res.exit_code == 3 and "Traceback" in res.output and "broken" in res.output


def test_bad_input_is_exit_2_and_usage_errors_stay_2():
    res = invoke("predict", "examples/nope.py:x")
    assert res.exit_code == 2 and "no file" in res.output and "Traceback" not in res.output
    assert invoke("predict").exit_code == 2  # click: missing argument
    assert invoke("diff", "examples/chains.py:deep_linear", "--samples", "x").exit_code == 2


# -- options checked before the trace ---------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (("--grid", "a,b,c"), "expected numbers"),
    (("--grid", "geom:1e-2:1e-4"), "geom:HI:LO:N"),
    (("--grid", "1e-3,1e-3,1e-3"), "repeated t value"),
    (("--grid", "1e-3,2,1e-4"), "in (0, 1)"),
    (("--grid", "1e-2,1e-3"), "at least 3"),
    (("--samples", "0"), "--samples 0"),
])
def test_probe_options_refused_before_the_trace(monkeypatch, args, message):
    _no_trace(monkeypatch)
    for cmd in ("diff", "probe"):
        res = invoke(cmd, "examples/chains.py:deep_linear", "--no-progress", *args)
        assert res.exit_code == 2, res.output
        assert message in res.output and "Traceback" not in res.output


def test_api_refuses_duplicate_and_out_of_range_grids_before_tracing():
    model, x = M.data_dependent()  # would fail to trace: the grid is refused first
    for bad in ([1e-3, 1e-3, 1e-3], [1e-2, 1e-3, 1e-3, 1e-4], [0.5, 2.0, 1e-3], [1e-2, 0.0, 1e-3]):
        with pytest.raises(OptionError) as info:
            ddgraph.check(model, x, grid=bad, n_samples=100, progress=False)
        assert isinstance(info.value, ProbeError)  # still a ProbeError for callers that catch that
        with pytest.raises(OptionError):
            ddgraph.probe(model, x, grid=bad, n_samples=100, progress=False)
    with pytest.raises(OptionError, match="samples"):
        ddgraph.check(model, x, n_samples=0, progress=False)


def test_output_paths_refused_before_the_trace(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    _no_trace(monkeypatch)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    res = invoke("diff", "examples/chains.py:deep_linear", *FAST, "--plot", str(a_file / "figs"))
    assert res.exit_code == 2 and "--plot" in res.output and "not a directory" in res.output
    res = invoke("diff", "examples/chains.py:deep_linear", *FAST, "--plot", str(a_file))
    assert res.exit_code == 2 and "is a file" in res.output  # click's own check of the path
    res = invoke("graph", "examples/chains.py:deep_linear", "--dot", str(tmp_path / "missing" / "g.dot"))
    assert res.exit_code == 2 and "does not exist" in res.output and "--dot" in res.output
    res = invoke("inspect", "examples/blocks.py:layernorm_chain", "--plot", str(tmp_path / "missing" / "x.png"))
    assert res.exit_code == 2 and "does not exist" in res.output and "--plot" in res.output
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("rows", ["0", "1"])
def test_inspect_rows_below_two_refused(monkeypatch, rows):
    _no_trace(monkeypatch)
    res = invoke("inspect", "examples/blocks.py:layernorm_chain", "--rows", rows)
    assert res.exit_code == 2 and f"--rows {rows}" in res.output and "Traceback" not in res.output


def test_inspect_api_refuses_one_row():
    from ddgraph.inspect import InspectError, inspect

    model, x = M.layernorm()
    with pytest.raises(InspectError, match="at least 2"):
        inspect(model, x, n=1)


def test_document_commands_check_out_and_only(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    res = invoke("conformance", "--quick", "--only", "no-such-claim")
    assert res.exit_code == 2 and "no claim id" in res.output
    res = invoke("conformance", "--quick", "--out", str(a_file / "C.md"))
    assert res.exit_code == 2 and "--out" in res.output
    res = invoke("ddcadam", "report", "--quick", "--threads", "0")
    assert res.exit_code == 2 and "--threads" in res.output
    res = invoke("architectures", "--only", "NoSuchNet")
    assert res.exit_code == 2 and "no such model" in res.output


# -- wrong answers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("target,extra", [("head1", ()), ("width8", ("--directions", "8"))])
def test_every_coordinate_dead_is_measured_and_said(target, extra):
    res = invoke("diff", f"{T}:{target}", *FAST, *extra)
    assert "RuntimeError" not in res.output and "internal error" not in res.output
    assert res.exit_code == 0, res.output
    assert "no bulk" in res.output and "no Schur complement" in res.output


def test_train_mode_dropout_is_probed_in_eval_form_with_a_note():
    model, x = M.dropout()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    d = ddgraph.check(model, x, n_samples=300, progress=False)
    assert not d.measurement.moved and d.ok
    assert any("dropout in training mode" in n for n in d.measurement.notes)
    assert model.training and model[2].training  # the user's model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    res = invoke("diff", f"{T}:dropout", *FAST)
    assert res.exit_code == 0 and "engine bug" not in res.output and "probed with dropout off" in res.output
    model.eval()
    assert not ddgraph.check(model, x, n_samples=300, progress=False).measurement.notes


def test_inspect_reads_a_train_mode_dropout_model_deterministically():
    from ddgraph.inspect import inspect

    model, x = M.layernorm_dropout()
    torch.manual_seed(1)
    first = inspect(model, x, n=64)
    torch.manual_seed(2)  # another global RNG state: a live dropout mask would change the numbers
    second = inspect(model, x, n=64)
    assert first.norms == second.norms and model.training and model[1].training


def test_other_random_ops_are_refused_by_name():
    model, x = M.noisy()
    with pytest.raises(StochasticModelError, match="randn_like"):
        ddgraph.check(model, x, n_samples=300, progress=False)
    res = invoke("diff", f"{T}:noisy", *FAST)
    assert res.exit_code == 2 and "StochasticModelError" in res.output and "engine bug" not in res.output


def test_nothing_to_check_is_not_success():
    model, x = M.no_weights()
    with pytest.raises(NothingToCheck, match="nothing to check"):
        ddgraph.check(model, x, n_samples=300, progress=False)
    res = invoke("diff", f"{T}:no_weights", *FAST)
    assert res.exit_code == 2 and "nothing to check" in res.output and "every in-reach node passes" not in res.output
    res = invoke("inspect", f"{T}:head1")
    assert res.exit_code == 2 and "nothing to check" in res.output


# -- messages ---------------------------------------------------------------------------------------

def _ckpt_run(path):
    return invoke("inspect", str(path), "--model", f"{T}:layernorm")


def test_checkpoint_that_does_not_fit_names_its_keys(tmp_path):
    model, _ = M.layernorm()
    sd = dict(model.state_dict())
    sd["extra.weight"] = torch.zeros(2)
    del sd["0.bias"]
    sd["2.weight"] = torch.zeros(5, 8)
    torch.save(sd, tmp_path / "misfit.pt")
    res = _ckpt_run(tmp_path / "misfit.pt")
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "missing keys: 0.bias" in text and "unexpected keys: extra.weight" in text
    assert "2.weight (5, 8) vs (3, 8)" in text


def test_legacy_truncated_and_corrupt_checkpoints(tmp_path):
    from ddgraph.inspect import InspectError, load_checkpoint

    model, _ = M.layernorm()
    torch.save(model.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert set(load_checkpoint(tmp_path / "legacy.pt")) == set(model.state_dict())  # the legacy format loads
    assert _ckpt_run(tmp_path / "legacy.pt").exit_code == 0
    torch.save(model.state_dict(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InspectError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "trunc.pt")
    legacy = (tmp_path / "legacy.pt").read_bytes()
    (tmp_path / "trunc_legacy.pt").write_bytes(legacy[: len(legacy) // 2])
    with pytest.raises(InspectError, match="legacy-format.*truncated or corrupt"):
        load_checkpoint(tmp_path / "trunc_legacy.pt")
    res = _ckpt_run(tmp_path / "trunc.pt")
    assert res.exit_code == 2 and "truncated or corrupt" in res.output


def test_non_finite_values_name_the_first_node():
    model, x = M.log()
    d = ddgraph.check(model, x, n_samples=300, progress=False)
    assert d.measurement.nan and set(d.measurement.nan.values()) == {"log"}
    res = invoke("diff", f"{T}:log", *FAST)
    assert "first at node log" in res.output and "first at node output" not in res.output


def test_data_dependent_if_prints_only_the_useful_lines(capfd):
    model, x = M.data_dependent()
    capfd.readouterr()
    with pytest.raises(TraceError, match="control flow"):
        ddgraph.trace(model, x)
    out, err = capfd.readouterr()
    assert "def forward" not in out + err and "symbolic_shapes" not in out + err


def test_shared_weight_gets_a_figure_per_row_and_runs_do_not_mix(tmp_path):
    pytest.importorskip("matplotlib")
    res = invoke("diff", f"{T}:shared", *FAST, "--plot", str(tmp_path))
    assert res.exit_code == 0, res.output
    figures = json.loads((tmp_path / "ddgraph-figures.json").read_text())["figures"]
    assert len(figures) == len(set(figures)) == 4  # the ladder, a.weight twice, b.weight
    assert all((tmp_path / f).exists() for f in figures) and f"wrote {len(figures)} figures" in res.output
    res = invoke("diff", f"{T}:head1", *FAST, "--plot", str(tmp_path))
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    assert "did not write" in text and "node_b.weight.png" in text
    assert json.loads((tmp_path / "ddgraph-figures.json").read_text())["figures"] == [
        "ladder.png", "node_0.weight.png", "node_2.weight.png"]
