"""``ddgraph architectures``: trace, label, predict and diff every real architecture; print (or ``--out``) the report."""
from __future__ import annotations

import math
import time
import traceback
import warnings
from pathlib import Path

import click
import numpy as np
import torch

TRACER_WHY = {
    "fx": "torch.fx traced the model through every module",
    "export": "torch.fx cannot trace it (Python control flow on tensor values / keyword-only inputs in "
              "the library's forward), so torch.export.export(strict=False) took over",
}


def run_one(arch: dict, n_samples: int, points: int) -> dict:
    """Trace, label, predict and check one architecture's small config; never raises."""
    from ddgraph import api
    from ddgraph.models import architectures

    args = ", ".join(f"{k}={v}" for k, v in arch.get("small_args", {}).items())
    out = {"name": arch["name"], "library": arch["library"], "factory": f"{arch['small']}({args})",
           "adds": arch["adds"]}
    try:
        model, inputs = getattr(architectures, arch["small"])(**arch.get("small_args", {}))
    except Exception as exc:
        out["error"] = f"not built: {exc}"
        return out
    try:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = api.predict(model, inputs)
        out["predict_seconds"] = time.perf_counter() - t0
        g = pred.graph
        out["tracer"] = g.tracer
        if g.tracer == "export":  # say what stopped torch.fx, in the library's own code
            from ddgraph.frontend.tracing import _short_failure, trace_fx

            try:
                trace_fx(model)
            except Exception as exc:
                out["fx_failure"] = _short_failure(exc)
        out["labels"] = {k: v for k, v in g.summary().items() if k not in ("param", "const")}
        out["unknown"] = [u["op"] for u in pred.unknown_ops]
        out["params"] = sum(p.numel() for p in model.parameters())
        out["rows"] = len(pred.nodes)
        hi, lo = arch["grid"]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = api.check(model, inputs, n_samples=n_samples, progress=False,
                          grid=[float(t) for t in np.geomspace(hi, lo, points)])
        out["check_seconds"] = time.perf_counter() - t0
        out["grid"] = (hi, lo, points)
        out["ok"] = d.ok
        out["summary"] = d.summary()
        out["out_of_reach"] = sorted({f"{n.param}: {n.reason}" for n in pred.nodes if n.status != "in-reach"})
        out["failures"] = [f"{c.param} {c.factor}: predicted {c.predicted}, fitted {c.fit.slope:.3f} "
                           f"({c.verdict})" for c in d.failures]
        out["sites"] = [f"{x.get('module') or x['node']}: {x['claim']}: {x['verdict']}" for x in d.ln + d.streams]
        out["rows_table"] = [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.primary
                             if c.direction == 1]
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
        out["where"] = traceback.format_exc(limit=-2).strip().splitlines()[-3:]
    return out


REAL_SCALE = ("gpt2_xl", "llama2_7b", "llama2_70b")


def real_scale(name: str) -> dict:
    """Trace, label and predict one real-scale configuration (meta device); times in seconds."""
    from ddgraph import api
    from ddgraph.models import architectures

    model, inputs = getattr(architectures, name)()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        g = api.trace(model, inputs)
        t1 = time.perf_counter()
        api.label(g)
        t2 = time.perf_counter()
        pred = api.predict(g)
        t3 = time.perf_counter()
    first = next((n for n in pred.nodes if ".0." in n.param and n.kind != "embedding"), None)
    return {"name": name, "params": sum(p.numel() for p in model.parameters()), "nodes": g.nx.number_of_nodes(),
            "rows": len(pred.nodes), "unknown": len(pred.unknown_ops), "tracer": g.tracer,
            "trace": t1 - t0, "label": t2 - t1, "predict": t3 - t2, "kl": pred.kl_order,
            "in_reach": pred.counts()["in-reach"],
            "first": f"{first.param}: A {_fmt(first.a_rate)}, G {_fmt(first.g_rate)}" if first else "-"}


