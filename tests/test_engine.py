"""The engine on hand-built graphs (no torch tracing): rules against hand-derived valuations."""
import math

import networkx as nx
import pytest

from ddgraph.core.approach import Approach
from ddgraph.core.engine import run
from ddgraph.core.graph import Graph
from ddgraph.core.rules import RuleSet
from ddgraph.prediction import assemble

INF = math.inf
RULES = RuleSet.load()


class Builder:
    """A tiny DSL for labelled graphs: every node carries bulk (0) and dead (1) classes."""

    def __init__(self):
        self.g = nx.DiGraph(order=[])
        self.n = 0

    def node(self, primitive, *roles, classes=(0, 1), **attrs):
        name = f"{primitive}{self.n}"
        self.n += 1
        if "weight" in attrs:  # what the labeller records: which parameter carries alpha
            attrs.setdefault("approach", {"alpha": attrs["weight"]["param"]})
        self.g.add_node(name, primitive=primitive, roles=list(roles), classes=frozenset(classes),
                        target=primitive, **attrs)
        for _, src in roles:
            self.g.add_edge(src, name)
        self.g.graph["order"].append(name)
        return name

    def weight(self, x, name):
        return self.node("weight", ("x", x), weight={"param": name, "bias": None, "kind": "linear"})

    def graph(self, n_dead=1):
        return Graph(nx=self.g, gm=None, model_name="hand", tracer="hand", n_dead=n_dead, labelled=True)


def ladder(graph, **kw):
    approach = Approach(**kw)
    run(graph, RULES, approach)
    pred = assemble(graph, RULES, approach)
    return [n.a_rate for n in pred.nodes], [n.g_rate for n in pred.nodes], pred


def chain(L, between=None):
    b = Builder()
    x = b.node("input")
    for i in range(L):
        x = b.weight(x, f"w{i}")
        if between and i < L - 1:
            x = b.node(between, ("x", x))
    b.node("output", ("x", x))
    return b.graph()


