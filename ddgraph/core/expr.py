"""The valuation expression language of rule files: parsed, never ``eval``-ed.

Grammar::

    expr  := term (('+' | '-') term)*
    term  := NUMBER | 'inf' | name | func '(' expr (',' expr)* ')' | '(' expr ')'
    func  := 'min' | 'max' | 'all' | 'others'
    name  := ('v' | 'd' | 'w') '.' ROLE ['.bulk']  |  EXPONENT

``v.x`` is the order of operand ``x``'s magnitude in the class being computed, ``d.x`` of its
deviation, ``w.out`` of the loss gradient at the output; ``.bulk`` pins the bulk class. A bare name
is an approach exponent the rule's primitive declares (``alpha``, ``beta``). ``all(e)``
is the minimum of ``e`` over every class (a reduction that mixes classes), ``others(e)`` over every
class but the one computed (``inf`` when there is none). Orders live in the
min-plus semiring: ``+`` adds orders, ``min`` is a sum of terms (no cancellation), ``inf`` is an
exactly-zero quantity. ``a - b`` divides by a scale of order ``b`` (a normaliser's, docs/THEORY.md §3.8);
a term that is ``inf`` makes the whole sum ``inf`` (an exactly-zero quantity stays zero, whatever
divides it). ``None`` (no rule reached a value) absorbs everything it touches.
"""
from __future__ import annotations

import math
import re
from typing import Callable

import attrs

from ddgraph.errors import ExprError

INF = math.inf
FUNCS = ("min", "max", "all", "others")
KINDS = ("v", "d", "w")
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<name>[A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)*)|(?P<op>[-+(),]))")


@attrs.frozen
class Num:
    value: float


@attrs.frozen
class Ref:
    kind: str  # 'v', 'd', 'w' or 'param'
    role: str  # operand role, 'out', or the parameter name
    bulk: bool = False


@attrs.frozen
class Call:
    func: str
    args: tuple


@attrs.frozen
class Add:
    terms: tuple


@attrs.frozen
class Neg:
    """A subtracted term (only inside :class:`Add`)."""

    term: object


def tokens(text: str, pattern: re.Pattern = _TOKEN) -> list[str]:
    """``text`` cut into the tokens of ``pattern`` (each alternative a named group); raises :class:`ExprError`
    at the first character no token matches."""
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = pattern.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected character {text[pos:].strip()[:1]!r} at position {pos} in {text!r}")
        out.append(m.group(m.lastgroup))
        pos = m.end()
    return out


def parse(text: str) -> object:
    """Parse an expression into a small AST; raises :class:`ExprError` naming the problem."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError(f"expected a non-empty expression string, got {text!r}")
    toks = tokens(text)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take(expected=None):
        nonlocal pos
        tok = peek()
        if tok is None or (expected is not None and tok != expected):
            raise ExprError(f"expected {expected or 'a term'} at end of {text!r}" if tok is None
                            else f"expected {expected!r} but found {tok!r} in {text!r}")
        pos += 1
        return tok

    def expr():
        terms = [term()]
        while peek() in ("+", "-"):
            terms.append(term() if take() == "+" else Neg(term()))
        return terms[0] if len(terms) == 1 else Add(tuple(terms))

    def term():
        tok = take()
        if tok == "(":
            e = expr()
            take(")")
            return e
        if tok[0].isdigit() or tok[0] == ".":
            return Num(float(tok))
        if tok == "inf":
            return Num(INF)
        if tok in FUNCS:
            take("(")
            args = [expr()]
            while peek() == ",":
                take(",")
                args.append(expr())
            take(")")
            if tok in ("all", "others") and len(args) != 1:
                raise ExprError(f"{tok}() takes one expression, got {len(args)} in {text!r}")
            return Call(tok, tuple(args))
        parts = tok.split(".")
        if len(parts) == 1 and parts[0] not in KINDS:
            return Ref("param", parts[0])  # an approach exponent; the rule file checks it is declared
        if parts[0] in KINDS and len(parts) in (2, 3):
            if len(parts) == 3 and parts[2] != "bulk":
                raise ExprError(f"only '.bulk' may qualify a valuation, got {tok!r} in {text!r}")
            return Ref(parts[0], parts[1], len(parts) == 3)
        raise ExprError(f"unknown name {tok!r} in {text!r}; expected v.ROLE, d.ROLE, w.ROLE, "
                        "an approach exponent, a number, inf, min(), max() or all()")

    tree = expr()
    if pos != len(toks):
        raise ExprError(f"unexpected {toks[pos]!r} after a complete expression in {text!r}")
    return tree


def refs(tree) -> set[Ref]:
    """Every name an expression reads."""
    if isinstance(tree, Ref):
        return {tree}
    if isinstance(tree, Neg):
        return refs(tree.term)
    if isinstance(tree, (Call, Add)):
        children = tree.args if isinstance(tree, Call) else tree.terms
        return set().union(*(refs(c) for c in children))
    return set()


Lookup = Callable[[Ref, int], "tuple[float, frozenset] | None"]
_NONE = frozenset()


def evaluate(tree, lookup: Lookup, cls: int, classes) -> tuple[float, frozenset] | None:
    """Evaluate ``tree`` for class ``cls``; returns ``(order, why)`` or ``None`` (no rule reached it).

    ``lookup(ref, cls)`` supplies names as ``(order, why)``; ``why`` is the set of rule blocks
    (``(rule file, 'forward'|'backward')``) the order rests on, kept along the terms that attain each
    ``min`` (the critical path), so a prediction can name the lemmas it uses. ``classes`` are the classes ``all()`` ranges over.
    """
    if isinstance(tree, Num):
        return tree.value, _NONE
    if isinstance(tree, Ref):
        return lookup(tree, 0 if tree.bulk else cls)
    if isinstance(tree, Add):
        signs = [-1 if isinstance(t, Neg) else 1 for t in tree.terms]
        vals = [evaluate(t.term if isinstance(t, Neg) else t, lookup, cls, classes) for t in tree.terms]
        if any(v is None for v in vals):
            return None
        why = frozenset().union(*(w for _, w in vals))
        if any(math.isinf(v) for v, _ in vals):
            return INF, why
        return sum(s * v for s, (v, _) in zip(signs, vals)), why
    if isinstance(tree, Call):
        if tree.func in ("all", "others"):
            vals = [evaluate(tree.args[0], lookup, c, classes) for c in classes
                    if tree.func == "all" or c != cls]
        else:
            vals = [evaluate(a, lookup, cls, classes) for a in tree.args]
        if any(v is None for v in vals):
            return None
        if not vals:
            return INF, _NONE
        best = max(v for v, _ in vals) if tree.func == "max" else min(v for v, _ in vals)
        return best, frozenset().union(*(w for v, w in vals if v == best))
    raise ExprError(f"not an expression tree: {tree!r}")
