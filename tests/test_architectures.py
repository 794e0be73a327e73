"""Real architectures built from their own libraries: trace, label, predict, probe and diff."""
from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
import torch

import ddgraph
from ddgraph.errors import TargetError
from ddgraph.models import architectures as A

pytest.importorskip("transformers")


def _torchvision_reason():
    try:
        importlib.import_module("torchvision.models")
    except Exception as exc:  # absent, or a build for another torch (nms op missing)
        return f"torchvision cannot be imported beside torch {torch.__version__}: {type(exc).__name__}: {exc}"
    return None


TV_REASON = _torchvision_reason()


def _predict(factory):
    model, inputs = factory()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model, inputs, ddgraph.predict(model, inputs)


def _check(model, inputs, grid):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ddgraph.check(model, inputs, n_samples=800, progress=False,
                             grid=[float(t) for t in np.geomspace(grid[0], grid[1], 4)])


@pytest.fixture(scope="module")
def gpt2():
    return _predict(A.gpt2_small)


@pytest.fixture(scope="module")
def llama():
    return _predict(A.llama_small)


def test_gpt2_traces_with_export_and_labels_everything(gpt2):
    model, _, pred = gpt2
    g = pred.graph
    assert g.tracer == "export"
    assert pred.unknown_ops == ()
    counts = g.summary()
    assert counts["layernorm"] == 3 and counts["attention"] == 1
    # GELU-tanh written out as pow/mul/add/tanh is one act_smooth node, classified from phi(0), phi'(0)
    (act,) = g.nodes_with("act_smooth")
    assert g[act].get("written_out") and "tanh" in g[act]["composite"] and "pow" in g[act]["composite"]
    assert g[act]["phi0"] == 0 and g[act]["dphi0"] == pytest.approx(0.5)
    # the position-embedding table enters the stream as a bias, not an unknown constant shift
    assert [g[n]["bias_param"] for n in g.nodes_with("bias_add")] == ["transformer.wpe.weight"]


def test_gpt2_rows_are_the_models_own_names_with_one_row_per_qkv_slice(gpt2):
    model, _, pred = gpt2
    names = [n.param for n in pred.nodes]
    own = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    assert names[0] == "transformer.wte.weight" and names[-1] == "lm_head.weight"  # tied, named apart
    for n in names:
        assert n.split("[")[0] in own
    assert [n for n in names if "c_attn" in n] == [
        "transformer.h.0.attn.c_attn.weight"] + [f"transformer.h.0.attn.c_attn.weight[{s}]" for s in "qkv"]


def test_gpt2_small_diff_passes(gpt2):
    model, inputs, _ = gpt2
    d = _check(model, inputs, (1e-3, 1e-4))
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]
    slices = [c for c in d.primary if c.param.endswith("[q]")]
    assert len(slices) == 2 and all(c.verdict == "pass" for c in slices)
    assert all(x["verdict"] == "pass" for x in d.ln)  # Prop 63 on each LayerNorm


def test_canonical_zeroes_the_position_table_dead_column(gpt2):
    from ddgraph.core.approach import Approach
    from ddgraph.probing.canonical import canonicalise

    _, _, pred = gpt2
    canon = canonicalise(pred.graph, Approach())
    wpe = canon.gm.get_parameter("transformer.wpe.weight")
    (n,) = pred.graph.nodes_with("bias_add")
    dead = torch.nonzero(pred.graph[n]["mask"].reshape(-1, wpe.shape[1]).amax(0)).flatten()
    assert dead.numel() == 1 and bool((wpe[:, dead] == 0).all()) and bool((wpe[:, :-1] != 0).any())


def test_llama_labels_rmsnorm_rotary_gqa_swiglu(llama):
    model, _, pred = llama
    g = pred.graph
    assert pred.unknown_ops == ()
    assert len(g.nodes_with("rmsnorm")) == 3 and all(g[n].get("written_out") for n in g.nodes_with("rmsnorm"))
    assert len(g.nodes_with("gate")) == 1
    # rotary: each head's channel space is cut in halves by rotate_half, so q and k carry one dead
    # index per half per head (the rotation pairs dead with dead)
    q = next(n for n in g.nodes_with("weight") if g[n]["weight"]["param"].endswith("q_proj.weight"))
    k = next(n for n in g.nodes_with("weight") if g[n]["weight"]["param"].endswith("k_proj.weight"))
    assert len(g[q]["weight"]["dead_out"][1]) == 2 * model.config.num_attention_heads
    assert len(g[k]["weight"]["dead_out"][1]) == 2 * model.config.num_key_value_heads
    assert [n.status for n in pred.nodes] == ["in-reach"] * len(pred.nodes)