def render_real(rows: list[dict]) -> str:
    lines = ["", "## Prediction at real scale", "",
             "Built from transformers' classes on the meta device (no weights in memory); "
             "`python benchmarks/real_scale.py` prints the same timings.", "",
             "| config | parameters | graph nodes | ladder rows | in reach | unknown ops | tracer | trace s | "
             "label s | predict s | KL order k | first block's first weight |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['params'] / 1e9:.2f}B | {r['nodes']} | {r['rows']} | {r['in_reach']} | "
                     f"{r['unknown']} | {r['tracer']} | {r['trace']:.1f} | {r['label']:.1f} | "
                     f"{r['predict']:.1f} | {_fmt(r['kl'])} | `{r['first']}` |")
    return "\n".join(lines) + "\n"


def _site_packages(text: str) -> str:
    import re

    return re.sub(r"/\S*/site-packages/", "", text)


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, tuple):
        return f"[{_fmt(x[0])}, {_fmt(x[1])}]"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def render(results: list[dict], n_samples: int, command: str) -> str:
    lines = ["# ddgraph on real architectures", "",
             f"Generated by `{command}` (torch {torch.__version__}). Small configs of each library's own "
             f"model class with its random init; probe: fp64, n = {n_samples} samples, common random "
             "numbers, MSE noisy regime. Rows are named by the model's own parameter names.", "",
             "| model | library | tracer | labelled nodes | unknown ops | diff | verdicts |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['name']} | {r['library']} | - | - | - | not run | {r['error'][:160]} |")
            continue
        n_lab = sum(r["labels"].values())
        verdicts = ", ".join(f"{k} {v}" for k, v in r["summary"].items())
        lines.append(f"| {r['name']} | {r['library']} | {r['tracer']} | {n_lab} | "
                     f"{', '.join(r['unknown']) or 'none'} | {'pass' if r['ok'] else 'FAIL'} | {verdicts} |")
    for r in results:
        lines += ["", f"## {r['name']} (`ddgraph.models.architectures.{r['factory']}`)", "", f"What it adds: {r['adds']}.", ""]
        if "error" in r:
            lines += [f"**Not run.** {r['error']}", ""]
            continue
        why = TRACER_WHY.get(r["tracer"], "")
        if r.get("fx_failure"):
            why = f"torch.fx failed ({_site_packages(r['fx_failure'])}), so torch.export.export(strict=False) took over"
        lines += [f"- Tracer: **{r['tracer']}** — {why}.",
                  f"- Labels: {', '.join(f'{k} {v}' for k, v in r['labels'].items())}; "
                  f"unknown ops: {', '.join(r['unknown']) or 'none'}.",
                  f"- Probe grid: t from {r['grid'][0]:g} to {r['grid'][1]:g} ({r['grid'][2]} points); "
                  f"check took {r['check_seconds']:.1f} s.",
                  f"- Diff: {'every in-reach node passes' if r['ok'] else 'FAILURES: ' + '; '.join(r['failures'])}.",
                  f"- Out of reach: {'; '.join(r['out_of_reach']) or 'nothing (every weight node is in reach)'}.",
                  "", "| parameter | factor | predicted | fitted | verdict |", "|---|---|---|---|---|"]
        lines += [f"| `{p}` | {f} | {_fmt(pr)} | {_fmt(s)} | {v} |" for p, f, pr, s, v in r["rows_table"]]
        if r["sites"]:
            lines += ["", "Structural sites: " + "; ".join(r["sites"]) + "."]
    lines += ["", "## How each architecture's additions are handled", "",
              "- **Tied weights** (GPT-2 `wte`/`lm_head`, BERT's decoder): the tensor is one parameter used twice; "
              "each use is its own row under the name its module gives it. Embedding and unembedding put the "
              "dead entry at the same cell (dead token x dead channel), so the canonical configuration is "
              "consistent. Rules: `weight` (kind embedding / linear); probe case `tied_embedding`.",
              "- **Fused qkv** (`c_attn`): the channel analysis gives one dead index per q/k/v slice and per "
              "head; the ladder adds rows `c_attn.weight[q]`, `[k]`, `[v]` whose G is read on the slice's dead "
              "block.",
              "- **Position / token-type tables and the class token** enter the stream like biases: their "
              "dead column is zeroed at the canonical configuration (`bias_add`, `prepend_token`).",
              "- **GELU-tanh written out** (`0.5 x (1 + tanh(c (x + 0.044715 x^3)))`): fused into one node, "
              "classified by evaluating phi(0) = 0 and phi'(0) = 1/2 (rule `act_smooth`; probe case "
              "`gelu_tanh_chain`).",
              "- **Rotary embeddings**: `rotate_half` cuts each head into halves, so each half gets its own "
              "dead index and the rotation pairs dead with dead; the ops are scale (cos, sin, neg), concat "
              "and add, whose rules apply unchanged (probe case `rotary_gqa`).",
              "- **Grouped-query attention**: `repeat_kv` is expand + reshape (shape-only), so each KV head's "
              "dead index is shared by its query group; the attention rule applies (probe case `rotary_gqa`, "
              "where V rate = O rate + 2 still holds).",
              "- **Post-norm blocks** (BERT): LN(x + f(x)) resets the stream's dead order to 0 at every block "
              "(rule `layernorm`), so the residual-stream sites have rate 0.",
              "- **Batch norm**: eval mode is a per-channel affine map (`batchnorm_eval`); train mode "
              "(`batchnorm_train`) keeps the orders only below t* ~ sqrt(eps)/std, where eps dominates the "
              "batch variance; above it the batch std resets the dead channel. Probe case `conv_bn` "
              "(convolutions with padding and stride).",
              "- **ResNet-18 / timm**: PyPI's torchvision wheels for this torch are CUDA builds that fail to "
              "import beside torch 2.13.0+cpu (`operator torchvision::nms does not exist`), and timm imports "
              "torchvision; the factories exist and raise a clear error, the tests skip with that reason. "
              "Convolutions with padding and stride and batch norm are checked on `conv_bn` instead."]
    return "\n".join(lines) + "\n"


