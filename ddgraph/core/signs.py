"""The sign language of rule files: the sign of a class's leading term on generic rows (THEORY §3.11).

Grammar (parsed, never ``eval``-ed)::

    sign    := 'lead' '(' ORDER ':' product (',' ORDER ':' product)* ')'  |  product
    product := factor ('*' factor)*
    factor  := '+' | '-' | '?' | '-' factor | 's.ROLE' | 'all(s.ROLE)' | 'clip(' product ')' | NAME

A sign is ``+`` or ``-`` (surely that sign on generic rows), ``?`` (mixed or unknown) or ``0`` (exactly
zero: a cut). ``s.x`` is the operand's sign in the class computed, ``all(s.x)`` the sign of a sum over
every class (the sign of its lowest-order classes, ``?`` if they disagree), ``NAME`` the sign of a value
order's parameter in the class (a normaliser's ``gain``), ``lead(o1: s1, ...)`` the sign of a sum of terms
of orders ``o1, ...`` (ORDER is an expression of :mod:`ddgraph.core.expr`): that of its lowest-order terms.
``clip(s)`` is the positive part on a node that clips its negative half to zero (ReLU, ReLU6: ``-`` becomes
the cut ``0``, anything else ``+``) and ``?`` on any other node of the primitive (leaky ReLU).
"""
from __future__ import annotations

import math
import re

import attrs

from ddgraph.core.expr import parse as parse_order
from ddgraph.core.expr import tokens
from ddgraph.errors import ExprError

PLUS, MINUS, MIXED, ZERO = "+", "-", "?", "0"
SIGNS = (PLUS, MINUS, MIXED, ZERO)
_TOKEN = re.compile(r"\s*(?:(?P<word>[A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)*)|(?P<op>[-+?*(),:]))")


@attrs.frozen
class Const:
    sign: str


@attrs.frozen
class Operand:
    role: str
    over_all: bool = False  # all(s.ROLE): the sign of a sum over every class


@attrs.frozen
class Value:
    name: str  # a value order's parameter: its sign in the class


@attrs.frozen
class Neg:
    factor: object


@attrs.frozen
class Clip:
    inner: object


@attrs.frozen
class Product:
    factors: tuple


@attrs.frozen
class Lead:
    terms: tuple  # ((order tree, product), ...)


def multiply(a: str, b: str) -> str:
    if ZERO in (a, b):
        return ZERO
    if MIXED in (a, b):
        return MIXED
    return PLUS if a == b else MINUS


def lead(terms) -> str:
    """The sign of a sum of ``(order, sign)`` terms: that of the lowest-order ones (``?`` if they disagree
    or none is finite)."""
    finite = [(o, s) for o, s in terms if o is not None and not math.isinf(o) and s != ZERO]
    if not finite:
        return MIXED
    low = min(o for o, _ in finite)
    signs = {s for o, s in finite if o == low}
    return signs.pop() if len(signs) == 1 else MIXED


def parse(text: str) -> object:
    """Parse a sign expression; raises :class:`ExprError` naming the problem."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError(f"expected a non-empty sign expression, got {text!r}")
    text = text.strip()
    if text.startswith("lead(") and text.endswith(")"):
        terms = []
        for part in _split(text[5:-1], text):
            order, sep, sign = part.partition(":")
            if not sep:
                raise ExprError(f"lead() terms are 'ORDER: SIGN', got {part.strip()!r} in {text!r}")
            terms.append((parse_order(order), _product(sign, text)))
        return Lead(tuple(terms))
    return _product(text, text)


def _split(body: str, text: str) -> list[str]:
    """``body`` cut at its top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in body:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth != 0 or not cur.strip():
        raise ExprError(f"unbalanced or empty lead() in {text!r}")
    return parts + [cur]


def _product(part: str, text: str) -> Product:
    toks = tokens(part, _TOKEN)
    i = 0

    def factor():
        nonlocal i
        if i >= len(toks):
            raise ExprError(f"expected a sign factor at the end of {text!r}")
        tok = toks[i]
        i += 1
        if tok in (PLUS, MIXED):
            return Const(tok)
        if tok == "-":
            if i >= len(toks) or toks[i] in ("*", ")"):
                return Const(MINUS)
            return Neg(factor())
        if tok in ("all", "clip"):
            if i >= len(toks) or toks[i] != "(":
                raise ExprError(f"{tok} needs '(' in sign {text!r}")
            i += 1
            inner = product() if tok == "clip" else factor()
            if i >= len(toks) or toks[i] != ")":
                raise ExprError(f"{tok}( is not closed in sign {text!r}")
            i += 1
            if tok == "clip":
                return Clip(inner)
            if not isinstance(inner, Operand):
                raise ExprError(f"all() takes s.ROLE in sign {text!r}")
            return attrs.evolve(inner, over_all=True)
        if tok[0].isalpha() or tok[0] == "_":
            parts = tok.split(".")
            if parts[0] == "s" and len(parts) == 2:
                return Operand(parts[1])
            if len(parts) == 1:
                return Value(tok)
        raise ExprError(f"unknown sign term {tok!r} in {text!r}; expected +, -, ?, s.ROLE, all(s.ROLE), "
                        "clip(...), lead(...) or a value order")

    def product():
        nonlocal i
        out = [factor()]
        while i < len(toks) and toks[i] == "*":
            i += 1
            out.append(factor())
        return Product(tuple(out))

    tree = product()
    if i != len(toks):
        raise ExprError(f"unexpected {toks[i]!r} in sign {text!r}")
    return tree


def names(tree) -> tuple[set, set, list]:
    """``(roles, value names, order trees)`` a sign expression reads."""
    roles, values, orders = set(), set(), []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Lead):
            orders += [o for o, _ in node.terms]
            stack += [p for _, p in node.terms]
        elif isinstance(node, Product):
            stack += list(node.factors)
        elif isinstance(node, (Neg, Clip)):
            stack.append(node.factor if isinstance(node, Neg) else node.inner)
        elif isinstance(node, Operand):
            roles.add(node.role)
        elif isinstance(node, Value):
            values.add(node.name)
    return roles, values, orders


def evaluate(tree, operand, value, order, clips: bool) -> str:
    """The sign of ``tree``. ``operand(role, over_all)`` and ``value(name)`` give signs, ``order(tree)``
    an order (None when no rule reached it), ``clips`` whether the node clips its negative half."""
    if isinstance(tree, Lead):
        return lead([(order(o), evaluate(p, operand, value, order, clips)) for o, p in tree.terms])
    if isinstance(tree, Product):
        out = PLUS
        for f in tree.factors:
            out = multiply(out, evaluate(f, operand, value, order, clips))
        return out
    if isinstance(tree, Const):
        return tree.sign
    if isinstance(tree, Neg):
        return multiply(MINUS, evaluate(tree.factor, operand, value, order, clips))
    if isinstance(tree, Operand):
        return operand(tree.role, tree.over_all)
    if isinstance(tree, Value):
        return value(tree.name)
    if isinstance(tree, Clip):
        if not clips:
            return MIXED
        inner = evaluate(tree.inner, operand, value, order, clips)
        return ZERO if inner in (MINUS, ZERO) else PLUS
    raise ExprError(f"not a sign tree: {tree!r}")
