"""Engine outputs for the ladders confirmed numerically (THEORY §5.1, §6.1, §6.2)."""
import pytest
import torch

import ddgraph
from ddgraph.models.zoo import chain


def rates(pred):
    return [n.a_rate for n in pred.nodes], [n.g_rate for n in pred.nodes]


@pytest.mark.parametrize("act", ["linear", "relu", "gelu", "tanh"])
@pytest.mark.parametrize("depth", [2, 3, 4, 6])
def test_chain_ladder(act, depth):
    pred = ddgraph.predict(chain(depth, act), torch.randn(4, 8))
    a, g = rates(pred)
    assert a == [2.0 * (l - 1) for l in range(1, depth + 1)]
    assert g == [2.0 * (depth - l) for l in range(1, depth + 1)]
    assert pred.kl_order == depth and pred.fisher_rate == 2 * depth - 2
    assert all(n.status == "in-reach" for n in pred.nodes)


def test_noise_free_shift_is_2L():
    noisy = ddgraph.predict(chain(4, "relu"), torch.randn(4, 8))
    free = ddgraph.predict(chain(4, "relu"), torch.randn(4, 8), regime="noise-free")
    assert [f - n for f, n in zip(rates(free)[1], rates(noisy)[1])] == [8.0] * 4
    assert rates(free)[0] == rates(noisy)[0]


def test_per_layer_exponents():
    pred = ddgraph.predict(chain(4), torch.randn(4, 8), alpha=[1, 2, 1, 3])
    assert rates(pred)[1] == [12.0, 8.0, 6.0, 0.0]


def test_ce_expected_equals_mse_noisy():
    m = chain(4, "relu")
    ce = ddgraph.predict(m, torch.randn(4, 8), loss="ce")
    mse = ddgraph.predict(m, torch.randn(4, 8))
    assert rates(ce) == rates(mse)


def test_fx_and_export_agree():
    m = chain(4, "relu")
    fx = ddgraph.predict(m, torch.randn(4, 8), tracer="fx")
    ex = ddgraph.predict(m, torch.randn(4, 8), tracer="export")
    assert fx.tracer == "fx" and ex.tracer == "export"
    assert rates(fx) == rates(ex)
    assert [n.param for n in fx.nodes] == [n.param for n in ex.nodes]
