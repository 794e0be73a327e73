"""eps crossovers (docs/THEORY.md §3.8): a normaliser's floor read off the graph, both regimes predicted,
the diff judging the regime its window sits in, and the probe confirming each side of t*."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import ddgraph
from ddgraph.compare.regimes import CROSSOVER, INVARIANT, LINEAR, in_window
from ddgraph.core.rules import parse_rule
from ddgraph.errors import RuleFileError

SAMPLES = 2000


def _bn_chain(eps):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8, bias=False), nn.BatchNorm1d(8, eps=eps), nn.Linear(8, 8, bias=False),
                         nn.Linear(8, 4, bias=False)).train(), torch.randn(4, 8)


def test_the_floor_of_each_normaliser_is_read_off_the_graph():
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8, eps=1e-3), nn.RMSNorm(8), nn.RMSNorm(8, eps=1e-4))
    g = ddgraph.label(ddgraph.trace(model, torch.randn(2, 8)))
    floors = [g[n]["scale_floor"] for n in g.nodes_with("layernorm") + g.nodes_with("rmsnorm")]
    # rms_norm(eps=None) takes the machine epsilon of the dtype: fp64 in the probe
    assert floors == pytest.approx([1e-3 ** 0.5, torch.finfo(torch.float64).eps ** 0.5, 1e-2])
    g = ddgraph.label(ddgraph.trace(*_bn_chain(1e-8)))
    assert [g[n]["scale_floor"] for n in g.nodes_with("batchnorm_train")] == pytest.approx([1e-4])


def test_batchnorm_in_train_mode_predicts_both_regimes_and_the_crossover():
    pred = ddgraph.predict(*_bn_chain(1e-8))
    (c,) = pred.crossovers
    assert c["order"] == 1 and c["t_star"] == pytest.approx(1e-4)
    rows = pred.to_json()["nodes"]
    assert [(r["a_rate"], r["g_rate"]) for r in rows] == [(0, 4), (2, 2), (4, 0)]  # linear: t -> 0
    assert [(r["regimes"]["above"]["a_rate"], r["regimes"]["above"]["g_rate"]) for r in rows] == \
        [(0, 2), (0, 2), (2, 0)]  # invariant: the batch std resets the dead channel
    assert all(r["regimes"]["t_star"] == pytest.approx([1e-4, 1e-4]) for r in rows)
    assert (pred.kl_order, pred.kl_order_above) == (3, 2)  # the reset channel deviates at order 0
    layer = pred.nodes[2]
    assert in_window(layer, (1e-6, 1e-5))[3] == LINEAR and in_window(layer, (1e-3, 1e-2))[3] == INVARIANT
    a, _, status, regime = in_window(layer, (1e-5, 1e-3))
    assert regime == CROSSOVER and status == "bracket" and a == ((2, 4),)


def test_a_layernorm_chain_has_one_regime():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 8), nn.Linear(8, 4))
    pred = ddgraph.predict(model, torch.randn(2, 8))
    assert pred.crossovers == () and all(n.invariant is None for n in pred.nodes)
    assert [n.a_rate for n in pred.nodes] == [0, 0, 2]


@pytest.mark.parametrize("grid,regime", [(np.geomspace(1e-2, 1e-3, 5), INVARIANT),
                                         (np.geomspace(1e-5, 1e-6, 5), LINEAR)])
def test_the_probe_confirms_each_side_of_the_batchnorm_crossover(grid, regime):
    d = ddgraph.check(*_bn_chain(1e-8), n_samples=SAMPLES, grid=list(grid), progress=False)
    assert {c.regime for c in d.primary} == {regime}
    assert d.ok, [(c.node, c.factor, c.predicted, c.fit.slope) for c in d.failures]


def _relu_ln_relu(eps):
    """The issue's example: l2(relu(l1(LN(relu(l0 x))))); l2's A-rate is 2 above t* and 4 below."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8, bias=False), nn.ReLU(), nn.LayerNorm(8, eps=eps),
                         nn.Linear(8, 8, bias=False), nn.ReLU(), nn.Linear(8, 4, bias=False)), torch.randn(2, 8)


def test_relu_layernorm_relu_above_the_crossover():
    d = ddgraph.check(*_relu_ln_relu(1e-12), n_samples=SAMPLES, grid=list(np.geomspace(1e-3, 1e-4, 5)),
                      progress=False)
    assert d.ok and d.primary[-2].predicted == 2 and abs(d.primary[-2].fit.slope - 2) < 0.05


