"""The probe and the diff: examples pass, wrong predictions fail, bad sweeps get honest verdicts."""
import importlib
import math

import pytest
import torch

import ddgraph
from ddgraph.errors import ProbeError
from ddgraph.models import zoo

FAST = dict(n_samples=1500, grid=[1e-2, 1e-3, 1e-4, 1e-5], progress=False)
EXAMPLES = [("chains", "deep_linear"), ("chains", "deep_relu"), ("chains", "deep_gelu"), ("chains", "deep_tanh"),
            ("blocks", "residual_mlp"), ("blocks", "swiglu_mlp"), ("blocks", "layernorm_chain"),
            ("blocks", "rmsnorm_chain"), ("blocks", "hand_rmsnorm_chain"), ("blocks", "biased_chain"),
            ("attention", "attention_chain"), ("attention", "transformer_block")]


@pytest.mark.parametrize("module,factory", EXAMPLES)
def test_every_example_passes_its_diff(module, factory):
    model, inputs = getattr(importlib.import_module(module), factory)()
    d = ddgraph.check(model, inputs, **FAST)
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict, c.fit.reason) for c in d.failures]
    assert all(c.verdict == "pass" for c in d.primary)


def test_transformer_with_embedding_passes_inside_its_window():
    model, inputs = importlib.import_module("transformer").small_transformer()
    d = ddgraph.check(model, inputs, loss="ce", n_samples=1500, grid=[1e-5, 1e-6, 1e-7, 1e-8], progress=False)
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]


@pytest.mark.parametrize("kw", [dict(loss="ce"), dict(loss="ce", fisher="empirical"), dict(regime="noise-free"),
                                dict(alpha=[1, 2, 1, 3])])
def test_regimes_and_exponents_are_measured(kw):
    d = ddgraph.check(zoo.chain(4, "relu"), torch.randn(4, 8), **kw, **FAST)
    assert d.ok


def test_outside_the_asymptotic_window_is_not_a_pass():
    model = zoo.NormedChain(4, 1)
    d = ddgraph.check(model, torch.randn(4, 8), n_samples=1500, grid=[0.9, 0.6, 0.3, 0.1], progress=False)
    verdicts = {c.verdict for c in d.primary}
    assert "not-asymptotic" in verdicts and not d.ok


def test_nan_in_the_forward_pass_gets_a_verdict_not_a_crash():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False), zoo.Scale(float("nan")),
                                torch.nn.Linear(8, 8, bias=False))
    d = ddgraph.check(model, torch.randn(4, 8), **FAST)
    assert d.measurement.nan, "the NaN was not located"
    assert not d.ok
    assert {c.verdict for c in d.primary} <= {"unfittable", "pass", "floor"}
    assert any(c.verdict == "unfittable" for c in d.primary)


def test_the_users_model_is_never_mutated():
    model = zoo.chain(3, "relu", bias=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ddgraph.check(model, torch.randn(4, 8), **FAST)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].dtype == torch.float32 for k in before)


def test_measurement_schema_and_kronecker_lift():
    d = ddgraph.check(zoo.chain(3, "linear"), torch.randn(4, 8), **FAST)
    series = d.measurement.weights[d.prediction.nodes[1].node]
    for factor in ("A", "G"):
        assert set(series.series[factor]) == {"dd", "schur", "lmin", "lmax"}
        assert len(series.series[factor]["dd"][1]) == len(FAST["grid"])
    # middle layer: both dead entries decay, so the bottom eigenvectors are the dead coordinates (Cor 28)
    assert series.overlap["A"][1] > 0.999 and series.overlap["G"][1] > 0.999


def test_meta_models_cannot_be_probed():
    with torch.device("meta"):
        model = zoo.chain(2)
    with pytest.raises(ProbeError, match="meta device"):
        ddgraph.probe(model, torch.randn(4, 8).to("meta"), progress=False)


def test_bad_grid_is_refused():
    with pytest.raises(ProbeError, match="at least 3 values"):
        ddgraph.probe(zoo.chain(2), torch.randn(4, 8), grid=[0.1, 0.01], progress=False)


def test_user_sampler_and_tensor_dataset():
    data = torch.randn(3000, 8)
    d1 = ddgraph.check(zoo.chain(3, "relu"), torch.randn(4, 8), sampler=data, **{**FAST, "n_samples": 3000})
    d2 = ddgraph.check(zoo.chain(3, "relu"), torch.randn(4, 8),
                       sampler=lambda n, gen: torch.rand(n, 8, generator=gen, dtype=torch.float64) - 0.5, **FAST)
    assert d1.ok and d2.ok


