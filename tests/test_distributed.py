"""The probe on torch.distributed: 2 gloo ranks measure what one process measures, with factors
all-reduced or owned per layer under a memory budget; torchrun runs the CLI; a GPU run matches the CPU."""
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from rank_worker import summary

import ddgraph
from ddgraph.cli.main import main
from ddgraph.errors import ProbeOptionError

ROOT = Path(__file__).resolve().parents[1]
GRID = [1e-5, 1e-6, 1e-7, 1e-8]
RUN = dict(loss="ce", n_samples=800, chunk=200, grid=GRID, progress=False)  # 4 chunks: 2 per rank
BUDGET_MB = 0.15  # under the small transformer's 0.18 MB of factor sums: one process cannot hold them


def _model():
    """The small transformer (embedding, LayerNorms, residual streams, attention) and its traced graph."""
    sys.path.insert(0, str(ROOT / "examples"))
    import transformer

    torch.manual_seed(0)
    model, x = transformer.small_transformer()
    return ddgraph.trace(model, x), x


CLI = ["diff", "examples/transformer.py:small_transformer", "--loss", "ce", "--samples", str(RUN["n_samples"]),
       "--chunk", str(RUN["chunk"]), "--grid", ",".join(map(str, GRID)), "--no-progress"]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """What each of 2 local gloo ranks saw under ``torchrun --standalone --nproc_per_node 2`` (run once):
    the CLI's output and exit status, then the API's results (factors all-reduced and owned)."""
    tmp = tmp_path_factory.mktemp("ranks")
    args = tmp / "args.pkl"
    args.write_bytes(pickle.dumps(dict(out=str(tmp / "out"), cli=CLI, run=RUN, budget=BUDGET_MB,
                                       model_file=str(ROOT / "examples"))))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "rank_worker.py"), str(args)]
    r = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [pickle.loads((tmp / f"out.{k}").read_bytes()) for k in range(2)]
    return ranks


@pytest.fixture(scope="module")
def one_process():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, x = _model()
        return summary(ddgraph.check(model, x, **RUN))
    finally:
        torch.set_num_threads(n)


def _factor_entries(series: dict):
    """Every dead-block trace and lambda_max: sums of factor entries and a norm, no cancellation."""
    for node, by_factor in series.items():
        for factor, obs in by_factor.items():
            for name in ("dd", "lmax"):
                for j, values in obs[name].items():
                    for i, v in enumerate(values):
                        yield (node, factor, name, j, i), v


def _same_measurement(one: dict, many: dict) -> None:
    assert many["grid"] == one["grid"]
    assert [p[:4] for p in many["primary"]] == [p[:4] for p in one["primary"]]
    for a, b in zip(one["primary"], many["primary"]):
        assert (math.isnan(a[4]) and math.isnan(b[4])) or a[4] == pytest.approx(b[4], abs=1e-9), (a, b)
    assert many["extras"] == one["extras"]
    mine = dict(_factor_entries(many["series"]))
    for key, v in _factor_entries(one["series"]):
        assert mine[key] == pytest.approx(v, rel=1e-12, abs=0 if math.isfinite(v) else None), key


@pytest.mark.parametrize("mode", ["all", "owned"])
def test_two_gloo_ranks_measure_what_one_process_measures(two_ranks, one_process, mode):
    for rank in two_ranks:
        assert rank[mode]["ranks"] == 2
        _same_measurement(one_process, rank[mode])
    assert two_ranks[0][mode]["primary"] == two_ranks[1][mode]["primary"]  # every rank returns the result


def test_the_adaptive_sweep_and_a_nan_are_decided_as_in_one_process(two_ranks):
    from rank_worker import others

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = others()
    finally:
        torch.set_num_threads(n)
    assert one["nan"]  # the NaN was located
    for rank in two_ranks:
        _same_measurement(one["adaptive"], rank["adaptive"])
        assert rank["nan"] == one["nan"]


def test_factor_ownership_keeps_each_rank_under_its_budget(two_ranks, one_process):
    total = one_process["factor_mb"]
    assert total > BUDGET_MB  # one process would hold more than the budget
    assert two_ranks[0]["all"]["factor_mb"] == pytest.approx(total)  # all-reduce: every rank holds all
    assert two_ranks[0]["owned"]["factor_mb"] <= BUDGET_MB
    model, x = _model()
    with pytest.raises(ProbeOptionError, match="raise the budget or launch more ranks"):
        ddgraph.check(model, x, **RUN, factor_budget=BUDGET_MB)


def test_a_rank_without_a_chunk_is_refused(two_ranks):
    assert all("every rank needs one" in rank["one_chunk"] for rank in two_ranks)


def test_a_device_the_process_group_cannot_reduce_is_refused(two_ranks):
    expected = "process group runs gloo" if torch.cuda.is_available() else "no CUDA GPU"
    assert all(expected in rank["cuda_on_gloo"] for rank in two_ranks)


@pytest.mark.parametrize("device", ["tpu9", "meta", 3.5])
def test_a_bad_device_is_refused_before_the_trace(device):
    with pytest.raises(ProbeOptionError, match="device"):
        ddgraph.check(torch.nn.Linear(3, 3), torch.randn(2, 3), device=device, progress=False)


@pytest.mark.parametrize("budget", [0, -1, "big", True])
def test_a_bad_factor_budget_is_refused_before_the_trace(budget):
    with pytest.raises(ProbeOptionError, match="factor_budget"):
        ddgraph.check(torch.nn.Linear(3, 3), torch.randn(2, 3), factor_budget=budget, progress=False)


def test_torchrun_runs_the_cli_and_only_rank_0_prints(two_ranks, one_process):
    assert [rank["world"] for rank in two_ranks] == [2, 2] and [rank["status"] for rank in two_ranks] == [0, 0]
    assert two_ranks[1]["printed"] == ""
    found = json.loads(two_ranks[0]["printed"])
    verdicts = [v for n in found["nodes"] if n["verdict"] for v in n["verdict"].values()]
    assert verdicts == [p[3] for p in one_process["primary"] if p[2] == 1]


@pytest.mark.parametrize("device,message", [("cuda", "no CUDA GPU"), ("tpu9", "not a device torch knows")])
def test_cli_refuses_a_device_it_cannot_use(device, message):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = CliRunner().invoke(main, [*CLI, "--device", device])
    assert r.exit_code == 2 and message in r.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_probe_on_a_gpu_measures_what_the_cpu_measures(one_process):
    model, x = _model()
    on_gpu = summary(ddgraph.check(model, x, **RUN, device="cuda"))
    assert [p[:4] for p in on_gpu["primary"]] == [p[:4] for p in one_process["primary"]]
    for a, b in zip(one_process["primary"], on_gpu["primary"]):
        assert (math.isnan(a[4]) and math.isnan(b[4])) or a[4] == pytest.approx(b[4], abs=1e-6)
