"""Rule files: validation errors, completeness, and every rule checked by its probe case."""
import re
from pathlib import Path

import pytest

from ddgraph.core.primitives import BUILTIN
from ddgraph.core.rules import RuleSet, parse_rule
from ddgraph.errors import RuleFileError
from ddgraph.probing.cases import CASES, check_rule

RULES = RuleSet.load()
GRID = [1e-2, 1e-3, 1e-4, 1e-5]
GOOD = '''primitive = "act_relu"
[forward]
cite = ["Thm 21"]
v = "v.x"
d = "d.x"
[backward]
cite = ["Lemma 16"]
x = "w.out"
'''


@pytest.mark.parametrize("text,field,expect", [
    ("primitive = 3\n[forward]\nv='0'\nd='0'\n[backward]\n", "primitive", "primitive name"),
    (GOOD.replace('"act_relu"', '"act_rleu"'), "primitive", "unknown primitive"),
    (GOOD.replace('v = "v.x"', 'v = "v.x +"'), "forward.v", "valid expression"),
    (GOOD.replace('v = "v.x"', 'v = "v.y"'), "forward.v", "a role among"),
    (GOOD.replace('v = "v.x"', 'v = "v.x + alpha"'), "forward.v", "or a value order this primitive declares (none)"),
    (GOOD.replace('x = "w.out"', 'x = "w.x"'), "backward.x", "gradients read only from w.out"),
    (GOOD.replace('d = "d.x"\n', ''), "forward.d", "required"),
    (GOOD.replace('[backward]\ncite = ["Lemma 16"]\nx = "w.out"\n', ''), "backward",
     "one expression per operand role"),
    ("colour = 'red'\n" + GOOD, "colour", "one of the fields"),
    (GOOD.replace('cite = ["Thm 21"]', 'cite = [1]'), "forward.cite", "list of strings"),
    (GOOD.replace('cite = ["Lemma 16"]', 'cite = {a = 1}'), "backward.cite", "list of strings"),
    ('cite = ["Thm 21"]\n' + GOOD, "cite", "inside [forward] and [backward]"),
    (GOOD.replace('[backward]\ncite = ["Lemma 16"]\nx = "w.out"\n',
                  '[backward]\n[backward.bulk]\nx = "w.out"\n[backward.dead]\ncite = ["x"]\nx = "w.out"\n'),
     "backward.dead.cite", "not in a per-class sub-table"),
    (GOOD.replace('v = "v.x"', 'v = ["v.x"]'), "forward.v", "[lower, upper]"),
    (GOOD + "[when]\nloss = 'hinge'\n", "when.loss", "one of"),
    ("primitive = 'act_relu'\n[forward\n", None, "not valid TOML"),
])
def test_malformed_rule_names_file_field_expectation(text, field, expect):
    with pytest.raises(RuleFileError) as err:
        parse_rule("bad_rule.toml", text)
    msg = str(err.value)
    assert msg.startswith("bad_rule.toml")
    if field:
        assert f"'{field}'" in msg, msg
    assert expect in msg, msg


def test_alpha_only_in_dead_block_of_weights():
    text = '''primitive = "weight"
[forward]
v = "v.x + alpha"
d = "d.x"
[backward]
x = "w.out"
'''
    with pytest.raises(RuleFileError, match=r"inside a \[\*\.dead\] block"):
        parse_rule("w.toml", text)


def test_duplicate_rules_in_one_directory(tmp_path):
    (tmp_path / "a.toml").write_text(GOOD)
    (tmp_path / "b.toml").write_text(GOOD)
    with pytest.raises(RuleFileError, match="already defined by"):
        RuleSet.load(tmp_path)


def test_user_rules_layer_over_builtins_for_one_run(tmp_path):
    (tmp_path / "relu.toml").write_text(GOOD.replace('"Thm 21"', '"mine"'))
    layered = RuleSet.load(tmp_path)
    assert layered.lookup("act_relu", {}).cites == {"forward": ("mine",), "backward": ("Lemma 16",)}
    assert layered.lookup("act_relu", {}).cite == ("mine", "Lemma 16")
    assert layered.overridden
    assert "mine" not in RuleSet.load().lookup("act_relu", {}).cite  # built-ins untouched


