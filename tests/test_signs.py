"""The sign language of rule files (docs/THEORY.md §3.11): parsing, evaluation, validation, and that a
model where no sign is determined keeps every prediction."""
import math

import pytest
import torch
from torch import nn

import ddgraph
from ddgraph.core import signs
from ddgraph.core.engine import VALUATION, VALUATION_EVENTS
from ddgraph.core.expr import evaluate, parse
from ddgraph.core.rules import parse_rule
from ddgraph.errors import ExprError, RuleFileError


def _sign(text, operand=None, value=None, order=None, clips=True):
    return signs.evaluate(signs.parse(text), operand or (lambda r, a: "?"), value or (lambda n: "?"),
                          order or (lambda t: evaluate(t, lambda ref, c: (1.0, frozenset()), 1, [0, 1])[0]), clips)


def test_products_leads_and_clips():
    assert [signs.multiply(a, b) for a, b in (("+", "-"), ("-", "-"), ("?", "-"), ("0", "?"))] == ["-", "+", "?", "0"]
    assert signs.lead([(2, "-"), (1, "+"), (math.inf, "-")]) == "+"
    assert signs.lead([(1, "-"), (1, "+")]) == "?" and signs.lead([(math.inf, "+")]) == "?"
    neg = lambda role, over_all: "-"  # noqa: E731
    assert _sign("-gain * s.x", neg, lambda n: "+") == "+"
    assert _sign("clip(s.x)", neg) == "0" and _sign("clip(s.x)") == "+" and _sign("clip(s.x)", neg, clips=False) == "?"
    assert _sign("lead(v.x + 1: s.x, 3: +)", neg) == "-" and _sign("lead(v.x + 3: s.x, 2: +)", neg) == "+"
    assert _sign("-") == "-" and _sign("- -") == "+"


@pytest.mark.parametrize("bad", ["", "s.x +", "lead(v.x s.x)", "all(gain)", "clip(s.x", "s.x.y", "2"])
def test_a_bad_sign_is_named(bad):
    with pytest.raises(ExprError):
        signs.parse(bad)


RULE = '''primitive = "{prim}"
[forward]
v = "v.x"
d = "d.x"
s = "{s}"
[backward]
x = "w.out"
'''


def test_a_rule_file_names_a_bad_sign_field():
    with pytest.raises(RuleFileError, match=r"forward.s.*valid sign"):
        parse_rule("r.toml", RULE.format(prim="act_relu", s="s.x +"))
    with pytest.raises(RuleFileError, match=r"forward.s.*signs of roles"):
        parse_rule("r.toml", RULE.format(prim="act_relu", s="s.y"))
    with pytest.raises(RuleFileError, match=r"forward.s.*signs of roles"):
        parse_rule("r.toml", RULE.format(prim="act_relu", s="gain * s.x"))  # act_relu has no value order
    assert parse_rule("r.toml", RULE.format(prim="layernorm", s="-gain * all(s.x)")).forward["dead"]["s"]
    with pytest.raises(RuleFileError, match=r"backward.*only keys x"):
        parse_rule("r.toml", RULE.format(prim="act_relu", s="+").replace('x = "w.out"', 'x = "w.out"\ns = "+"'))


def test_others_minimises_over_every_class_but_its_own():
    orders = {0: 3.0, 1: 1.0, 2: 2.0}
    look = lambda ref, c: (orders[c], frozenset())  # noqa: E731
    assert evaluate(parse("others(v.x)"), look, 1, [0, 1, 2])[0] == 2.0
    assert evaluate(parse("others(v.x)"), look, 0, [0, 1, 2])[0] == 1.0
    assert evaluate(parse("others(v.x)"), look, 0, [0])[0] == math.inf


def _relu_linear_ln(act):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8, bias=False), act(), nn.Linear(8, 8), nn.LayerNorm(8),
                         nn.Linear(8, 8, bias=False), act(), nn.Linear(8, 4, bias=False)), torch.randn(2, 8)


def test_unknown_signs_change_nothing():
    """A ReLU into a LayerNorm through a biased Linear: the LayerNorm's input mean has an unknown sign (the
    bias), so nothing is cut: the ladder is that of the same model with leaky ReLUs, whose signs are never
    determined. The event world runs (the ReLU feeds a normaliser) but the bias keeps the LayerNorm's
    scale at order 0 there: no crossover."""
    pred, leaky = ddgraph.predict(*_relu_linear_ln(nn.ReLU)), ddgraph.predict(*_relu_linear_ln(nn.LeakyReLU))
    assert [(n.a_rates, n.g_rates) for n in pred.nodes] == [(n.a_rates, n.g_rates) for n in leaky.nodes]
    assert pred.crossovers == () and all(n.invariant is None for n in pred.nodes)
    assert not any(VALUATION_EVENTS in leaky.graph[n] for n in leaky.graph.order())
    g = pred.graph
    relu = g.nodes_with("act_relu")[0]
    assert set(g[relu][VALUATION_EVENTS]) == {relu}
    assert {g[n][VALUATION].s[1][0] for n in g.nodes_with("act_relu")} == {"+"}
    ln = g.nodes_with("layernorm")[0]
    assert g[ln][VALUATION].s[1][0] == "?"