def test_llama_small_diff_passes(llama):
    model, inputs, _ = llama
    d = _check(model, inputs, (1e-4, 1e-5))
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]
    assert all(x["verdict"] == "pass" for x in d.ln)  # RMSNorm has no kernel direction


def test_bert_post_norm_diff_passes():
    model, inputs, pred = _predict(A.bert_small)
    assert pred.unknown_ops == () and pred.graph.tracer == "export"
    # post-norm: every residual add feeds a LayerNorm, which resets the stream's dead order to 0
    g = pred.graph
    assert all(g[next(iter(g.nx.successors(n)))]["primitive"] == "layernorm" for n in g.nodes_with("skip_add"))
    d = _check(model, inputs, (1e-3, 1e-4))
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]


def test_real_configs_are_built_on_the_meta_device():
    model, inputs = A.gpt2()
    assert all(p.device.type == "meta" for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) > 100e6


@pytest.mark.skipif(TV_REASON is not None, reason=TV_REASON or "")
def test_resnet18_small_diff():
    model, inputs, pred = _predict(A.resnet18_small)
    assert pred.unknown_ops == ()


def test_missing_library_is_a_clear_error():
    if TV_REASON is None:
        pytest.skip("torchvision imports here")
    with pytest.raises(TargetError, match="torchvision.models is needed"):
        A.resnet18_small()


def test_architectures_command_writes_the_report(tmp_path):
    from click.testing import CliRunner

    from ddgraph.cli.main import main

    out, saved = tmp_path / "ARCH.md", tmp_path / "results"
    args = ["architectures", "--quick", "--only", "GPT-2", "--only", "ResNet-18", "--out", str(out),
            "--results", str(saved)]
    res = CliRunner().invoke(main, args)
    text = out.read_text()
    assert "| GPT-2 | transformers | export |" in text and "## GPT-2 (`ddgraph.models.hf:gpt2`)" in text
    assert "| ResNet-18 | torchvision |" in text
    gpt2 = next(line for line in text.splitlines() if line.startswith("| GPT-2 |"))
    assert res.exit_code == (0 if "| pass |" in gpt2 else 1), res.output
    # a second run resumes from the saved results: the same report, nothing re-measured
    assert (saved / "ddgraph.models.hf_gpt2.json").is_file()
    again = CliRunner().invoke(main, args)
    assert "GPT-2: reusing" in again.stderr and out.read_text() == text


def test_architectures_command_prints_without_out(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ddgraph.cli.main import main

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["architectures", "--quick", "--only", "ResNet-18"])
    assert "# ddgraph on third-party models" in res.output and "ResNet-18" in res.output
    assert not list(tmp_path.iterdir()), "the command wrote into the working directory"


def test_vit_class_token_and_patch_convolution_diff_passes():
    model, inputs, pred = _predict(A.vit_small)
    g = pred.graph
    assert pred.unknown_ops == ()
    (cls,) = g.nodes_with("prepend_token")
    assert g[cls]["bias_param"] == "vit.embeddings.cls_token"
    assert pred.nodes[0].kind == "conv" and pred.nodes[0].param.endswith("projection.weight")
    d = _check(model, inputs, (1e-4, 1e-5))
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]


def test_predict_command_prints_rows_by_the_models_names():
    from click.testing import CliRunner

    from ddgraph.cli.main import main

    res = CliRunner().invoke(main, ["predict", "ddgraph.models.architectures:gpt2_small"])
    assert res.exit_code == 0, res.output
    for name in ("transformer.wte.weight", "transformer.h.0.attn.c_attn.weight[q]",
                 "transformer.h.0.attn.c_attn.weight[v]", "lm_head.weight"):
        assert name in res.output
