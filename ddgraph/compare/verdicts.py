"""The words ddgraph's results are made of: fit statuses, verdicts and prediction statuses, as enums.

Each member is also its text (``Verdict.PASS == "pass"``), so JSON, tables and comparisons with
strings read as before; what the words mean is written once in docs/THEORY.md.
"""
from __future__ import annotations

from enum import Enum


class _Word(str, Enum):
    """An enum member that prints, formats, hashes and serialises as its text."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    __hash__ = str.__hash__


class FitStatus(_Word):
    """What a log-log fit of one observable over the grid came to."""

    OK = "ok"
    NOT_ASYMPTOTIC = "not-asymptotic"  # local slopes stray beyond the band
    FLOOR = "floor"  # the observable sits at the numerical floor: no rate to read
    UNFITTABLE = "unfittable"  # non-finite or too few values


class Verdict(_Word):
    """A prediction checked against a measurement."""

    PASS = "pass"
    FAIL = "fail"
    INSIDE_BRACKET = "inside-bracket"
    NOT_ASYMPTOTIC = "not-asymptotic"
    FLOOR = "floor"
    NO_RULE = "no-rule"
    UNFITTABLE = "unfittable"


class Status(_Word):
    """How far the theory reaches at a node."""

    IN_REACH = "in-reach"  # every rule on the way is exact
    BRACKET = "bracket"  # some rule gives only a bracket
    NO_RULE = "no-rule"  # an op with no rule reaches the node