def test_cite_is_per_block_and_optional():
    r = parse_rule("r.toml", GOOD)
    assert r.cites == {"forward": ("Thm 21",), "backward": ("Lemma 16",)}
    bare = parse_rule("r.toml", GOOD.replace('cite = ["Thm 21"]\n', "").replace('cite = ["Lemma 16"]\n', ""))
    assert bare.cites == {"forward": (), "backward": ()} and bare.cite == ()
    split = parse_rule("w.toml", '''primitive = "weight"
[forward]
cite = ["F"]
[forward.bulk]
v = "v.x"
d = "d.x"
[forward.dead]
v = "v.x + alpha"
d = "v.x + alpha"
[backward]
cite = "B"
x = "w.out"
''')
    assert split.cites == {"forward": ("F",), "backward": ("B",)}
    assert "F" not in split.cites["backward"]


def test_builtin_cites_sit_on_the_block_they_justify():
    for r in RULES.rules:
        assert r.cite, f"{r.source} cites nothing"
        if r.primitive == "output":  # a loss base case is a statement about the output gradient only
            assert not r.cites["forward"] and r.cites["backward"], r.source
    weight = RULES.lookup("weight", {})
    assert "Thm 112" in weight.cites["forward"] and "Thm 112" not in weight.cites["backward"]


def test_every_labelled_primitive_has_a_rule_or_is_inert():
    covered = RULES.primitives_covered()
    missing = {p.name for p in BUILTIN if not p.inert} - covered - {"unknown"}
    assert not missing, f"primitives without a rule file: {missing}"


def test_every_rule_names_an_existing_probe_case():
    for r in RULES.rules:
        assert r.probe is not None, f"{r.source} has no [probe] case"
        assert r.probe["case"] in CASES, f"{r.source}: unknown probe case {r.probe['case']}"


def test_rules_never_eval(monkeypatch):
    import builtins

    def boom(*a, **k):
        raise AssertionError("eval called")

    monkeypatch.setattr(builtins, "eval", boom)
    RuleSet.load()


@pytest.mark.parametrize("rule", RULES.rules, ids=[r.name for r in RULES.rules])
def test_rule_holds_on_its_probe_case(rule):
    d = check_rule(rule, n_samples=1000, grid=GRID)
    primitives = d.prediction.graph.summary()
    assert rule.primitive in primitives, f"the probe case of {rule.name} has no {rule.primitive} node"
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]


def test_wrong_rule_is_caught_by_the_probe(fixtures):
    wrong = RuleSet.load(fixtures / "wrong_rules")
    d = check_rule(wrong.lookup("act_relu", {}), rules=wrong, n_samples=1000, grid=GRID)
    assert not d.ok
    failed = {c.param for c in d.failures}
    assert failed and failed <= {"0.weight", "2.weight", "4.weight", "6.weight"}


ROOT = Path(__file__).resolve().parent.parent


def test_theory_citations_name_existing_sections():
    """A rule's 'THEORY §N' cite must name a section docs/THEORY.md anchors."""
    theory = (ROOT / "docs" / "THEORY.md").read_text()
    anchors = set(re.findall(r'<a id="s([0-9.]+)"></a>', theory))
    assert {"3.2", "3.6", "8"} <= anchors
    cited = {c for r in RULES.rules for c in r.cite if c.startswith("THEORY")}
    assert cited
    for c in cited:
        m = re.fullmatch(r"THEORY §([0-9.]+)", c)
        assert m and m.group(1) in anchors, c


def test_shipped_text_does_not_point_at_unshipped_notes():
    needles = ("DESIGN" + ".md", "DESIGN" + " §", "../" + "shared")
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "rules").glob("*.toml"),
                 *(ROOT / "ddgraph").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]:
        text = path.read_text()
        for needle in needles:
            assert needle not in text, f"{path} mentions {needle}"
