"""Conformance: every graph-level claim of the paper is a test (quick setting, run once per session)."""
import pytest
from click.testing import CliRunner

from ddgraph.cli.conformance import conformance
from ddgraph.conformance import registry

#: Verdicts the measurement currently supports; anything else is a regression (engine or paper reading).
EXPECTED = {
    "prop60-ln1": registry.CLOSED, "prop60-ln2": registry.CLOSED, "prop60-ln3": registry.CLOSED,
    "prop69-L4": registry.CLOSED, "prop69-L5": registry.PAPER_DISAGREES, "prop69-L6": registry.PAPER_DISAGREES,
    "thm122": registry.OUT_OF_REACH, "prop118-relu": registry.OUT_OF_REACH, "prop118-gelu": registry.OUT_OF_REACH,
    "cor28": registry.PAPER_DISAGREES,
}


@pytest.fixture(scope="module")
def results(conformance_quick):
    return {c.id: (c, o) for c, o in conformance_quick}


@pytest.mark.parametrize("claim_id", [c.id for c in registry.CLAIMS])
def test_claim(results, claim_id):
    claim, outcome = results[claim_id]
    assert outcome.verdict != registry.FAIL, f"{claim_id}: {outcome.note}"
    assert outcome.verdict == EXPECTED.get(claim_id, registry.CONFIRMED), (outcome.verdict, outcome.note)
    if outcome.verdict != registry.CONFIRMED:
        assert outcome.note or claim.why, f"{claim_id}: a non-confirmed verdict needs a sentence saying why"


def test_every_verdict_is_computed_from_paper_engine_and_measurement(results):
    """No verdict is fixed in advance: each outcome carries the computed inputs and the verdict is theirs."""
    for claim_id, (claim, o) in results.items():
        assert o.paper is not None, f"{claim_id}: no paper predicate was evaluated"
        assert o.verdict == registry.verdict(o.paper, o.engine, exact=o.exact, engine_applies=o.engine_applies), \
            claim_id


@pytest.mark.parametrize("paper, engine, exact, applies, expected", [
    (True, True, True, True, registry.CONFIRMED),
    (True, True, False, True, registry.CLOSED),
    (False, True, True, True, registry.PAPER_DISAGREES),
    (False, True, False, True, registry.PAPER_DISAGREES),
    (True, None, True, True, registry.OUT_OF_REACH),
    (False, None, True, True, registry.PAPER_DISAGREES),
    (True, False, True, True, registry.FAIL),
    (False, False, True, True, registry.FAIL),
    (True, None, True, False, registry.CONFIRMED),
    (False, None, True, False, registry.PAPER_DISAGREES),
])
def test_verdict_reaches_every_outcome(paper, engine, exact, applies, expected):
    assert registry.verdict(paper, engine, exact=exact, engine_applies=applies) == expected


def test_verdict_refuses_an_engine_comparison_for_a_non_engine_claim():
    with pytest.raises(ValueError):
        registry.verdict(True, True, engine_applies=False)


def _fit(slope):
    from ddgraph.probing.fit import FIT_OK, Fit

    return Fit(slope, 0.0, 1.0, (1e-5, 1e-2), (slope,) * 3, FIT_OK, "", 4)


def _ladder(meas_g, pred_g, engine_ok=True):
    """A synthetic ladder: G only, one direction, four weights."""
    return registry.Ladder([f"{i}.weight" for i in range(len(meas_g))], {("G", 1): pred_g}, {("G", 1): meas_g},
                           0.0, engine_ok, [] if engine_ok else ["synthetic disagreement"], None)


@pytest.mark.parametrize("meas, engine_ok, closed, expected", [
    ([6.0, 4.0, 2.0, 0.0], True, False, registry.CONFIRMED),
    ([6.0, 4.0, 2.0, 0.0], True, True, registry.CLOSED),
    ([4.0, 4.0, 2.0, 0.0], True, False, registry.PAPER_DISAGREES),
    ([6.0, 4.0, 2.0, 0.0], False, False, registry.FAIL),
])
def test_ladder_outcome_reaches_its_outcomes(meas, engine_ok, closed, expected):
    paper = {("G", 1): [6, 4, 2, 0]}
    out = registry.ladder_outcome(_ladder(meas, [6.0, 4.0, 2.0, 0.0], engine_ok), paper, registry.TOL, closed=closed)
    assert out.verdict == expected


def test_prop60_bracket_comes_from_the_paper_statement():
    """The paper's bracket: the no-LN ladder above, a reset (0) at or below an LN, exact above the topmost LN;
    written without the engine, so it is not the engine's own output."""
    lo, hi = registry.ln_bracket(4, [2])
    assert hi == [6, 4, 2, 0]
    assert lo == [0, 0, 2, 0]
    assert registry.ln_bracket(4, []) == ([6, 4, 2, 0], [6, 4, 2, 0])


def test_prop118_engine_prediction_is_read_off_the_graph():
    import torch

    import ddgraph
    from ddgraph.models import zoo

    x = torch.randn(4, 8)
    assert registry._rotation_equivariant(ddgraph.predict(zoo.chain(4, "linear"), x))
    assert not registry._rotation_equivariant(ddgraph.predict(zoo.chain(4, "relu"), x))
    assert registry._combine([True, None, True]) is None
    assert registry._combine([True, None, False]) is False
    assert registry._combine([True, True]) is True


def test_prop118_and_thm122_verdicts_follow_the_measurement(results):
    """The rotated rows hold theta = 0 and theta > 0 measurements; the verdicts say what was measured."""
    for act in ("relu", "gelu"):
        claim, o = results[f"prop118-{act}"]
        assert o.engine is None and o.paper is True
        assert o.measured.count("theta=") == len(registry.ROTATIONS) and "theta=0:" in o.measured
    _, lin = results["prop118-linear"]
    assert lin.engine is True and lin.paper is True
    _, t122 = results["thm122"]
    assert t122.engine is None and "measured crossover" in t122.note


def test_registry_covers_the_issue():
    results = {c.result for c in registry.CLAIMS}
    joined = " ".join(results)
    for ref in ("Thm 21", "Remark 23", "Thm 36", "Cor 39", "Thm 43", "Cor 44", "Cor 46", "Cor 47", "Cor 48",
                "Cor 58", "Thm 30", "Thm 66", "Thm 67", "Prop 54", "Prop 69", "Prop 60", "Thm 122", "Prop 63",
                "Thm 103", "Thm 106", "Cor 107", "Cor 108", "Cor 109", "Thm 112", "Prop 114", "Prop 118",
                "Prop 119", "Cor 28", "§7.2", "Lemma 18", "Thm 2"):
        assert ref in joined, ref
    assert len({c.id for c in registry.CLAIMS}) == len(registry.CLAIMS)


def test_cli_writes_a_document(tmp_path):
    out = tmp_path / "c.md"
    res = CliRunner().invoke(conformance, ["--quick", "--only", "thm21-linear-L2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "`thm21-linear-L2`" in text and "**confirmed**" in text


def test_cli_prints_the_document_without_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(conformance, ["--quick", "--only", "thm21-linear-L2"])
    assert res.exit_code == 0, res.output
    assert "`thm21-linear-L2`" in res.output and "**confirmed**" in res.output
    assert not list(tmp_path.iterdir()), "the command wrote into the working directory"
