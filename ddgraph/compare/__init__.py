"""Prediction against measurement: checks per node and observable, and the words verdicts are made of."""
from ddgraph.compare.checks import TOL, Check, Diff, diff
from ddgraph.compare.verdicts import FitStatus, Status, Verdict

__all__ = ["TOL", "Check", "Diff", "diff", "FitStatus", "Status", "Verdict"]
