"""transformers causal LMs as users build them: default config options (use_cache on), batch-1 ids."""
import pytest
import torch

import ddgraph

T = pytest.importorskip("transformers")

TINY = {
    "GPT2LMHeadModel": lambda: T.GPT2LMHeadModel(T.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=32,
                                                              n_positions=16, bos_token_id=0, eos_token_id=0)),
    "LlamaForCausalLM": lambda: T.LlamaForCausalLM(T.LlamaConfig(
        num_hidden_layers=1, hidden_size=16, num_attention_heads=2, num_key_value_heads=1, intermediate_size=32,
        vocab_size=32, bos_token_id=0, eos_token_id=0)),
}


@pytest.mark.parametrize("name", list(TINY))
def test_default_cache_is_switched_off_for_the_trace_and_said(name):
    torch.manual_seed(0)
    model = TINY[name]().eval()
    assert model.config.use_cache  # the library default, left as it is
    ids = torch.randint(0, 32, (1, 6))
    pred = ddgraph.predict(model, ids)
    assert pred.nodes and all(n.status == "in-reach" for n in pred.nodes)
    assert pred.to_json()["notes"] == [f"{name} was traced with use_cache=False, reading its logits (or first output)"]
    assert model.config.use_cache and type(model).__name__ == name  # the user's model is not changed


def test_gpt2_diff_on_a_batch_one_input():
    torch.manual_seed(0)
    model = TINY["GPT2LMHeadModel"]().eval()
    d = ddgraph.check(model, torch.randint(0, 32, (1, 6)), progress=False, n_samples=2000,
                      grid=[1e-3, 1e-4, 1e-5, 1e-6])
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]
