"""Packaging: data frames, optional dependencies named by their extra, the progress bar, py.typed."""
import importlib
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ddgraph
from ddgraph._optional import ProgressBar, track
from ddgraph.errors import DDGraphError, MissingDependency
from ddgraph.models import zoo
from ddgraph.output.frames import DIFF_COLUMNS, MEASUREMENT_COLUMNS, PREDICTION_COLUMNS

pd = pytest.importorskip("pandas")
FAST = dict(n_samples=1500, grid=[1e-2, 1e-3, 1e-4, 1e-5], progress=False)


@pytest.fixture(scope="module")
def block_diff():
    """A transformer block: weights, LayerNorm kernels and residual-stream sites all measured."""
    torch.manual_seed(0)
    model, inputs = importlib.import_module("attention").transformer_block()
    return ddgraph.check(model, inputs, **FAST)


def test_prediction_frame_has_one_row_per_ladder_row():
    pred = ddgraph.predict(zoo.Shift(), torch.randn(4, 8))
    df = pred.to_frame()
    assert isinstance(df, pd.DataFrame) and tuple(df.columns) == PREDICTION_COLUMNS
    assert len(df) == len(pred.nodes)
    assert list(df["param"]) == [n.param for n in pred.nodes]
    assert list(df["status"]) == [n.status for n in pred.nodes]
    in_reach, bracket = df.iloc[0], df.iloc[1]
    assert in_reach["a_rate"] == pred.nodes[0].a_rate and in_reach["g_rate"] == pred.nodes[0].g_rate
    assert bracket["status"] == "bracket" and math.isnan(bracket["a_rate"])
    assert (bracket["a_lo"], bracket["a_hi"]) == pred.nodes[1].a_rates[0]


def test_diff_frame_has_one_row_per_check(block_diff):
    df = block_diff.to_frame()
    assert tuple(df.columns) == DIFF_COLUMNS and len(df) == len(block_diff.checks)
    assert set(df["observable"]) == {c.observable for c in block_diff.checks}
    primary = df[df["observable"] == "dd"]
    assert len(primary) == len(block_diff.primary)
    assert primary["verdict"].value_counts().to_dict() == block_diff.summary()
    first = block_diff.checks[0]
    row = df.iloc[0]
    assert row["node"] == first.node and row["verdict"] == first.verdict and row["tol"] == first.tol
    assert row["measured"] == pytest.approx(first.fit.slope, nan_ok=True)


def test_measurement_frame_has_one_row_per_measured_value(block_diff):
    m = block_diff.measurement
    df = m.to_frame()
    assert tuple(df.columns) == MEASUREMENT_COLUMNS
    n_weight = sum(len(v) for s in m.weights.values() for obs in s.series.values()
                   for by_dir in obs.values() for v in by_dir.values())
    n_ln = sum(len(r["ratio"]) + len(r["rayleigh"]) + len(r["cosine"]) for r in m.ln.values())
    n_stream = sum(len(v) for v in m.streams.values())
    assert n_ln and n_stream
    assert len(df) == n_weight + n_ln + n_stream
    assert df["site"].value_counts().to_dict() == {"weight": n_weight, "ln": n_ln, "stream": n_stream}
    assert set(df["t"]) == set(m.grid)
    node, s = next(iter(m.weights.items()))
    sel = df[(df["node"] == node) & (df["factor"] == "A") & (df["observable"] == "dd") & (df["direction"] == 1)]
    assert list(sel["value"]) == pytest.approx(s.series["A"]["dd"][1], nan_ok=True)


@pytest.mark.parametrize("module,extra,call", [
    ("pandas", "frames", lambda: ddgraph.predict(zoo.chain(2), torch.randn(4, 8)).to_frame()),
    ("matplotlib", "plot", lambda: importlib.import_module("ddgraph.output.plots").write_plots(None, "unused")),
])
def test_a_missing_optional_dependency_names_its_extra(monkeypatch, tmp_path, module, extra, call):
    monkeypatch.chdir(tmp_path)
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import raises ModuleNotFoundError
    with pytest.raises(MissingDependency, match=rf"pip install {module}.*ddgraph\[{extra}\]") as info:
        call()
    assert isinstance(info.value, ImportError) and isinstance(info.value, DDGraphError)
    assert not (tmp_path / "unused").exists()


def test_import_and_predict_need_no_optional_dependency():
    code = ("import sys, torch, ddgraph, ddgraph.cli\n"
            "from ddgraph.models import zoo\n"
            "ddgraph.predict(zoo.chain(2), torch.randn(4, 8))\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'scipy', 'pandas'}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_progress_bar_is_quiet_off_a_terminal_or_when_disabled(capfd):
    for enabled in (True, False):
        bar = ProgressBar(3, "probe", enabled=enabled, unit="chunk")
        for _ in range(3):
            bar.update(1)
        bar.close()
    assert list(track(range(4), "slt report")) == [0, 1, 2, 3]
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_package_is_typed():
    assert (Path(ddgraph.__file__).parent / "py.typed").is_file()


class ShapeBranch(torch.nn.Module):
    """fx cannot branch on a traced shape; torch.export specialises it."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8, bias=False)

    def forward(self, x):
        return self.fc(x) if x.shape[-1] == 8 else x


def test_library_messages_go_through_logging(caplog, capfd, tmp_path):
    with caplog.at_level("INFO", logger="ddgraph"):
        g = ddgraph.trace(ShapeBranch(), torch.randn(4, 8))
    assert g.tracer == "export"
    assert any(r.name == "ddgraph.frontend.tracing" and "trying torch.export" in r.getMessage() for r in caplog.records)
    builtin = ddgraph.RuleSet.load().rules[0]
    (tmp_path / Path(builtin.source).name).write_text(Path(builtin.source).read_text())
    caplog.clear()
    with caplog.at_level("INFO", logger="ddgraph"):
        rs = ddgraph.RuleSet.load(tmp_path)
    assert rs.overridden and any(r.name == "ddgraph.core.rules" and "overrides" in r.getMessage()
                                 for r in caplog.records)
    caplog.clear()
    ddgraph.trace(ShapeBranch(), torch.randn(4, 8))  # no handler configured: nothing printed
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("args", [("diff", "examples/chains.py:deep_linear", "--no-progress", "--plot", "figs"),
                                  ("inspect", "examples/blocks.py:layernorm_chain", "--plot", "figs/x.png")])
def test_cli_names_a_missing_extra_before_running(monkeypatch, args):
    from click.testing import CliRunner

    from ddgraph.cli.main import main

    module, extra = "matplotlib", "plot"
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 2 and f"'ddgraph[{extra}]'" in res.output, res.output
    assert "Traceback" not in res.output and not Path("figs").exists()
