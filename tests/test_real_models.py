"""The third-party zoo (transformers and torch.nn classes, built plainly: default options, random
init, batch-1 inputs) through predict with no wrapper."""
import pytest

import ddgraph
from ddgraph.models import hf, torch_nn

pytest.importorskip("transformers")

ZOO = {**hf.FACTORIES, **torch_nn.FACTORIES}


@pytest.mark.parametrize("name", list(ZOO))
def test_every_weight_row_is_in_reach_and_no_unknown_op_matters(name):
    model, x = ZOO[name]()
    pred = ddgraph.predict(model, x)
    assert pred.nodes and all(n.status == "in-reach" for n in pred.nodes), \
        [(n.param, n.status, n.reason) for n in pred.nodes if n.status != "in-reach"]
    assert pred.unknown_ops == ()
    first = next(iter(x.values())) if isinstance(x, dict) else x[0]
    assert first.shape[0] == 1


def test_gemma_gain_one_plus_w_is_the_rmsnorm_gain():
    model, x = hf.gemma()
    pred = ddgraph.predict(model, x)
    norms = [pred.graph[n] for n in pred.graph.nodes_with("rmsnorm")]
    assert len(norms) == 2 * hf.LAYERS + 1
    assert all(d["norm_gain_offset"] == 1.0 and d["norm_weight"].endswith("norm.weight") for d in norms)


def test_falcon_fused_qkv_split_by_constant_indices_is_a_rearrangement_and_diff_passes():
    model, x = hf.falcon()
    pred = ddgraph.predict(model, x)
    picks = [n for n in pred.graph.nodes_with("shape") if pred.graph[n]["op"] == "index"]
    assert len(picks) == 2 * hf.LAYERS  # k and v picked from the fused projection, per layer
    # the picks are run with the constant indices' values, so the key head's dead channels are where
    # the queries' are (a probe of the fused projection's G would read 0 otherwise)
    import numpy as np

    d = ddgraph.check(model, x, progress=False, n_samples=1000, grid=list(np.geomspace(1e-3, 1e-6, 4)))
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]


def test_an_unknown_op_no_row_depends_on_is_not_named(tmp_path):
    model, x = hf.roberta()  # position ids: ne, cumsum, type_as on the input ids
    pred = ddgraph.predict(model, x)
    data = pred.to_json()
    assert data["unknown_ops"] == [] and {u["op"] for u in data["inert_unknown_ops"]} >= {"aten.cumsum.default"}


def test_opt_queries_scaled_before_the_head_split_get_a_dead_channel_per_head():
    model, x = hf.opt()  # q = q_proj(x) * scaling, then the view into heads
    pred = ddgraph.predict(model, x)
    g = pred.graph
    dead = {g[n]["weight"]["param"].split(".")[-2]: g[n]["weight"]["dead_out"][1] for n in g.nodes_with("weight")
            if ".layers.0.self_attn." in g[n]["weight"]["param"]}
    assert len(dead["q_proj"]) == hf.HEADS and dead["q_proj"] == dead["k_proj"]


def test_nanogpt_causal_mask_buffer_with_masked_fill_diff_passes():
    import importlib.util
    from pathlib import Path

    import numpy as np

    spec = importlib.util.spec_from_file_location("nanogpt", Path(__file__).parent / "fixtures" / "nanogpt.py")
    nanogpt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nanogpt)
    model, x = nanogpt.gpt()
    pred = ddgraph.predict(model, x)
    assert all(n.status == "in-reach" for n in pred.nodes) and pred.unknown_ops == ()
    d = ddgraph.check(model, x, progress=False, n_samples=2000, grid=list(np.geomspace(1e-3, 1e-5, 5)))
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]


@pytest.mark.parametrize("model_class,bias,count", [("CohereModel", False, hf.LAYERS + 1),
                                                    ("DebertaModel", True, 2 * hf.LAYERS + 1)])
def test_hand_written_layernorms_of_transformers_are_layernorms(model_class, bias, count):
    """Cohere's ``(x - mean) * rsqrt(var + eps) * w`` and DeBERTa's ``w * ((x - mean) / sqrt(var + eps)) + b``."""
    model, x = hf._build(model_class, model_class.replace("Model", "Config"), (hf._ids(),), **hf.SIZES)
    g = ddgraph.label(ddgraph.trace(model, x))
    norms = [g[n] for n in g.nodes_with("layernorm")]
    assert len(norms) == count and not g.nodes_with("rmsnorm")
    assert all(d["norm_weight"].endswith(".weight") and (d["norm_bias"] is not None) == bias for d in norms)
    assert all(d["scale_floor"] > 0 for d in norms)


def test_roberta_positions_computed_from_the_padding_are_a_table_added_like_a_bias():
    model, x = hf.roberta()
    pred = ddgraph.predict(model, x)
    params = [n.param for n in pred.nodes]
    assert "roberta.embeddings.position_embeddings.weight" not in params  # never looked up at its dead row
    biases = {pred.graph[n].get("bias_param") for n in pred.graph.nodes_with("bias_add")}
    assert "roberta.embeddings.position_embeddings.weight" in biases


def test_bert_with_an_attention_mask_is_probed_with_the_mask_held():
    import numpy as np
    import torch

    model, (ids,) = hf.bert()
    mask = torch.ones_like(ids)
    mask[:, -2:] = 0  # two padding positions, as a tokenizer's batch would have
    inputs = {"input_ids": ids, "attention_mask": mask}
    pred = ddgraph.predict(model, inputs)
    assert all(n.status == "in-reach" for n in pred.nodes) and pred.unknown_ops == ()
    d = ddgraph.check(model, inputs, progress=False, n_samples=1000, grid=list(np.geomspace(1e-3, 1e-5, 4)))
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]
    assert torch.equal(inputs["attention_mask"], mask)
