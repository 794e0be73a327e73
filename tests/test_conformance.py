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
