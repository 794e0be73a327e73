"""Adaptive windows: the sweep goes where the rates settle, each fit picks its window, underflow is a
floor, a pinned grid is kept exactly, and runs are reproducible."""
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import ddgraph
from ddgraph.cli.main import main
from ddgraph.models import zoo
from ddgraph.probing.fit import fit_rate
from ddgraph.probing.window import MIN_RUN, Expected, first_segment, fit_window, lattice, next_point, settled

DEEP = [lattice(k) for k in range(13)]  # 1e-2 .. 1e-6


def _small_weights(model, scale):
    """Library-style small inits (std ~ 0.02): the asymptotic window opens only well below t = 1e-2."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.mul_(scale)
    return model


def test_a_drifting_series_is_fitted_where_it_has_settled():
    ys = [t**2 + 1e3 * t**3 for t in DEEP]  # slope 3 at large t, 2 as t -> 0
    assert fit_rate(DEEP, ys).status == "not-asymptotic"
    fit = fit_window(DEEP, ys)
    assert fit.status == "ok" and abs(fit.slope - 2) <= 0.05
    assert fit.window[0] == min(DEEP) and fit.window[1] < 1e-4 and fit.n_points >= MIN_RUN


def test_the_sweep_goes_on_until_the_prediction_settles():
    first = first_segment([2.0])
    assert len(first) == 7 and first[0] == pytest.approx(1e-2) and first[-1] == pytest.approx(1e-4)
    ys = [t**2 + 1e3 * t**3 for t in DEEP]
    assert not settled(first, ys[:7], Expected(2.0, 0.05))
    assert settled(DEEP, ys, Expected(2.0, 0.05))
    assert next_point(first) == pytest.approx(lattice(7))
    assert next_point([1e-8]) is None
    assert first_segment([158.0])[0] > 0.1  # a steep ladder starts higher, where fp64 still holds it


def test_underflow_is_a_floor_with_advice_never_unfittable():
    ys = [t**80 for t in DEEP]  # under 1e-280 below t ~ 3e-4
    for fit in (fit_window(DEEP, ys), fit_rate(DEEP[-4:], [0.0, 1e-300, 0.0, 0.0])):
        assert fit.status in ("ok", "floor")
    fit = fit_window(DEEP[4:], ys[4:])
    assert fit.status == "floor" and "--grid" in fit.reason
    assert fit_rate(DEEP, [math.nan] * len(DEEP)).status == "unfittable"


def test_a_flat_series_has_no_r2():
    ys = [1.0 + 1e-9 * math.sin(7 * k) for k in range(len(DEEP))]
    fit = fit_window(DEEP, ys)
    assert fit.status == "ok" and abs(fit.slope) < 1e-6 and math.isnan(fit.r2)
    assert fit.as_dict()["r2"] is None


def test_small_inits_pass_by_default_and_a_pinned_grid_is_kept():
    model = _small_weights(zoo.NormedChain(4, 1), 0.003)
    fixed = [lattice(k) for k in range(7)]
    pinned = ddgraph.check(model, torch.randn(4, 8), n_samples=1000, grid=fixed, progress=False)
    assert pinned.measurement.grid == tuple(fixed) and not pinned.measurement.adaptive
    assert "not-asymptotic" in {c.verdict for c in pinned.primary}
    d = ddgraph.check(model, torch.randn(4, 8), n_samples=1000, progress=False)
    assert d.ok and d.measurement.adaptive and min(d.measurement.grid) < 1e-4
    assert all(c.fit.n_points >= MIN_RUN for c in d.primary)
    node = d.to_json()["nodes"][1]["observables"]["A_dd_1"]
    assert node["n_points"] >= MIN_RUN and len(node["window"]) == 2


def test_a_deep_chain_has_no_unfittable_rows():
    d = ddgraph.check(zoo.chain(80), torch.randn(4, 8), n_samples=100, progress=False)
    assert d.ok, [(c.param, c.factor, c.verdict, c.fit.reason) for c in d.failures][:4]
    assert d.measurement.grid[0] > 0.1  # rates up to 158: the sweep starts where fp64 still holds them
    pinned = ddgraph.check(d.prediction.graph, n_samples=100, grid=[1e-2, 1e-3, 1e-4], progress=False)
    verdicts = {c.verdict for c in pinned.primary}
    assert "unfittable" not in verdicts and "floor" in verdicts
    assert all("--grid" in c.fit.reason for c in pinned.primary if c.verdict == "floor")


def _attention_block():
    torch.manual_seed(0)
    return zoo.PreNormBlock(), torch.randn(2, 6, 8)


def test_same_seed_and_threads_give_the_same_json_and_one_or_two_threads_the_same_verdicts():
    model, x = _attention_block()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        runs = [ddgraph.check(model, x, n_samples=2000, progress=False) for _ in range(2)]
        torch.set_num_threads(1)
        one = ddgraph.check(model, x, n_samples=2000, progress=False)
    finally:
        torch.set_num_threads(before)
    texts = [json.dumps(d.to_json(), default=str) for d in runs]
    assert texts[0] == texts[1]
    two = runs[0]
    assert [c.verdict for c in one.checks] == [c.verdict for c in two.checks]
    for a, b in zip(one.primary, two.primary):
        if math.isfinite(a.fit.slope):
            assert abs(a.fit.slope - b.fit.slope) <= 0.02, (a.param, a.factor)


def test_cli_seed_builds_the_same_model_and_the_table_shows_windows():
    runner = CliRunner()
    args = ["diff", "examples/attention.py:transformer_block", "--samples", "500", "--no-progress"]
    outs = [runner.invoke(main, args + ["--format", "json"]).output for _ in range(2)]
    assert outs[0] == outs[1] and json.loads(outs[0])["adaptive"] is True
    table = runner.invoke(main, args).output
    assert "window" in table and "R²" not in table and "adaptive" in table


def test_probe_api_is_adaptive_by_default():
    m = ddgraph.probe(zoo.chain(3, "relu"), torch.randn(4, 8), n_samples=500, progress=False)
    assert m.adaptive and np.allclose(m.grid[:7], [lattice(k) for k in range(7)])
