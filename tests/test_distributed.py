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
import torch.distributed as dist
import torch.multiprocessing as mp

import ddgraph
from ddgraph.errors import ProbeOptionError

ROOT = Path(__file__).resolve().parents[1]
RUN = dict(loss="ce", n_samples=1500, chunk=300, grid=[1e-5, 1e-6, 1e-7, 1e-8], progress=False)
BUDGET_MB = 0.15  # under the small transformer's 0.18 MB of factor sums: one process cannot hold them


def _model():
    sys.path.insert(0, str(ROOT / "examples"))
    import transformer

    torch.manual_seed(0)
    return transformer.small_transformer()


def _summary(d) -> dict:
    m = d.measurement
    return {"primary": [(c.param, c.factor, c.direction, c.verdict, c.fit.slope) for c in d.primary],
            "series": {n: w.series for n, w in m.weights.items()},
            "extras": [(x["node"], x["verdict"]) for x in [*d.ln, *d.streams]],
            "grid": m.grid, "ranks": m.ranks, "factor_mb": m.factor_mb}


def _worker(rank: int, world: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        model, x = _model()
        found = {"all": _summary(ddgraph.check(model, x, **RUN)),
                 "owned": _summary(ddgraph.check(model, x, **RUN, factor_budget=BUDGET_MB))}
        try:
            ddgraph.check(model, x, **{**RUN, "chunk": 1500})  # one chunk for two ranks
        except ProbeOptionError as exc:
            found["one_chunk"] = str(exc)
        with open(f"{out}.{rank}", "wb") as fh:
            pickle.dump(found, fh)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """What each of 2 local gloo ranks returned (spawned once for the module)."""
    tmp = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(2, str(tmp / "store"), str(tmp / "out")), nprocs=2)
    return [pickle.loads((tmp / f"out.{r}").read_bytes()) for r in range(2)]


@pytest.fixture(scope="module")
def one_process():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, x = _model()
        return _summary(ddgraph.check(model, x, **RUN))
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


@pytest.mark.parametrize("budget", [0, -1, "big", True])
def test_a_bad_factor_budget_is_refused_before_the_trace(budget):
    with pytest.raises(ProbeOptionError, match="factor_budget"):
        ddgraph.check(torch.nn.Linear(3, 3), torch.randn(2, 3), factor_budget=budget, progress=False)


def _cli(*args, launcher=()):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, *launcher, "-m", "ddgraph", "diff", "examples/chains.py:deep_relu", "--samples", "1200",
           "--chunk", "300", "--grid", "1e-2,1e-3,1e-4,1e-5", "--no-progress", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_runs_the_cli_and_only_rank_0_prints():
    one = _cli("--format", "json")
    two = _cli("--format", "json", launcher=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"))
    assert two.returncode == one.returncode == 0, two.stderr[-2000:]
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # one JSON document: rank 1 printed nothing
    assert [n["verdict"] for n in b["nodes"]] == [n["verdict"] for n in a["nodes"]]
    assert b["summary"] == a["summary"] and b["ok"]


def test_cli_refuses_a_device_it_does_not_have():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = _cli("--device", "cuda")
    assert r.returncode == 2 and "no CUDA GPU" in r.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_probe_on_a_gpu_measures_what_the_cpu_measures(one_process):
    model, x = _model()
    on_gpu = _summary(ddgraph.check(model, x, **RUN, device="cuda"))
    assert [p[:4] for p in on_gpu["primary"]] == [p[:4] for p in one_process["primary"]]
    for a, b in zip(one_process["primary"], on_gpu["primary"]):
        assert (math.isnan(a[4]) and math.isnan(b[4])) or a[4] == pytest.approx(b[4], abs=1e-6)
