"""DDCAdam as a torch optimiser: AdamW fallback, options, overlap errors, state dict, discovery."""
import copy

import pytest
import torch
from torch import nn

from ddgraph.errors import GaugeError
from ddgraph.optim import CEShiftBias, CEShiftRowShift, ChainedReLURescaleGauge, DDCAdam, LNScaleGauge, ReLURescaleGauge
from ddgraph.optim.discover import discover_gauges

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(model, opt, steps=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(16, model[0].in_features, generator=gen)
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def test_without_gauges_it_is_adamw():
    a, b = _mlp(), _mlp()
    _train(a, DDCAdam(a.parameters(), lr=1e-2, weight_decay=0.1))
    _train(b, torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=0.1))
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_overlapping_gauges_are_refused():
    m = _mlp()
    with pytest.raises(GaugeError, match="same tensor"):
        DDCAdam(m.parameters(), gauges=[ReLURescaleGauge(m[0].weight, m[2].weight),
                                         CEShiftRowShift(m[2].weight)])


def test_bad_options_and_shapes_are_refused():
    m = _mlp()
    with pytest.raises(GaugeError, match="vertical"):
        DDCAdam(m.parameters(), gauges=[CEShiftBias(m[2].bias)], vertical="sideways")
    with pytest.raises(GaugeError, match="outputs"):
        ReLURescaleGauge(m[2].weight, m[0].weight)
    with pytest.raises(GaugeError, match="1-d"):
        CEShiftBias(m[2].weight)


def test_zero_block_is_an_error():
    m = _mlp()
    with torch.no_grad():
        m[0].weight[3].zero_()
        m[0].bias[3] = 0.0
    opt = DDCAdam(m.parameters(), gauges=[ReLURescaleGauge(m[0].weight, m[2].weight, m[0].bias)])
    with pytest.raises(GaugeError, match="zero norm"):
        _train(m, opt, steps=1)


def test_per_spec_hyperparameters_via_param_groups():
    m = _mlp()
    opt = DDCAdam([{"params": m.parameters()}, {"gauge": CEShiftBias(m[2].bias), "lr": 0.5}], lr=1e-3)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 0.5]


def test_state_dict_round_trip_continues_identically():
    m = _mlp()
    specs = lambda mm: [ReLURescaleGauge(mm[0].weight, mm[2].weight, mm[0].bias), CEShiftBias(mm[2].bias)]
    opt = DDCAdam(m.parameters(), gauges=specs(m), lr=1e-2, vertical="adam")
    _train(m, opt)
    m2 = copy.deepcopy(m)
    opt2 = DDCAdam(m2.parameters(), gauges=specs(m2), lr=1e-2, vertical="adam")
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    _train(m, opt, seed=1)
    _train(m2, opt2, seed=1)
    for p, q in zip(m.parameters(), m2.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_state_dict_from_other_gauges_is_refused():
    m = _mlp()
    opt = DDCAdam(m.parameters(), gauges=[CEShiftBias(m[2].bias)])
    other = DDCAdam(m.parameters(), gauges=[CEShiftRowShift(m[2].weight)])
    with pytest.raises(GaugeError, match="saved with gauges"):
        other.load_state_dict(opt.state_dict())


def test_frozen_vertical_keeps_the_shift_mode_with_adam_like_training():
    m = _mlp()
    b0 = m[2].bias.detach().mean().item()
    _train(m, DDCAdam(m.parameters(), gauges=[CEShiftBias(m[2].bias)], lr=0.1, vertical="frozen"), 20)
    assert abs(m[2].bias.mean().item() - b0) < 1e-6


def test_discovery_on_labelled_graph():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16, bias=False), nn.ReLU(),
                      nn.Linear(16, 16, bias=False), nn.ReLU(), nn.Linear(16, 16), nn.LayerNorm(16),
                      nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    found = discover_gauges(m, torch.randn(2, 6))
    kinds = sorted(type(s).__name__ for s in found.specs)
    assert kinds == ["CEShiftBias", "CEShiftRowShift", "ChainedReLURescaleGauge", "LNScaleGauge"]
    chain = next(s for s in found.specs if isinstance(s, ChainedReLURescaleGauge))
    assert chain.params[0] is m[0].weight and chain.params[1] is m[0].bias and chain.params[-1] is m[6].weight
    ln = next(s for s in found.specs if isinstance(s, LNScaleGauge))
    assert ln.params == (m[7].weight, m[7].bias, m[8].weight)
    assert [d for d, _ in found.dropped] == ["ReLU rescale through 8.weight", "ReLU rescale through 10.weight"]


def test_from_model_override_and_exclude():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    from ddgraph.optim import GaugeDroppedWarning

    with pytest.warns(GaugeDroppedWarning):  # the second ReLU pair shares 4.weight with the CE head
        opt = DDCAdam.from_model(m, torch.randn(2, 6), exclude=("CEShiftRowShift",))
    assert sorted(type(s).__name__ for s in opt.gauges) == ["CEShiftBias", "ReLURescaleGauge"]
    opt = DDCAdam.from_model(m, gauges=[CEShiftBias(m[4].bias)])
    assert opt.discovery is None and len(opt.gauges) == 1


def test_from_model_warns_when_it_drops_a_gauge():
    """A one-hidden-layer MLP's ReLU rescale shares its output layer with the CE head's gauges: the drop is
    recorded in opt.discovery and the user sees a GaugeDroppedWarning naming both."""
    from ddgraph.optim import GaugeDroppedWarning

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 5))
    with pytest.warns(GaugeDroppedWarning, match=r"ReLU rescale through 2\.weight.*CE row shift on 2\.weight"):
        opt = DDCAdam.from_model(m, torch.randn(4, 8))
    assert [d for d, _ in opt.discovery.dropped] == ["ReLU rescale through 2.weight"]
    assert not any(isinstance(s, ReLURescaleGauge) for s in opt.gauges)


def test_from_model_is_silent_when_nothing_is_dropped():
    import warnings

    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt = DDCAdam.from_model(m, torch.randn(4, 8))
    assert opt.discovery.dropped == []
    assert any(isinstance(s, ReLURescaleGauge) for s in opt.gauges)
