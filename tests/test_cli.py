"""The command line: predict, graph, rules, diff (exit status), probe, and clean errors."""
import json

import pytest
from click.testing import CliRunner

from ddgraph.cli.main import main

RUN = CliRunner()


def invoke(*args):
    return RUN.invoke(main, list(args), catch_exceptions=False)


def test_predict_table_and_json():
    res = invoke("predict", "examples/blocks.py:residual_mlp")
    assert res.exit_code == 0
    assert "layers.1.weight" in res.output and "KL order k = 2" in res.output
    data = json.loads(invoke("predict", "examples/blocks.py:residual_mlp", "--format", "json").output)
    assert [n["g_rate"] for n in data["nodes"]] == [2.0, 4.0, 2.0, 0.0]
    assert data["regime"] == "noisy" and data["kl_order"] == 2.0 and data["rlct"] == 0.25


def test_predict_timings():
    plain = json.loads(invoke("predict", "examples/blocks.py:residual_mlp", "--format", "json").output)
    assert "timings" not in plain
    data = json.loads(invoke("predict", "examples/blocks.py:residual_mlp", "--format", "json", "--timings").output)
    assert set(data["timings"]) == {"trace", "label", "predict"}
    assert all(isinstance(s, float) and s > 0 for s in data["timings"].values())
    assert {k: v for k, v in data.items() if k != "timings"} == plain
    res = invoke("predict", "examples/blocks.py:residual_mlp", "--timings")
    assert res.exit_code == 0 and all(f"{stage} " in res.output.splitlines()[-1] for stage in data["timings"])


def test_predict_options():
    data = json.loads(invoke("predict", "examples/chains.py:deep_linear", "--alpha", "1,2,1,3",
                             "--format", "json").output)
    assert [n["g_rate"] for n in data["nodes"]] == [12.0, 8.0, 6.0, 0.0]
    data = json.loads(invoke("predict", "ddgraph.models.zoo:SwiGLU", "--loss", "ce", "--format", "json").output)
    assert [n["g_rate"] for n in data["nodes"]] == [4.0, 4.0, 0.0]
    data = json.loads(invoke("predict", "examples/chains.py:deep_linear", "--directions", "2",
                             "--alpha", "3.weight=1/2", "--format", "json").output)
    assert [d["g_rate"] for d in data["nodes"][0]["directions"]] == [6.0, 8.0]


@pytest.mark.parametrize("args,message", [
    (["predict", "examples/nope.py:x"], "no file"),
    (["predict", "examples/chains.py:nothing"], "has no factory"),
    (["predict", "no_such_package.mod:f"], "cannot import"),
    (["predict", "examples/chains.py"], "must look like"),
    (["predict", "examples/chains.py:deep_relu", "--alpha", "1,2"], "4 weights"),
    (["predict", "examples/chains.py:deep_relu", "--alpha", "x.weight=2"], "not weights of this model"),
    (["predict", "examples/chains.py:deep_relu", "--rules", "tests/fixtures/does_not_exist"], "not a directory"),
])
def test_errors_are_clear_and_exit_2(args, message):
    res = invoke(*args)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output


def test_errors_go_to_stderr_and_are_json_under_format_json():
    res = invoke("predict", "no_such_package.mod:f")
    assert res.exit_code == 2 and res.stdout == "" and "cannot import" in res.stderr
    res = invoke("predict", "no_such_package.mod:f", "--format", "json")
    error = json.loads(res.stdout)["error"]
    assert res.exit_code == 2 and error["kind"] == "bad-input" and error["type"] == "TargetError"
    assert "cannot import" in error["message"]


def test_predict_table_fits_a_terminal_and_verbose_adds_provenance():
    res = invoke("predict", "ddgraph.models.hf:mistral")
    assert res.exit_code == 0 and max(len(line) for line in res.stdout.splitlines()) <= 120
    assert res.stderr == ""  # torch.export's own warnings are not the user's business
    assert "main lemma" in res.stdout and "module" not in res.stdout.split("─")[0]
    res = invoke("predict", "ddgraph.models.hf:mistral", "--verbose")
    header = res.stdout.split("─")[0]
    assert "module" in header and "lemmas" in header and "model.layers.0.self_attn.q_proj" in res.stdout


def test_graph_writes_dot(tmp_path):
    out = tmp_path / "g.dot"
    res = invoke("graph", "examples/attention.py:transformer_block", "--dot", str(out))
    assert res.exit_code == 0
    text = out.read_text()
    assert text.startswith("digraph") and "layernorm" in text and "A=0 G=2" in text


def test_rules_lists_citations(tmp_path):
    res = invoke("rules")
    assert res.exit_code == 0 and "Thm 21" in res.output and "skip_add" in res.output
    data = json.loads(invoke("rules", "--format", "json").output)
    assert {r["primitive"] for r in data} >= {"weight", "layernorm", "attention", "output"}
    assert "forward cites" in res.output and "backward cites" in res.output
    noisy = next(r for r in data if r["primitive"] == "output" and r["when"].get("regime") == "noisy")
    assert noisy["cites"]["forward"] == [] and "Lemma 16" in noisy["cites"]["backward"]
    bias = next(r for r in data if r["primitive"] == "bias_add")
    assert bias["cites"] == {"forward": ["Thm 112"], "backward": []}


def test_diff_passes_and_fails(fixtures, tmp_path):
    ok = invoke("diff", "examples/chains.py:deep_relu", "--samples", "1000", "--no-progress",
                "--plot", str(tmp_path))
    assert ok.exit_code == 0, ok.output
    assert "every in-reach node passes" in ok.output
    assert (tmp_path / "ladder.png").exists() and (tmp_path / "node_0.weight.png").exists()
    bad = invoke("diff", "examples/chains.py:deep_relu", "--samples", "1000", "--no-progress",
                 "--rules", str(fixtures / "wrong_rules"))
    assert bad.exit_code == 1
    assert "did not pass" in bad.output and "2.weight" in bad.output


def test_diff_json_and_probe():
    data = json.loads(invoke("diff", "examples/chains.py:deep_linear", "--samples", "1000", "--no-progress",
                             "--format", "json").output)
    assert data["ok"] and data["nodes"][0]["verdict"]["g_rate"] == "pass"
    res = invoke("probe", "examples/chains.py:deep_linear", "--samples", "1000", "--no-progress",
                 "--grid", "geom:1e-2:1e-4:5")
    assert res.exit_code == 0 and "Schur complement" in res.output
