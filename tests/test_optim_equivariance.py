"""Remark 84: DDCAdam keeps gauge-related runs on one orbit; Adam does not (multiplicative gauges)."""
import pytest
import torch

from ddgraph.optim.equivariance import CASES, run_case

IDS = [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("vertical", ["frozen", "sgd", "adam"])
def test_ddcadam_is_equivariant_fp64(case, vertical):
    """Vertical Adam normalises the round-off-sized gauge-mode gradient, so its floor is higher."""
    tol = 1e-9 if vertical == "adam" else 1e-12
    r = run_case(case, "ddcadam", torch.float64, steps=20, vertical=vertical)
    assert r["fixed"] < tol and r["orbit"] < tol


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ddcadam_frozen_does_not_drift(case):
    assert run_case(case, "ddcadam", torch.float64, steps=20, vertical="frozen")["drift"] < 1e-12


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ddcadam_fp32_residual_is_round_off(case):
    assert run_case(case, "ddcadam", torch.float32, steps=20)["fixed"] < 1e-5


@pytest.mark.parametrize("case", [c for c in CASES if not c.name.startswith("CE")], ids=lambda c: c.name)
def test_adam_breaks_multiplicative_equivariance(case):
    r = run_case(case, "adam", torch.float64, steps=20)
    assert r["fixed"] > 1e-3 and r["orbit"] > 1e-3


@pytest.mark.parametrize("case", [c for c in CASES if c.name.startswith("CE")], ids=lambda c: c.name)
def test_adam_drifts_along_shift_orbit_but_stays_equivariant(case):
    """Adam's step does not depend on theta, so a shift commutes with it; its step leaks into the shift."""
    r = run_case(case, "adam", torch.float64, steps=20)
    assert r["fixed"] < 1e-12 and r["drift"] > 1e-4
    assert run_case(case, "adamw", torch.float64, steps=20)["fixed"] > 1e-4


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_weight_decay_scoping(case):
    """Decay commutes with rescalings; on shifts only the 'horizontal' decay is orbit-exact."""
    full = run_case(case, "ddcadam", torch.float64, steps=20, weight_decay=0.1)
    if case.name.startswith("CE"):
        assert full["fixed"] > 1e-4
        horizontal = run_case(case, "ddcadam", torch.float64, steps=20, weight_decay=0.1,
                              translation_decay="horizontal")
        assert horizontal["fixed"] < 1e-12
    else:
        assert full["fixed"] < 1e-12