def build(quick: bool = False, only=(), real: bool = False, log=lambda msg: None) -> str:
    """Run every architecture (or those in ``only``) and return the report; ``log`` gets progress lines."""
    from ddgraph.models.architectures import ARCHITECTURES

    n_samples, points = (600, 4) if quick else (2000, 5)
    results = []
    for arch in ARCHITECTURES:
        if only and arch["name"] not in only and arch["small"] not in only:
            continue
        log(f"{arch['name']} ...")
        r = run_one(arch, n_samples, points)
        log(f"  {r.get('error') or ('pass' if r['ok'] else 'FAIL') + ' ' + str(r['summary'])}")
        results.append(r)
    text = render(results, n_samples, "ddgraph architectures" + (" --quick" if quick else "")
                  + (" --real" if real else ""))
    if real:
        rows = []
        for name in REAL_SCALE:
            log(f"{name} (meta device) ...")
            rows.append(real_scale(name))
        text += render_real(rows)
    return text


@click.command("architectures")
@click.option("--quick", is_flag=True, help="Fewer samples and grid points (a smoke run).")
@click.option("--only", multiple=True, help="Run only these models (by name, e.g. GPT-2).")
@click.option("--real", is_flag=True, help="Also predict GPT-2 XL, LLaMA-2-7B and -70B (meta device; minutes).")
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False),
              help="Where to write the report (default or '-': stdout).")
def architectures(quick, only, real, out_file):
    """Diff every real architecture (transformers, torchvision, timm) on a small config; write the report."""
    from ddgraph.cli.main import writable_file
    from ddgraph.errors import OptionError
    from ddgraph.models.architectures import ARCHITECTURES

    known = {a["name"] for a in ARCHITECTURES} | {a["small"] for a in ARCHITECTURES}
    unknown = [o for o in only if o not in known]
    if unknown:  # options first: nothing to check is not a report
        raise OptionError(f"--only {', '.join(unknown)}: no such architecture; choose from "
                          f"{', '.join(sorted(a['name'] for a in ARCHITECTURES))}")
    if out_file not in (None, "-"):
        writable_file(out_file, "--out", make_parents=True)
    text = build(quick, only, real, log=lambda msg: click.echo(msg, err=True))
    if out_file is None or out_file == "-":
        click.echo(text, nl=False)
    else:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        Path(out_file).write_text(text)
        click.echo(f"wrote {out_file}", err=True)
