"""Extending ddgraph from outside: a plugin primitive, its pattern and its rule, for one run."""
import json
import math

import pytest
import torch
from click.testing import CliRunner

import ddgraph
from ddgraph.cli.main import main
from ddgraph.errors import PatternError, PluginError
from ddgraph.frontend.plugins import extensions, load_plugin
from ddgraph.models import zoo
from ddgraph.probing.canonical import canonicalise

EXT = "examples/extend"
TARGET = f"{EXT}/model.py:make"
PLUGIN = f"{EXT}/plugin.py"
RULES = f"{EXT}/rules"
RUN = CliRunner()


def invoke(*args):
    return RUN.invoke(main, list(args), catch_exceptions=False)


def _statuses(*extra):
    res = invoke("predict", TARGET, "--format", "json", *extra)
    assert res.exit_code == 0, res.output
    return [n["status"] for n in json.loads(res.output)["nodes"]], json.loads(res.output)


def test_without_the_plugin_the_custom_op_makes_every_weight_no_rule():
    statuses, data = _statuses()
    assert statuses == ["no-rule"] * 3
    assert [u["op"] for u in data["unknown_ops"]] == ["ddgraph_example.channel_scale"]


def test_the_plugin_without_its_rule_labels_the_op_but_predicts_nothing_for_it():
    statuses, data = _statuses("--plugin", PLUGIN)
    assert statuses == ["no-rule"] * 3 and data["unknown_ops"] == []


def test_plugin_and_rule_predict_and_the_probe_confirms():
    statuses, data = _statuses("--plugin", PLUGIN, "--rules", RULES)
    assert statuses == ["in-reach"] * 3
    assert [n["a_rate"] for n in data["nodes"]] == [0.0, 4.0, 6.0]
    assert [n["g_rate"] for n in data["nodes"]] == [6.0, 2.0, 0.0]
    res = invoke("diff", TARGET, "--plugin", PLUGIN, "--rules", RULES, "--no-progress", "--samples", "4000")
    assert res.exit_code == 0, res.output
    assert "every in-reach node passes" in res.output


def test_a_plugin_exponent_is_a_vocabulary_of_its_own():
    _, data = _statuses("--plugin", PLUGIN, "--rules", RULES, "--exponent", "rho:scale=2")
    assert [n["g_rate"] for n in data["nodes"]] == [8.0, 2.0, 0.0]
    res = invoke("predict", TARGET, "--exponent", "rho:scale=2")
    assert res.exit_code == 2 and "declared by no primitive" in res.output


def test_the_scale_is_canonicalised_from_its_declaration_alone():
    model, x = load_plugin_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pred = ddgraph.predict(model, x, plugins=[PLUGIN], rules=extensions([PLUGIN], [RULES]).load_rules(),
                           exponents={"rho": {"scale": 3.0}})
    canon = canonicalise(pred.graph, pred.approach)
    canon.set_t(0.1)
    scale = canon.gm.get_parameter("scale")
    dead = pred.graph[next(n for n in pred.graph.order() if pred.graph[n]["primitive"] == "channel_scale")]
    (idx,) = [i for i, c in enumerate(dead["mask"].reshape(-1, 8).amax(0).tolist()) if c == 1]
    assert math.isclose(float(scale[idx]), 0.1 ** 3, rel_tol=1e-12)
    bulk = [i for i in range(8) if i != idx]
    assert torch.equal(scale[bulk], model.scale.detach().double()[bulk])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the user's model is untouched


def load_plugin_model():
    from ddgraph.frontend.target import load_target

    model, x, _ = load_target(TARGET)
    return model, x


def test_overriding_a_builtin_rule_is_announced(tmp_path):
    (tmp_path / "relu.toml").write_text('primitive = "act_relu"\n[forward]\nv = "v.x"\nd = "d.x"\n'
                                        '[backward]\nx = "w.out"\n')
    res = invoke("predict", "examples/chains.py:deep_relu", "--rules", str(tmp_path))
    assert "rule override" in res.output and "act_relu.toml" in res.output
    data = json.loads(invoke("predict", "examples/chains.py:deep_relu", "--rules", str(tmp_path),
                             "--format", "json").output)
    assert len(data["rules_overridden"]) == 1


def test_bad_plugins_are_named(tmp_path):
    with pytest.raises(PluginError, match="no such plugin file"):
        load_plugin(tmp_path / "missing.py")
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(PluginError, match="defines none of"):
        load_plugin(tmp_path / "empty.py")
    (tmp_path / "typo.py").write_text("PRIMITIVES = ['channel_scale']\n")
    with pytest.raises(PluginError, match="Primitive objects"):
        load_plugin(tmp_path / "typo.py")
    (tmp_path / "raises.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match="RuntimeError: boom"):
        load_plugin(tmp_path / "raises.py")
    (tmp_path / "undeclared.py").write_text(
        "from ddgraph.frontend.patterns import pattern\n"
        "@pattern('no_such_primitive', family='user')\n"
        "def p(g, n):\n    return None\n"
        "PATTERNS = [p]\n")
    with pytest.raises(PatternError, match="no_such_primitive"):
        extensions([tmp_path / "undeclared.py"])
    res = invoke("predict", TARGET, "--plugin", str(tmp_path / "undeclared.py"))
    assert res.exit_code == 2 and "PatternError" in res.output


def test_a_pattern_that_produces_what_it_did_not_declare_is_refused(tmp_path):
    (tmp_path / "liar.py").write_text(
        "from ddgraph.frontend.patterns import Match, pattern\n"
        "@pattern('act_relu', family='user')\n"
        "def p(g, n):\n"
        "    if g.nodes[n]['op'] == 'relu':\n"
        "        return Match('act_smooth', [('x', g.nodes[n]['operands'][0])])\n"
        "PATTERNS = [p]\n")
    with pytest.raises(PatternError, match="declares only act_relu"):
        ddgraph.predict(zoo.chain(2, "relu"), torch.randn(4, 8), plugins=[tmp_path / "liar.py"])