def test_relu_layernorm_relu_below_the_crossover():
    """l2's dead input lives only on the rows where the first ReLU cuts every bulk channel (on the others the
    LN's dead output -gamma mean/s is negative and the second ReLU cuts it); there k = 1, and below t* the LN
    is linear: A = 4 (THEORY §3.11)."""
    d = ddgraph.check(*_relu_ln_relu(1e-12), n_samples=SAMPLES, grid=list(np.geomspace(1e-8, 1e-9, 5)),
                      progress=False)
    assert d.ok, [(c.node, c.factor, c.predicted, c.fit.slope) for c in d.failures]
    l2 = d.primary[-2]
    assert l2.factor == "A" and l2.predicted == 4 and abs(l2.fit.slope - 4) < 0.05 and l2.regime == LINEAR


RULE = '''primitive = "rmsnorm"
[forward]
v = "{v}"
d = "d.x"
[backward]
x = "w.out"
'''


def test_only_a_normalisers_invariant_regime_may_subtract():
    with pytest.raises(RuleFileError, match=r"forward.v.*no '-' outside \[invariant\]"):
        parse_rule("r.toml", RULE.format(v="v.x - 1"))
    with pytest.raises(RuleFileError, match="invariant.scale"):
        parse_rule("r.toml", RULE.format(v="v.x") + '[invariant]\n[invariant.forward]\nv = "0"\nd = "0"\n'
                                                     '[invariant.backward]\nx = "w.out"\n')
    rule = parse_rule("r.toml", RULE.format(v="v.x") + '[invariant]\nscale = "all(v.x)"\n[invariant.forward]\n'
                                                        'v = "v.x - all(v.x)"\nd = "d.x"\n[invariant.backward]\n'
                                                        'x = "w.out - all(v.x)"\n')
    assert rule.in_regime("invariant").regime == "invariant" and rule.in_regime("linear") is rule


def _relu_rms_relu(gain_dead):
    """l2(relu(l1(RMSNorm(relu(l0 x))))) with the RMSNorm's dead gain set to ``gain_dead``."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8, bias=False), nn.ReLU(), nn.RMSNorm(8, eps=1e-10),
                          nn.Linear(8, 8, bias=False), nn.ReLU(), nn.Linear(8, 4, bias=False))
    with torch.no_grad():
        model[2].weight[-1] = gain_dead
    return model, torch.randn(2, 8)


def test_a_sign_cut_no_event_rescues_is_exactly_zero():
    """After a ReLU the RMSNorm's dead output gamma_dead x_dead / r has the sign of gamma_dead on every row,
    the cut rows included (THEORY §3.11): with gamma_dead < 0 the second ReLU cuts l1's dead output
    everywhere, so l2's A and l1's G are exactly zero; with gamma_dead > 0 nothing is cut."""
    cut, kept = ddgraph.predict(*_relu_rms_relu(-1.0)), ddgraph.predict(*_relu_rms_relu(1.0))
    assert [(n.a_rate, n.g_rate) for n in cut.nodes] == [(0, 2), (2, math.inf), (math.inf, 0)]
    assert [(n.a_rate, n.g_rate) for n in kept.nodes] == [(0, 2), (2, 2), (4, 0)]
    (c,) = cut.crossovers  # the cut rows of the first ReLU: the RMSNorm's input is the dead channel alone
    assert c["event"] == "relu" and c["order"] == 1 and c["t_star"] == pytest.approx(1e-5)
    for grid, regime in ((np.geomspace(1e-3, 1e-4, 5), INVARIANT), (np.geomspace(1e-7, 1e-8, 5), LINEAR)):
        d = ddgraph.check(*_relu_rms_relu(-1.0), n_samples=SAMPLES, grid=list(grid), progress=False)
        assert d.ok, [(c.node, c.factor, c.predicted, c.fit.slope) for c in d.failures]
        zero = [c for c in d.primary if c.predicted == math.inf]
        assert [(c.node, c.factor) for c in zero] == [("linear_1", "G"), ("linear_2", "A")]
        assert {c.regime for c in d.primary if c.node == "linear_1"} == {regime}


def test_signs_are_unknown_without_a_clipping_relu():
    """Leaky ReLU keeps a negative part: no sign is determined, nothing is cut, no event world runs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8, bias=False), nn.LeakyReLU(), nn.LayerNorm(8, eps=1e-12),
                          nn.Linear(8, 8, bias=False), nn.LeakyReLU(), nn.Linear(8, 4, bias=False))
    pred = ddgraph.predict(model, torch.randn(2, 8))
    assert pred.crossovers == () and [n.a_rate for n in pred.nodes] == [0, 0, 2]