def test_json_contract_of_diff():
    d = ddgraph.check(zoo.chain(2, "relu"), torch.randn(4, 8), **FAST)
    data = d.to_json()
    for key in ("ddgraph_version", "model", "regime", "loss", "kl_order", "fisher_rate", "rlct", "nodes",
                "ln_kernels"):
        assert key in data
    node = data["nodes"][0]
    for key in ("param", "module", "primitive", "a_rate", "g_rate", "status", "bracket", "lemmas",
                "measured", "se", "verdict"):
        assert key in node
    assert node["verdict"]["g_rate"] == "pass" and math.isclose(node["measured"]["g_rate"], 2.0, abs_tol=0.01)


def test_fit_of_a_flat_series_has_no_r2():
    """R^2 of a series constant to rounding is undefined (NaN), never rounding noise like -3.17; the slope
    is still 0 and the fit is usable."""
    import math

    from ddgraph.probing.fit import FIT_OK, fit_rate

    ts = [10.0 ** -k for k in range(2, 42)]
    flat = fit_rate(ts, [0.79958332] * len(ts), tol=0.1)
    assert math.isnan(flat.r2) and flat.status == FIT_OK and abs(flat.slope) < 1e-9
    power = fit_rate(ts[:6], [t ** 2 for t in ts[:6]])
    assert power.r2 > 0.999 and power.status == FIT_OK


def test_cell_a_min_r2_cell_says_flat():
    import math

    from ddgraph.optim.report import _min_r2

    assert _min_r2({"G1_r2": 1.0, "A2_r2": math.nan}) == "1.0000 (A2 flat)"
    assert _min_r2({"G1_r2": math.nan, "A2_r2": math.nan}) == "flat"
    assert _min_r2({"G1_r2": 0.5, "A2_r2": 1.0}) == "0.5000"


class _TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.out = (torch.nn.Linear(4, 4, bias=False) for _ in range(3))

    def forward(self, x, *, y):
        return self.out(torch.relu(self.a(x) + self.b(y)))


def test_keyword_example_inputs_are_probed_in_the_graphs_order():
    torch.manual_seed(0)
    inputs = {"y": torch.randn(1, 4), "x": torch.randn(1, 4)}  # keyword-only y; dict order differs
    d = ddgraph.check(_TwoInputs(), inputs, progress=False, n_samples=2000, grid=[1e-2, 1e-3, 1e-4])
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]
    assert sorted(inputs) == ["x", "y"]  # the user's dict is not changed


def test_rmsnorm_after_a_rank_deficient_map_inherits_its_kernel_and_says_so():
    """Gemma2's post-attention RMSNorm reads o_proj's output, whose bulk has fewer dimensions than
    channels: the kernel is the input's, not made by the norm; the dead channel is read apart."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 3, bias=False), torch.nn.Linear(3, 8, bias=False),
                                torch.nn.RMSNorm(8), torch.nn.Linear(8, 2, bias=False))
    d = ddgraph.check(model, torch.randn(1, 8), progress=False, n_samples=2000, grid=[1e-2, 1e-3, 1e-4])
    (rms,) = d.ln
    assert rms["verdict"] == "pass" and "inherited" in rms["claim"]
    model = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False), torch.nn.RMSNorm(8),
                                torch.nn.Linear(8, 2, bias=False))
    (rms,) = ddgraph.check(model, torch.randn(1, 8), progress=False, n_samples=2000, grid=[1e-2, 1e-3, 1e-4]).ln
    assert rms["verdict"] == "pass" and "inherited" not in rms["claim"]


def test_kernel_check_reads_the_claim_in_a_two_dimensional_kernel():
    """A covariance whose kernel holds the predicted u and one more direction: the bottom eigenvector need
    not be u (the cosine is below 1), but u's Rayleigh quotient is at the floor, which is the claim."""
    from ddgraph.probing.observables import holds_kernel, kernel_check
    torch.manual_seed(0)
    u = torch.randn(6, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.cat([u[:, None], torch.randn(6, 5, dtype=torch.float64)], 1))
    basis = q[:, 2:]  # orthogonal to u and to q[:, 1]: the kernel is span(u, q[:, 1])
    cov = basis @ torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)) @ basis.T
    chk = kernel_check(cov, u + 1e-9 * q[:, 1])
    assert holds_kernel(chk["rayleigh"]) and chk["ratio"] < 1e-10
    assert not holds_kernel(kernel_check(cov, q[:, 2])["rayleigh"])  # a direction outside the kernel
