"""ddgraph inspect: static LN/RMSNorm kernel checks and the residual-stream profile on real weights."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from ddgraph.cli.main import main
from ddgraph.inspect import InspectError, inspect, load_checkpoint

pytest.importorskip("transformers")
from ddgraph.models import architectures as A  # noqa: E402


def test_layernorm_kernels_hold_and_the_stream_is_profiled():
    model, inputs = A.gpt2_small(layers=2)
    ins = inspect(model, inputs, n=64)
    assert [x["kind"] for x in ins.norms] == ["layernorm"] * 5
    assert all(x["ratio"] < 1e-12 and x["cosine"] > 0.999 for x in ins.norms) and ins.ok
    assert [s["depth"] for s in ins.stream] == [0, 1, 2, 3]
    assert all(0 < s["sigma_min"] <= s["sigma_max"] for s in ins.stream)


def test_rmsnorm_has_no_kernel_direction():
    model, inputs = A.llama_small()
    ins = inspect(model, inputs, n=64)
    assert {x["kind"] for x in ins.norms} == {"rmsnorm"}
    assert all(x["ratio"] > 1e-8 for x in ins.norms) and ins.ok


def test_a_zeroed_gamma_entry_is_still_a_kernel_and_a_broken_claim_fails():
    model, inputs = A.gpt2_small()
    with torch.no_grad():
        model.transformer.ln_f.weight.uniform_(0.5, 2.0)
    ins = inspect(model, inputs, n=64)
    assert ins.ok  # random gamma: the kernel is along 1/gamma, not along the ones vector


def test_checkpoint_roundtrip_and_clear_errors(tmp_path):
    model, _ = A.gpt2_small()
    ckpt = tmp_path / "gpt2.pt"
    torch.save(model.state_dict(), ckpt)
    assert set(load_checkpoint(ckpt)) >= {"transformer.wte.weight"}
    bad = tmp_path / "notes.txt"
    bad.write_text("not a checkpoint")
    with pytest.raises(InspectError, match="not a PyTorch checkpoint"):
        load_checkpoint(bad)
    runner = CliRunner()
    res = runner.invoke(main, ["inspect", str(bad), "--model", "ddgraph.models.architectures:gpt2_small"])
    assert res.exit_code == 2 and "not a PyTorch checkpoint" in res.output
    png = tmp_path / "health.png"
    res = runner.invoke(main, ["inspect", str(ckpt), "--model", "ddgraph.models.architectures:gpt2_small",
                               "--rows", "32", "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert "transformer.ln_f" in res.output and png.stat().st_size > 1000
    res = runner.invoke(main, ["inspect", str(ckpt)])
    assert res.exit_code == 2 and "--model" in res.output


def test_a_pickled_object_is_refused_by_weights_only(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)  # a whole module: unpickling it would run code
    with pytest.raises(InspectError, match="weights_only"):
        load_checkpoint(path)
