"""One rank of tests/test_distributed.py, started by torchrun: the CLI first (it joins the process group
torchrun describes), then the Python API inside that group; each rank writes what it saw to OUT.RANK."""
import contextlib
import io
import pickle
import sys

import torch
import torch.distributed as dist

import ddgraph
from ddgraph.cli.main import main
from ddgraph.errors import ProbeOptionError


def summary(d) -> dict:
    """What the tests compare: primary verdicts and rates, every measured series, the LN and stream verdicts."""
    m = d.measurement
    return {"primary": [(c.param, c.factor, c.direction, c.verdict, c.fit.slope) for c in d.primary],
            "series": {n: w.series for n, w in m.weights.items()},
            "extras": [(x["node"], x["verdict"]) for x in [*d.ln, *d.streams]],
            "grid": m.grid, "ranks": m.ranks, "factor_mb": m.factor_mb}


def others() -> dict:
    """An adaptive sweep (the sweep's decisions are rank 0's) and a forward pass that makes a NaN."""
    from ddgraph.models import zoo

    torch.manual_seed(0)
    mlp = zoo.chain(4, "relu")
    adaptive = ddgraph.check(mlp, torch.randn(4, 8), n_samples=800, chunk=200, progress=False)
    nan = torch.nn.Sequential(torch.nn.Linear(8, 8, bias=False), zoo.Scale(float("nan")),
                              torch.nn.Linear(8, 8, bias=False))
    broken = ddgraph.check(nan, torch.randn(4, 8), n_samples=800, chunk=200, grid=[1e-2, 1e-3, 1e-4],
                           progress=False)
    return {"adaptive": summary(adaptive), "nan": broken.measurement.nan}


def run(out: str, cli: list[str], run: dict, budget: float, model_file: str) -> None:
    torch.set_num_threads(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            main([*cli, "--format", "json"], standalone_mode=False)
        except SystemExit as exc:
            status = exc.code
    rank = dist.get_rank()
    sys.path.insert(0, model_file)
    import transformer

    torch.manual_seed(0)
    model, x = transformer.small_transformer()
    graph = ddgraph.trace(model, x)
    found = {"printed": printed.getvalue(), "status": status, "world": dist.get_world_size(),
             "all": summary(ddgraph.check(graph, x, **run)),
             "owned": summary(ddgraph.check(graph, x, **run, factor_budget=budget))}
    found.update(others())
    try:
        ddgraph.check(graph, x, **{**run, "chunk": run["n_samples"]})  # one chunk for two ranks
    except ProbeOptionError as exc:
        found["one_chunk"] = str(exc)
    try:
        ddgraph.check(graph, x, **run, device="cuda")  # gloo reduces CPU tensors
    except ProbeOptionError as exc:
        found["cuda_on_gloo"] = str(exc)
    with open(f"{out}.{rank}", "wb") as fh:
        pickle.dump(found, fh)


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as fh:
        run(**pickle.load(fh))
