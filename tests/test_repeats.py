"""A stack of identical blocks is traced as its first few and copied: the prediction is the full trace's,
and reuse does not apply where the blocks differ."""
import pytest
import torch
from torch import nn

import ddgraph
from ddgraph.frontend.repeats import KEEP, find_stacks
from ddgraph.models import hf
from ddgraph.models.catalogue import find

DEPTH = KEEP + 2


def _without_names(pred) -> dict:
    """The prediction's JSON without what names fx nodes (copied nodes are named afresh) and the notes."""
    j = pred.to_json()
    j.pop("notes")
    for key in ("nodes", "stream_sites", "ln_kernels", "crossovers"):
        j[key] = [{k: v for k, v in row.items() if k != "node"} for row in j[key]]
    return j


def _both(model, inputs):
    reused, full = ddgraph.trace(model, inputs), ddgraph.trace(model, inputs, reuse_blocks=False)
    return reused, full, ddgraph.predict(reused), ddgraph.predict(full)


def _deep_catalogue_model(name, monkeypatch):
    monkeypatch.setattr(hf, "LAYERS", DEPTH)
    monkeypatch.setattr(hf, "SIZES", {**hf.SIZES, "num_hidden_layers": DEPTH})
    monkeypatch.setattr(hf, "T5_SIZES", {**hf.T5_SIZES, "num_layers": DEPTH})
    (entry,) = find([name])
    return entry.build()


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert"])
def test_reused_blocks_predict_what_the_full_trace_predicts(name, monkeypatch):
    model, inputs = _deep_catalogue_model(name, monkeypatch)
    reused, full, p_reused, p_full = _both(model, inputs)
    assert any("copied from the last" in n for n in reused.nx.graph["notes"])
    assert reused.nx.number_of_nodes() == full.nx.number_of_nodes()
    assert len(p_full.nodes) > 4 * DEPTH
    assert _without_names(p_reused) == _without_names(p_full)


def test_reused_graph_computes_the_model(monkeypatch):
    model, inputs = _deep_catalogue_model("llama", monkeypatch)
    graph = ddgraph.trace(model, inputs)
    assert any("copied from the last" in n for n in graph.nx.graph["notes"])
    with torch.no_grad():
        assert torch.allclose(graph.gm(*inputs), model(*inputs).logits, atol=1e-6)
    assert len(model.model.layers) == DEPTH  # the user's stack keeps every block


class _Block(nn.Module):
    def __init__(self, width, act=nn.ReLU, index=0):
        super().__init__()
        self.fc, self.act, self.index = nn.Linear(width, width), act(), index

    def forward(self, x):
        return x + self.act(self.fc(x))


class _Stack(nn.Module):
    """A residual MLP whose blocks live in a ModuleList; ``head`` reads the last block's output."""

    def __init__(self, blocks, width=6):
        super().__init__()
        self.inp, self.blocks, self.head = nn.Linear(4, width), nn.ModuleList(blocks), nn.Linear(width, 2)

    def forward(self, x):
        x = self.inp(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


class _EveryOutput(_Stack):
    """The head reads the sum of every block's output: the last copy alone would not feed it."""

    def forward(self, x):
        x, outs = self.inp(x), []
        for b in self.blocks:
            x = b(x)
            outs.append(x)
        return self.head(sum(outs))


class _ByPosition(_Block):
    """Odd blocks negate their branch: blocks of one state whose traced subgraphs differ."""

    def forward(self, x):
        return x - self.act(self.fc(x)) if self.index % 2 else x + self.act(self.fc(x))


def _cnn(stage: int = DEPTH):
    def block(c):
        return nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1),
                         nn.Sequential(*[block(8) for _ in range(stage)]),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)).eval(), (torch.randn(1, 3, 16, 16),)


def test_a_cnn_stage_is_reused():
    model, inputs = _cnn()
    assert [s.path for s in find_stacks(model)] == ["1"]
    reused, full, p_reused, p_full = _both(model, inputs)
    assert any("copied from the last" in n for n in reused.nx.graph["notes"])
    assert _without_names(p_reused) == _without_names(p_full)


@pytest.mark.parametrize("make", [
    lambda: _Stack([_Block(6) for _ in range(DEPTH - 1)] + [_Block(6, nn.GELU)]),  # the last block differs
    lambda: _Stack([_Block(6) for _ in range(DEPTH - 1)] + [nn.Sequential(nn.Linear(6, 6))]),  # another class
], ids=["activation", "class"])
def test_differing_blocks_are_not_a_stack(make):
    torch.manual_seed(0)
    model = make()
    assert find_stacks(model) == []
    reused, full, p_reused, p_full = _both(model, torch.randn(3, 4))
    assert not any("copied" in n for n in reused.nx.graph["notes"])
    assert _without_names(p_reused) == _without_names(p_full)


@pytest.mark.parametrize("make", [
    lambda: _Stack([_ByPosition(6, index=i) for i in range(DEPTH)]),
    lambda: _EveryOutput([_Block(6) for _ in range(DEPTH)]),
], ids=["subgraphs-differ", "tail-reads-every-block"])
def test_blocks_that_do_not_repeat_are_traced_whole(make):
    torch.manual_seed(0)
    model = make()
    assert len(find_stacks(model)) == 1  # alike as modules ...
    reused, full, p_reused, p_full = _both(model, torch.randn(3, 4))
    assert not any("copied" in n for n in reused.nx.graph["notes"])  # ... but not as traced graphs
    assert _without_names(p_reused) == _without_names(p_full)
    assert len(p_full.nodes) == DEPTH + 2


@pytest.mark.parametrize("depth,position", [(DEPTH + 1, KEEP), (DEPTH + 1, KEEP + 1), (DEPTH + 3, DEPTH + 1)])
def test_a_module_the_parent_calls_at_one_position_stops_reuse(depth, position):
    """A norm after block ``position`` (NormedChain): where the shortened traces end before it, or put it
    where the code after the stack would be, the copy would misplace or lose it."""
    from ddgraph.models.zoo import NormedChain

    torch.manual_seed(0)
    model = NormedChain(depth=depth, position=position)
    reused, full, p_reused, p_full = _both(model, torch.randn(3, 8))
    assert not any("copied" in n for n in reused.nx.graph["notes"])
    assert _without_names(p_reused) == _without_names(p_full)
    assert len(full.nodes_with("layernorm")) == len(reused.nodes_with("layernorm")) == 1


def test_a_stack_of_one_module_listed_many_times_is_not_reused():
    torch.manual_seed(0)
    block = _Block(6)
    assert find_stacks(_Stack([block] * DEPTH)) == []


def test_gemma2_alternating_layers_are_not_copied(monkeypatch):
    """Gemma2 alternates sliding-window and full layers: a copy of the last traced block would be wrong
    for every other block, so reuse must not apply."""
    model, inputs = _deep_catalogue_model("gemma2", monkeypatch)
    reused, full, p_reused, p_full = _both(model, inputs)
    assert not any("copied" in n for n in reused.nx.graph["notes"])
    assert _without_names(p_reused) == _without_names(p_full)