@pytest.mark.parametrize("L", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("between", [None, "act_relu", "act_smooth", "scale", "shape"])
def test_chain_ladder_thm21(L, between):
    a, g, pred = ladder(chain(L, between))
    assert a == [2.0 * l for l in range(L)]
    assert g == [2.0 * (L - 1 - l) for l in range(L)]
    assert all(x + y == 2 * L - 2 for x, y in zip(a, g))  # Cor 25: A-G duality
    assert pred.kl_order == L and pred.rlct == 1 / (2 * L)


def test_noise_free_shift_is_twice_the_output_deviation():
    _, g, _ = ladder(chain(3), regime="noise-free")
    assert g == [4 + 6.0, 2 + 6.0, 0 + 6.0]


def test_per_layer_exponents_thm106():
    _, g, _ = ladder(chain(4), alpha=[1, 2, 1, 3])
    assert g == [12.0, 8.0, 6.0, 0.0]  # G at l = 2 * (sum of exponents above l)


def residual_dag(L, skips):
    """Linear chain of L weights; skips = [(i, j)]: identity from the input of weight i to the output of j."""
    b = Builder()
    x = b.node("input")
    inputs = {}
    outs = {}
    for i in range(L):
        inputs[i] = x
        x = b.weight(x, f"w{i}")
        outs[i] = x
        for (s, e) in skips:
            if e == i:
                x = b.node("skip_add", ("a", x), ("b", inputs[s]))
    b.node("output", ("x", x))
    return b.graph()


def shortest_weighted_distance(L, skips):
    """Cor 48 / Def 41: distance from each weight's output to the model output (weights 1, skips 0)."""
    G = nx.DiGraph()
    for i in range(L):
        G.add_edge(("in", i), ("out", i), weight=1)
        G.add_edge(("out", i), ("in", i + 1), weight=0)
    for s, e in skips:
        G.add_edge(("in", s), ("out", e), weight=0)
    dist = nx.single_source_dijkstra_path_length(G.reverse(), ("in", L))
    fwd = nx.single_source_dijkstra_path_length(G, ("in", 0))
    return [dist[("out", i)] for i in range(L)], [fwd[("in", i)] for i in range(L)]


@pytest.mark.parametrize("L,skips", [(4, [(1, 2)]), (4, [(0, 3)]), (5, [(1, 2), (3, 4)]),
                                     (6, [(0, 1), (2, 3), (4, 5)]), (6, [(1, 4), (2, 3)]),
                                     (3, [(0, 0), (1, 1), (2, 2)])])
def test_residual_dag_distances_cor48(L, skips):
    a, g, _ = ladder(residual_dag(L, skips))
    back, fwd = shortest_weighted_distance(L, skips)
    assert g == [2.0 * d for d in back]
    assert a == [2.0 * d for d in fwd]


def test_design_residual_over_middle_two():
    a, g, _ = ladder(residual_dag(4, [(1, 2)]))
    assert a == [0, 2, 4, 2] and g == [2, 4, 2, 0]


def test_layernorm_placements():
    for pos, want_g, want_a in ((1, [0, 4, 2, 0], [0, 0, 2, 4]), (3, [4, 2, 0, 0], None)):
        b = Builder()
        x = b.node("input")
        for i in range(4):
            x = b.weight(x, f"w{i}")
            if i + 1 == pos:
                x = b.node("layernorm", ("x", x), shape=(4, 8))
        b.node("output", ("x", x))
        a, g, _ = ladder(b.graph())
        assert g == want_g
        if want_a:
            assert a == want_a


def test_swiglu_prop114():
    b = Builder()
    x = b.node("input")
    h1 = b.node("act_smooth", ("x", b.weight(x, "w1")))
    h3 = b.weight(x, "w3")
    gate = b.node("gate", ("a", h1), ("b", h3))
    b.node("output", ("x", b.weight(gate, "w2")))
    a, g, pred = ladder(b.graph())
    assert g == [4, 4, 0] and a == [0, 0, 4] and pred.kl_order == 3


def test_unknown_primitive_propagates_no_rule():
    b = Builder()
    x = b.node("input")
    h = b.weight(x, "w0")
    h = b.node("unknown", ("xs", h), unknown_op="aten.cumsum")
    b.node("output", ("x", b.weight(h, "w1")))
    _, _, pred = ladder(b.graph())
    assert [n.status for n in pred.nodes] == ["no-rule", "no-rule"]
    assert "cumsum" in pred.nodes[0].reason
    assert pred.kl_order is None


def test_unknown_on_constant_inputs_is_constant_folded():
    b = Builder()
    x = b.node("input")
    x = b.node("unknown", ("xs", x), unknown_op="aten.cumsum")
    b.node("output", ("x", b.weight(x, "w0")))
    a, g, pred = ladder(b.graph())
    assert pred.nodes[0].a_rate == 0.0 and g == [0.0]  # no weight upstream: nothing to lose


def test_bracket_rule_gives_interval():
    b = Builder()
    x = b.node("input")
    h = b.node("shift", ("x", b.weight(x, "w0")))
    b.node("output", ("x", b.weight(h, "w1")))
    _, _, pred = ladder(b.graph())
    assert pred.nodes[1].status == "bracket"
    assert pred.nodes[1].a_rates[0] == (0.0, 2.0)


def test_multi_direction_classes_are_independent():
    b = Builder()
    x = b.node("input", classes=(0, 1, 2))
    for i in range(3):
        x = b.node("weight", ("x", x), classes=(0, 1, 2), weight={"param": f"w{i}", "bias": None, "kind": "linear"})
    b.node("output", ("x", x), classes=(0, 1, 2))
    graph = b.graph(n_dead=2)
    approach = Approach(alpha={"w0": [1, 2], "w1": [1, 1], "w2": [3, 1]}, n_dead=2)
    run(graph, RULES, approach)
    pred = assemble(graph, RULES, approach)
    g1 = [n.g_rates[0][0] for n in pred.nodes]
    g2 = [n.g_rates[1][0] for n in pred.nodes]
    assert g1 == [2 * (1 + 3), 2 * 3, 0] and g2 == [2 * (1 + 1), 2 * 1, 0]


# --- citations follow the rule blocks on the critical path (THEORY §3.6) --------------------------------------

def test_a_rate_of_the_first_layer_cites_no_loss_rule():
    """Layer 1's A-rate rests on the input rule's forward block only; its G-rate reaches the loss."""
    loss_cites = set(RULES.lookup("output", {"loss": "mse", "regime": "noisy"}).cite)
    assert loss_cites  # else the check below could not fail
    _, _, pred = ladder(chain(3))
    first, last = pred.nodes[0], pred.nodes[-1]
    assert first.a_lemmas == RULES.lookup("input", {}).cites["forward"]
    assert not loss_cites & set(first.a_lemmas)
    assert loss_cites <= set(first.g_lemmas)  # Lemma 16 / Thm 21: the noisy base case
    assert set(first.lemmas) == set(first.a_lemmas) | set(first.g_lemmas)
    # the last layer's G-rate is the base case alone: no weight rule lies between it and the loss
    assert set(last.g_lemmas) == loss_cites
    # its A-rate passes through two weights' forward blocks, never a backward block
    weight = RULES.lookup("weight", {})
    assert set(weight.cites["forward"]) <= set(last.a_lemmas)
    assert "Thm 112" in last.a_lemmas and "Thm 112" not in last.g_lemmas  # bias term: forward only


def test_forward_only_use_does_not_list_backward_cites(tmp_path):
    """A ReLU between layers 1 and 2: layer 2 reads its forward block, layer 1 its backward block."""
    (tmp_path / "relu.toml").write_text('''primitive = "act_relu"
[forward]
cite = ["FWD-ONLY"]
v = "v.x"
d = "d.x"
[backward]
cite = ["BWD-ONLY"]
x = "w.out"
''')
    rules = RuleSet.load(tmp_path)
    b = Builder()
    x = b.node("input")
    h = b.node("act_relu", ("x", b.weight(x, "w0")))
    b.node("output", ("x", b.weight(b.weight(h, "w1"), "w2")))
    graph = b.graph()
    approach = Approach()
    run(graph, rules, approach)
    w0, w1, w2 = assemble(graph, rules, approach).nodes
    assert "BWD-ONLY" in w0.g_lemmas and "FWD-ONLY" not in w0.lemmas  # downstream of its backward only
    assert "FWD-ONLY" in w1.a_lemmas and "BWD-ONLY" not in w1.lemmas  # downstream of its forward only
    assert "FWD-ONLY" in w2.a_lemmas and "BWD-ONLY" not in w2.lemmas
    # which rule files were used is unchanged by the split (the smooth-tolerance choice reads it)
    assert any(r.endswith("relu.toml") for r in w0.rules) and any(r.endswith("relu.toml") for r in w1.rules)


def test_why_records_the_block_of_each_rule():
    graph = chain(2, "act_relu")
    run(graph, RULES, Approach())
    val = graph.nx.nodes["weight3"]["valuation"]
    assert val.why[("v", 1)] and all(block == "forward" for _, block in val.why[("v", 1)])
    first = graph.nx.nodes["weight1"]["valuation"]
    assert {block for _, block in first.why[("w", 1)]} == {"backward"}
