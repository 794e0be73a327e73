"""What real architectures add, checked on probe cases that need no model library: rotary embeddings
with grouped-query attention, GELU-tanh written out, tied embeddings, class tokens, batch norm and
strided/padded convolutions."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ddgraph
from ddgraph.probing.cases import build


def _check(name, grid=None, n=1000, **args):
    torch.manual_seed(0)
    model, inputs, kw = build({"case": name, "args": args})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ddgraph.check(model, inputs, n_samples=n, progress=False, grid=grid, **kw)


def _failures(d):
    return [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]


def test_rotary_and_grouped_query_attention():
    d = _check("rotary_gqa", grid=[float(t) for t in np.geomspace(1e-2, 1e-3, 4)])
    g = d.prediction.graph
    assert d.prediction.unknown_ops == ()
    q = next(n for n in g.nodes_with("weight") if g[n]["weight"]["param"] == "q.weight")
    k = next(n for n in g.nodes_with("weight") if g[n]["weight"]["param"] == "k.weight")
    # rotate_half cuts each head in halves: one dead index per half, so the rotation (i, i + dh/2)
    # pairs dead with dead and bulk with bulk; k has one pair per KV head, repeated by repeat_kv
    assert g[q]["weight"]["dead_out"][1] == [1, 3, 5, 7, 9, 11, 13, 15]
    assert g[k]["weight"]["dead_out"][1] == [1, 3, 5, 7]
    assert d.ok, _failures(d)
    rates = {c.param: c.predicted for c in d.primary if c.factor == "G"}
    assert rates["v.weight"] == rates["o.weight"] + 2  # Prop 54 survives GQA and rotary


def test_gelu_tanh_written_out_is_one_smooth_activation():
    d = _check("gelu_tanh_chain")
    g = d.prediction.graph
    acts = g.nodes_with("act_smooth")
    assert len(acts) == 2 and all(g[a]["written_out"] for a in acts)
    assert g.summary().get("scale", 0) == 0 and g.summary().get("unknown", 0) == 0
    assert d.ok, _failures(d)
    assert [c.predicted for c in d.primary if c.factor == "G"] == [4.0, 2.0, 0.0]


def test_written_out_activations_are_classified_by_their_value_at_zero():
    class Acts(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = (torch.nn.Linear(4, 4) for _ in range(3))

        def forward(self, x):
            h = self.a(x)
            h = h * torch.sigmoid(h)            # SiLU written out: phi(0) = 0, phi'(0) = 1/2
            h = self.b(h)
            h = torch.sigmoid(h) + torch.tanh(h)  # phi(0) = 1/2: an offset activation
            return self.c(h)

    g = ddgraph.label(ddgraph.trace(Acts(), torch.randn(2, 4)))
    (smooth,) = g.nodes_with("act_smooth")
    assert g[smooth]["dphi0"] == pytest.approx(0.5)
    (offset,) = g.nodes_with("act_offset")
    assert g[offset]["phi0"] == pytest.approx(0.5) and g[offset]["dphi0"] == pytest.approx(1.25)


def test_tied_embedding_and_unembedding():
    d = _check("tied_embedding")
    names = [n.param for n in d.prediction.nodes]
    assert names == ["wte.weight", "mid.weight", "lm_head.weight"]
    assert d.ok, _failures(d)


def test_conv_padding_stride_and_batchnorm_modes_are_labelled():
    for train in (False, True):
        torch.manual_seed(0)
        model, inputs, _ = build({"case": "conv_bn", "args": {"train": train}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = ddgraph.predict(model, inputs)
        prim = "batchnorm_train" if train else "batchnorm_eval"
        assert len(pred.graph.nodes_with(prim)) == 2 and pred.unknown_ops == ()
        assert [n.kind for n in pred.nodes] == ["conv"] * 3


def test_batchnorm_train_crossover_is_a_finite_t_regime():
    """Above t* ~ sqrt(eps) the batch std resets the dead channel: the default eps puts t* inside
    the old fixed grid, so the rows whose rates change are judged there against the bracket of both
    regimes, never as an in-reach pass of either (THEORY §3.8); the adaptive windows sit below t*, where
    the t -> 0 prediction holds."""
    d = _check("conv_bn", train=True, eps=1e-5, grid=[float(t) for t in np.geomspace(1e-2, 1e-4, 7)])
    moved = [c for c in d.primary if c.regime]
    assert moved and {c.regime for c in moved} == {"crossover"} and {c.status for c in moved} == {"bracket"}
    d = _check("conv_bn", train=True, eps=1e-5)
    assert d.ok, _failures(d)
    assert all(c.fit.window[1] < 3e-3 for c in d.primary if c.predicted not in (0, 0.0))


def test_grouped_and_depthwise_convolutions_squeeze_excitation_are_measured():
    d = _check("mobile_cnn", grid=[float(t) for t in np.geomspace(1e-3, 1e-5, 5)], n=2000)
    assert not d.measurement.skipped  # grouped and depthwise convolutions are measured, not skipped
    assert {c.param for c in d.primary} >= {"grouped.weight", "depthwise.weight", "squeeze.weight"}
    assert d.ok, _failures(d)
    assert [s["verdict"] for s in d.streams] == ["pass"]  # the stream's channels: axis 1 of a feature map
