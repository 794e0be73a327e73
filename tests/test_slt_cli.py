"""The ``slt`` click group and the devinterp comparison script."""
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ddgraph.cli.slt import slt
from ddgraph.slt import cases, models, report

ROOT = Path(__file__).resolve().parents[1]


def test_demo_prints_tables():
    res = CliRunner().invoke(slt, ["demo"])
    assert res.exit_code == 0, res.output
    assert "Theorem 2" in res.output and "Theorem 89" in res.output


@pytest.fixture
def small_cases(monkeypatch):
    """Cut every case down to its smallest meaningful run so the report renders fast."""
    real = {name: getattr(cases, name) for name in ("dead_unit_network", "fluctuation", "rrr",
                                                    "rrr_grid", "crossings")}
    monkeypatch.setattr(cases, "dead_unit_network",
                        lambda: real["dead_unit_network"](depths=(2,), acts=("linear",)))
    monkeypatch.setattr(cases, "crossings", lambda: real["crossings"](((1, 2), (2, 2))))
    monkeypatch.setattr(cases, "fluctuation", lambda ks, datasets, **kw: real["fluctuation"](
        ks=(1, 2, 3), datasets=300, **kw))
    monkeypatch.setattr(cases, "rrr", lambda: real["rrr"](((2, 2, 1, 0), (3, 3, 3, 0))))
    monkeypatch.setattr(cases, "rrr_grid", lambda max_dim: real["rrr_grid"](2))
    fam, d = models.gmm2_merge(0.3)
    monkeypatch.setattr(cases, "table8", lambda: [cases._spectrum_row(
        "gmm2", fam, fam.theta_star, d, 2, normal_basis=np.eye(2))])
    monkeypatch.setattr(report, "QUICK_COMPARISON_SETTINGS", ((2, 2, 1, 0),))


def test_without_devinterp_the_column_says_why():
    comp = report._comparison(((2, 2, 1, 0),), None)
    assert comp["status"].startswith("not run") and "devinterp" not in comp["rows"][0]


def _script():
    spec = importlib.util.spec_from_file_location("slt_vs_devinterp",
                                                  ROOT / "benchmarks" / "slt_vs_devinterp.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_comparison_script_without_devinterp(monkeypatch, capsys):
    mod = _script()
    monkeypatch.setattr(mod, "devinterp_available", lambda: False)
    monkeypatch.setattr(mod, "QUICK_COMPARISON_SETTINGS", ((2, 2, 1, 0),))
    assert mod.main(["--quick", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["devinterp"] == mod.MISSING
    row = out["rows"][0]
    assert row["aoyagi_lambda"] == "1" and row["ddgraph"]["lambda"] == "1"
    assert "devinterp" not in row


def test_report_reads_saved_devinterp_results(tmp_path, small_cases):
    saved = {"devinterp": "available", "rows": [{
        "M": 2, "N": 2, "H": 1, "r": 0, "devinterp_seconds": 12.5,
        "devinterp": {"llc": 1.5, "llc_std": 0.1, "chains": 2, "steps": 10, "burnin": 2,
                      "n": 100, "batch": 10, "lr": 1e-4, "localization": 10.0}}]}
    src = tmp_path / "di.json"
    src.write_text(json.dumps(saved))
    out = tmp_path / "SLT.md"
    res = CliRunner().invoke(slt, ["report", "--quick", "--out", str(out), "--devinterp-json", str(src)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "1.50 ± 0.10" in text and "12.5" in text
    assert "up to 50%" in text  # |1.5 - 1| / 1, computed from the saved row
    # the document says no more than was measured
    intro = text[:text.index("## 1.")]
    assert "normal directions" in intro and "normal-crossing structure" in intro  # up front, not only in section 9
    assert "consistency check of the pipeline" in text
    assert "SGLD was not tuned" in text and "ddgraph uses the known structure" in text
    assert not re.search(r"± 0\.0*(?![0-9eE])", text), "a standard error rounded to '± 0.0'"
    for heading in ("Theorem 2", "Table 8", "part (a)", "Theorem 89", "Theorem 96",
                    "Aoyagi", "stated numbers"):
        assert heading in text


def test_report_prints_without_out(tmp_path, monkeypatch, small_cases):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(slt, ["report", "--quick"])
    assert res.exit_code == 0, res.output
    assert "Theorem 2" in res.output and "devinterp: not run" in res.output
    assert not list(tmp_path.iterdir()), "the command wrote into the working directory"
