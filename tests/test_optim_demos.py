"""The user-facing demonstrations: cell-A readout, CE drift, the report command."""
import pytest
from click.testing import CliRunner

from ddgraph.cli.ddcadam import ddcadam
from ddgraph.optim.cell_a import readout, trajectory
from ddgraph.optim.drift import run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name,rotated,expected", [
    ("SGD", False, 2.0), ("DDCAdam", False, 2.0), ("DDCAdam", True, 2.0), ("SGD", True, 4.0),
    ("Adam", True, 4.0)])
def test_cell_a_readout(name, rotated, expected):
    r = readout(trajectory(name, 300, rotated=rotated))
    assert r["G1"] == pytest.approx(expected, abs=0.02)
    assert r["min_cos"] == 1.0


def test_ce_drift_adam_vs_ddcadam():
    adam, ddc = run("Adam", 100), run("DDCAdam", 100)
    assert adam["logit_shift"] > 1e-2 and adam["row_mean"] > 1e-2
    assert ddc["logit_shift"] < 1e-5 and ddc["relu_balance"] < 1e-3
    assert ddc["test_acc"] > 0.6


def test_report_command_writes_document(tmp_path, monkeypatch):
    import ddgraph.optim.report as report

    monkeypatch.setitem(report.SIZES, "quick", (5, 20, (0,), 60, 32, 2))
    out = tmp_path / "DDCADAM.md"
    result = CliRunner().invoke(ddcadam, ["report", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for heading in ("Equivariance", "Logit-shift drift", "cell A", "Step time"):
        assert heading in text
    assert "ChainedReLURescaleGauge" in text and "quick" in text


def test_report_command_prints_without_out(tmp_path, monkeypatch):
    import ddgraph.optim.report as report

    monkeypatch.setitem(report.SIZES, "quick", (5, 20, (0,), 60, 32, 2))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(ddcadam, ["report", "--quick"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# DDCAdam") and "Step time" in result.output
    assert not list(tmp_path.iterdir()), "the command wrote into the working directory"
