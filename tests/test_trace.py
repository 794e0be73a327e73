"""Tracing: fx and torch.export agree, meta-device models trace, untraceable models get a clear error."""
import importlib

import pytest
import torch
from torch import nn

import ddgraph
from ddgraph.errors import TraceError

EXAMPLES = [("chains", "deep_relu"), ("chains", "deep_gelu"), ("blocks", "residual_mlp"),
            ("blocks", "swiglu_mlp"), ("blocks", "layernorm_chain"), ("blocks", "rmsnorm_chain"),
            ("blocks", "hand_rmsnorm_chain"), ("blocks", "biased_chain"), ("attention", "attention_chain"),
            ("attention", "transformer_block"), ("transformer", "small_transformer")]


def make(module, factory):
    return getattr(importlib.import_module(module), factory)()


def ladder(pred):
    return [(n.param, n.a_rate, n.g_rate, n.status) for n in pred.nodes]


@pytest.mark.parametrize("module,factory", EXAMPLES)
def test_fx_and_export_give_the_same_labelled_graph_and_ladder(module, factory):
    model, inputs = make(module, factory)
    fx = ddgraph.predict(model, inputs, tracer="fx")
    ex = ddgraph.predict(model, inputs, tracer="export")
    assert ladder(fx) == ladder(ex)
    relevant = lambda s: {k: v for k, v in s.items() if k not in ("param", "const", "shape")}  # noqa: E731
    assert relevant(fx.graph.summary()) == relevant(ex.graph.summary())


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        if x.sum() > 0:  # Python control flow on a tensor value: neither tracer can follow it
            return self.fc(x)
        return -self.fc(x)


def test_untraceable_model_gets_one_clear_error():
    with pytest.raises(TraceError) as err:
        ddgraph.trace(DataDependent(), torch.randn(4, 8))
    msg = str(err.value)
    assert "could not trace DataDependent" in msg
    assert "torch.fx.symbolic_trace failed" in msg and "torch.export" in msg
    assert "What you can do" in msg
    assert "Traceback" not in msg


def test_unknown_tracer_is_refused():
    with pytest.raises(TraceError, match="unknown tracer"):
        ddgraph.trace(nn.Linear(4, 4), torch.randn(2, 4), tracer="jit")


def test_meta_device_model_traces_without_weight_memory():
    model, inputs = make("transformer", "meta_transformer")
    model = type(model)(depth=2, width=256, heads=4, vocab=1000).to("meta")
    pred = ddgraph.predict(model, (torch.randint(0, 1000, (1, 8)),))
    assert len(pred.nodes) == 2 + 2 * 6
    assert all(n.status == "in-reach" for n in pred.nodes)
    assert all(k["direction"] is None for k in pred.ln_kernels)  # 1/gamma needs real weights


def test_example_inputs_are_inferred():
    g = ddgraph.trace(nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2)))
    placeholder = next(n for n, d in g.nx.nodes(data=True) if d["fx"].op == "placeholder")
    assert g[placeholder]["shape"][-1] == 5
    pred = ddgraph.predict(nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2)))
    assert [n.g_rate for n in pred.nodes] == [2.0, 0.0]


def test_rectangular_widths_keep_the_ladder():
    from ddgraph.models import zoo

    pred = ddgraph.predict(zoo.chain(4, "relu", widths=[6, 10, 4, 12, 3]), torch.randn(4, 6))
    assert [n.g_rate for n in pred.nodes] == [6.0, 4.0, 2.0, 0.0]


def test_forward_arguments_left_at_their_defaults_are_traced_as_constants():
    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x, mask=None, scale=1.0):
            h = self.a(x)
            if mask is not None:  # Python control flow on an argument the user leaves out
                h = h * mask
            return self.b(h * scale)

    x = torch.randn(4, 8)
    pred = ddgraph.predict(Masked(), x)
    assert pred.tracer == "fx" and [n.status for n in pred.nodes] == ["in-reach", "in-reach"]
    d = ddgraph.check(Masked(), x, progress=False, n_samples=2000)
    assert d.ok


def test_a_batch_one_example_keeps_the_exported_batch_axis_free():
    class NoFx(torch.nn.Module):  # data-dependent shape logic that fx cannot trace
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x):
            if x.shape[-1] == 8:
                return self.b(torch.relu(self.a(x)))
            return x

    x = torch.randn(1, 8)
    d = ddgraph.check(NoFx(), x, progress=False, n_samples=2000)
    assert d.prediction.tracer == "export" and d.ok
    assert x.shape == (1, 8)


def test_a_compiled_model_is_unwrapped_and_said():
    from ddgraph.models import zoo

    model = torch.compile(zoo.chain(3, "relu"))
    x = torch.randn(4, 8)
    pred = ddgraph.predict(model, x)
    assert pred.model == "Sequential" and [n.status for n in pred.nodes] == ["in-reach"] * 3
    assert pred.to_json()["notes"] == ["the torch.compile wrapper was unwrapped: its original module was traced"]
    assert ddgraph.check(model, x, progress=False, n_samples=1000).ok
