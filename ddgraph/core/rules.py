"""Rule files: one declarative TOML file per primitive, parsed and validated at load time.

A rule file holds::

    primitive = "weight"                 # a primitive of the run (built-in or from a plugin)
    summary = "..."                      # one line for `ddgraph rules`
    derivation = "..."                   # how the expressions follow from the local Jacobian
    [when]                               # optional: loss = "mse"|"ce", regime = ..., fisher = ...
    [forward]      cite = [...], v = "...", d = "..."   # expressions may sit in [forward.bulk] / [forward.dead]
                   s = "..."                            # optional: the sign of the leading term (THEORY §3.11)
    [backward]     cite = [...], ROLE = "..."           # or in [backward.bulk] / [backward.dead]
    [probe]        case = "...", args = {...}
    band = 0.1                           # optional: finite-t tolerance band (default: the primitive's)
    [invariant]    scale = "..."                        # optional, a normaliser: docs/THEORY.md §3.8
    [invariant.forward] / [invariant.backward]          # the regime t**scale >> the scale's floor

A normaliser divides by a scale ``sqrt(s**2 + eps)``: ``[forward]``/``[backward]`` state the regime
``t -> 0`` at fixed eps (the scale is its floor, the map is linear), ``[invariant]`` the regime where
``s ~ t**scale`` dominates the floor (the map divides that order out; only there may an expression
subtract, ``a - b``). The node's ``scale_floor`` attribute (set by its pattern) places the crossover.

``cite`` (optional, a list of strings) belongs to a block: the results the forward block, or the
backward block, reproduces. A prediction lists the citations of the blocks its critical path used
(docs/THEORY.md §3.6), so a block cites only what its own expressions rest on.
An expression may be a two-element array ``[lower, upper]``: the rule then only gives a bracket.
Built-in rules live in the top-level ``rules/`` directory (installed as ``ddgraph.builtin_rules``); a user
directory layers on top for one run and never changes the built-ins.
"""
from __future__ import annotations

import importlib.resources
import logging
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published as tomli
    import tomli as tomllib

import attrs

from ddgraph.core import signs
from ddgraph.core.expr import Add, Call, Neg, parse, refs
from ddgraph.core.primitives import BUILTIN, Primitives
from ddgraph.errors import ExprError, RuleFileError

logger = logging.getLogger(__name__)

_TOP = {"primitive", "summary", "derivation", "when", "forward", "backward", "probe", "band", "invariant"}
_WHEN = {"loss": ("mse", "ce"), "regime": ("noisy", "noise-free"), "fisher": ("expected", "empirical")}
CLASS_KINDS = ("bulk", "dead")


@attrs.frozen
class Rule:
    """A parsed rule: expression trees per class kind, as (lower, upper) pairs."""

    primitive: str
    cites: dict  # block ('forward' / 'backward') -> the results that block reproduces
    summary: str
    forward: dict  # class kind -> {'v': (lo, hi), 'd': (lo, hi)}
    backward: dict  # class kind -> {role: (lo, hi)}
    when: dict
    probe: dict | None
    source: str
    derivation: str = ""
    band: float | None = None  # finite-t tolerance band (the rule file's, else its primitive's)
    scale: object = None  # a normaliser: the order of its input's scale (THEORY §3.8)
    invariant: "Rule | None" = None  # its rule in the scale-invariant regime
    regime: str = "linear"

    def label(self, block: str) -> str:
        """The name a block goes by in provenance: ``forward``, or ``invariant.forward``."""
        return block if self.regime == "linear" else f"{self.regime}.{block}"

    def in_regime(self, regime: str) -> "Rule":
        """The rule that applies in ``regime`` (itself, unless it is a normaliser's)."""
        return self.invariant if regime == "invariant" and self.invariant is not None else self

    @property
    def is_bracket(self) -> bool:
        blocks = list(self.forward.values()) + list(self.backward.values())
        return any(pair[0] is not pair[1] for b in blocks for k, pair in b.items() if k != "s") or \
            (self.invariant is not None and self.invariant.is_bracket)

    @property
    def cite(self) -> tuple[str, ...]:
        """Every citation of the rule, forward block first (for listings)."""
        return tuple(dict.fromkeys(c for b in self.cites for c in self.cites[b]))

    @property
    def name(self) -> str:
        return Path(self.source).stem


def _fail(path, field, expected, got=None) -> RuleFileError:
    tail = f", got {got!r}" if got is not None else ""
    return RuleFileError(f"{path}: field '{field}': expected {expected}{tail}")


def _expr_pair(path, field, raw, allowed_roles, params, split_block, kinds, minus=False, values=()):
    if isinstance(raw, str):
        texts = [raw, raw]
    elif isinstance(raw, list) and len(raw) == 2 and all(isinstance(r, str) for r in raw):
        texts = raw
    else:
        raise _fail(path, field, "an expression string or a [lower, upper] pair of strings", raw)
    trees = []
    for text in texts:
        try:
            tree = parse(text)
        except ExprError as exc:
            raise _fail(path, field, f"a valid expression ({exc})") from None
        if not minus and _subtracts(tree):
            raise _fail(path, field, "no '-' outside [invariant] (only a normaliser's scale divides an order out)",
                        text)
        for r in refs(tree):
            if r.kind == "param" and r.role in values:
                continue  # a value order means the same in every class: any block may read it
            if r.kind == "param":
                if r.role not in params:
                    raise _fail(path, field, "a valuation (v.ROLE, d.ROLE, w.out), an approach exponent or a value "
                                f"order this primitive declares ({', '.join(tuple(params) + tuple(values)) or 'none'})",
                                r.role)
                if not split_block:
                    raise _fail(path, field, f"'{r.role}' inside a [*.dead] block, or a [*.bulk] block where "
                                "it means the order of the parameter's bulk part (THEORY §3.9)", r.role)
            elif r.kind not in kinds:
                raise _fail(path, field, f"only {'/'.join(kinds)} valuations here", f"{r.kind}.{r.role}")
            elif r.role not in allowed_roles:
                raise _fail(path, field, f"a role among {', '.join(sorted(allowed_roles))}", r.role)
        trees.append(tree)
    lo, hi = trees
    return (lo, lo) if texts[0] == texts[1] else (lo, hi)


def _cite(path, section, raw):
    """Pop and validate a block's ``cite``: a list of strings (a single string is accepted)."""
    if not isinstance(raw, dict):
        raise _fail(path, section, "a table", raw)
    raw = dict(raw)
    cite = raw.pop("cite", [])
    if isinstance(cite, str):
        cite = [cite]
    if not isinstance(cite, list) or not all(isinstance(c, str) for c in cite):
        raise _fail(path, f"{section}.cite", "a list of strings", cite)
    for kind in CLASS_KINDS:
        if isinstance(raw.get(kind), dict) and "cite" in raw[kind]:
            raise _fail(path, f"{section}.{kind}.cite", f"cite in [{section}] itself, not in a per-class sub-table")
    return tuple(cite), raw


def _subtracts(tree) -> bool:
    if isinstance(tree, Neg):
        return True
    children = tree.args if isinstance(tree, Call) else tree.terms if isinstance(tree, Add) else ()
    return any(_subtracts(c) for c in children)


def _sign(path, field, raw, roles, params, values):
    """A forward block's optional ``s``: the sign of the class's leading term (THEORY §3.11)."""
    if not isinstance(raw, str):
        raise _fail(path, field, "a sign expression string", raw)
    try:
        tree = signs.parse(raw)
    except ExprError as exc:
        raise _fail(path, field, f"a valid sign expression ({exc})") from None
    used_roles, used_values, orders = signs.names(tree)
    bad = sorted(used_roles - set(roles)) or sorted(used_values - set(values))
    if bad:
        raise _fail(path, field, f"signs of roles ({', '.join(sorted(roles))}) or value orders "
                    f"({', '.join(values) or 'none'})", bad[0])
    for order in orders:
        for r in refs(order):
            known = r.role in params or r.role in values if r.kind == "param" else \
                r.kind in ("v", "d") and r.role in roles
            if not known:
                raise _fail(path, field, "orders of operands (v.ROLE, d.ROLE), exponents or value orders",
                            f"{r.kind}.{r.role}" if r.kind != "param" else r.role)
    return tree


def _blocks(path, section, raw, keys, allowed_roles, params, kinds, values=()):
    if not isinstance(raw, dict):
        raise _fail(path, section, "a table", raw)
    if set(raw) & set(CLASS_KINDS):
        if set(raw) - set(CLASS_KINDS):
            raise _fail(path, section, "either [.bulk]/[.dead] sub-tables or expressions, not both",
                        sorted(raw))
        missing = [k for k in CLASS_KINDS if k not in raw]
        if missing:
            raise _fail(path, f"{section}.{missing[0]}", "a table (both bulk and dead are needed)")
        split = {k: raw[k] for k in CLASS_KINDS}
    else:
        split = {"bulk": raw, "dead": raw}
    out = {}
    for kind, block in split.items():
        if not isinstance(block, dict):
            raise _fail(path, f"{section}.{kind}", "a table", block)
        extra = set(block) - set(keys) - ({"s"} if "forward" in section else set())
        if extra:
            raise _fail(path, f"{section}.{kind}" if "dead" in raw else section,
                        f"only keys {', '.join(keys)}", sorted(extra))
        missing = [k for k in keys if k not in block]
        where = f"{section}.{kind}" if "dead" in raw else section
        if missing:
            raise _fail(path, f"{where}.{missing[0]}", "an expression (required)")
        split_block = "dead" in raw  # a [.bulk]/[.dead] sub-table, not one block shared by both
        out[kind] = {k: _expr_pair(path, f"{where}.{k}", block[k], allowed_roles, params, split_block, kinds,
                                   section.startswith("invariant."), values)
                     for k in keys}
        if "forward" in section:
            out[kind]["s"] = None if "s" not in block else _sign(path, f"{where}.s", block["s"], allowed_roles,
                                                                 params if split_block else (), values)
    return out


def parse_rule(path: str | Path, text: str | None = None, primitives: Primitives = BUILTIN) -> Rule:
    """Parse and validate one rule file; raises :class:`RuleFileError` naming file and field."""
    path = str(path)
    try:
        data = tomllib.loads(text if text is not None else Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RuleFileError(f"{path}: not valid TOML: {exc}") from None
    if "cite" in data:
        raise _fail(path, "cite", "cite inside [forward] and [backward] (per block), not at the top level")
    extra = set(data) - _TOP
    if extra:
        raise _fail(path, sorted(extra)[0], f"one of the fields {', '.join(sorted(_TOP))}")
    name = data.get("primitive")
    if not isinstance(name, str):
        raise _fail(path, "primitive", "a primitive name (string)", name)
    try:
        prim = primitives[name]
    except KeyError as exc:
        raise _fail(path, "primitive", str(exc.args[0])) from None
    summary = data.get("summary", "")
    if not isinstance(summary, str):
        raise _fail(path, "summary", "a string", summary)
    when = data.get("when", {})
    if not isinstance(when, dict):
        raise _fail(path, "when", "a table", when)
    for k, v in when.items():
        if k not in _WHEN or v not in _WHEN[k]:
            raise _fail(path, f"when.{k}", f"one of {_WHEN.get(k, tuple(_WHEN))}", v)
    roles = [r.rstrip("*") for r in prim.roles]
    cites, forward, backward = _sweeps(path, data, "", roles, prim)
    scale, invariant = None, None
    if "invariant" in data:
        inv = data["invariant"]
        if not isinstance(inv, dict) or set(inv) - {"scale", "forward", "backward"}:
            raise _fail(path, "invariant", "a table with scale, [invariant.forward] and [invariant.backward]",
                        sorted(inv) if isinstance(inv, dict) else inv)
        if "scale" not in inv:
            raise _fail(path, "invariant.scale", "an expression: the order of the input's scale (required)")
        scale = _expr_pair(path, "invariant.scale", inv["scale"], set(roles), prim.exponents, False, ("v", "d"),
                           values=prim.value_names)[0]
        inv_cites, inv_fwd, inv_bwd = _sweeps(path, inv, "invariant.", roles, prim)
        cites |= {f"invariant.{b}": c for b, c in inv_cites.items()}
        invariant = (inv_fwd, inv_bwd)
    probe = data.get("probe")
    if probe is not None and (not isinstance(probe, dict) or not isinstance(probe.get("case"), str)):
        raise _fail(path, "probe", "a table with a 'case' name and optional 'args'", probe)
    band = data.get("band", prim.band)
    if band is not None and (isinstance(band, bool) or not isinstance(band, (int, float)) or not 0 < band < 1):
        raise _fail(path, "band", "a finite-t tolerance band, a number in (0, 1)", band)
    derivation = data.get("derivation", "")
    rule = Rule(band=None if band is None else float(band), primitive=name, cites=cites, summary=summary,
                forward=forward, backward=backward, when=dict(when), probe=probe, source=path,
                derivation=derivation if isinstance(derivation, str) else "", scale=scale)
    if invariant is None:
        return rule
    return attrs.evolve(rule, invariant=attrs.evolve(rule, forward=invariant[0], backward=invariant[1],
                                                     regime="invariant"))


def _sweeps(path, data, prefix, roles, prim) -> tuple[dict, dict, dict]:
    """The cites, forward and backward blocks of ``data`` (the file, or its [invariant] table)."""
    if "forward" not in data:
        raise _fail(path, f"{prefix}forward", "a [forward] table with v and d")
    if "backward" not in data:
        raise _fail(path, f"{prefix}backward", "a [backward] table with one expression per operand role")
    fwd_cite, fwd_raw = _cite(path, f"{prefix}forward", data["forward"])
    bwd_cite, bwd_raw = _cite(path, f"{prefix}backward", data["backward"])
    forward = _blocks(path, f"{prefix}forward", fwd_raw, ("v", "d"), set(roles), prim.exponents, ("v", "d"),
                      prim.value_names)
    backward = _blocks(path, f"{prefix}backward", bwd_raw, tuple(roles), set(roles) | {"out"},
                       prim.exponents, ("v", "d", "w"), prim.value_names)
    for kind, block in backward.items():
        for role, pair in block.items():
            for tree in pair:
                bad = [r for r in refs(tree) if r.kind == "w" and r.role != "out"]
                if bad:
                    raise _fail(path, f"{prefix}backward.{role}", "gradients read only from w.out",
                                f"w.{bad[0].role}")
    return {"forward": fwd_cite, "backward": bwd_cite}, forward, backward


def builtin_dir() -> Path:
    """The directory of the built-in rules (the top-level ``rules/``, installed as ddgraph.builtin_rules)."""
    return Path(str(importlib.resources.files("ddgraph.builtin_rules")))


def _load_dir(directory: Path, primitives: Primitives) -> list[Rule]:
    if not directory.is_dir():
        raise RuleFileError(f"{directory}: not a directory of rule files")
    rules = [parse_rule(p, primitives=primitives) for p in sorted(directory.glob("*.toml"))]
    seen: dict[tuple, str] = {}
    for r in rules:
        key = (r.primitive, tuple(sorted(r.when.items())))
        if key in seen:
            raise RuleFileError(f"{r.source}: primitive '{r.primitive}' (when {r.when or 'always'}) "
                                f"is already defined by {seen[key]}")
        seen[key] = r.source
    return rules


@attrs.define
class RuleSet:
    """The rules in force for one run: built-ins with user directories layered on top."""

    rules: list[Rule]
    overridden: list[str] = attrs.Factory(list)
    _found: dict = attrs.field(factory=dict, init=False, eq=False, repr=False)  # lookup's answers

    @classmethod
    def load(cls, *user_dirs: str | Path, primitives: Primitives = BUILTIN) -> "RuleSet":
        """The built-in rules with ``user_dirs`` layered on top; ``primitives`` is the run's vocabulary
        (pass the plugin primitives a user directory writes rules for)."""
        rules = _load_dir(builtin_dir(), primitives)
        overridden = []
        for d in user_dirs:
            for r in _load_dir(Path(d), primitives):
                key = (r.primitive, r.when)
                before = [old for old in rules if (old.primitive, old.when) == key]
                overridden += [f"{old.source} -> {r.source}" for old in before]
                for old in before:
                    logger.info("rule %s overrides %s", r.source, old.source)
                rules = [old for old in rules if (old.primitive, old.when) != key] + [r]
        return cls(rules, overridden)

    def lookup(self, primitive: str, setting: dict) -> Rule | None:
        """The rule for ``primitive`` whose ``when`` matches ``setting`` (most specific first); answers
        are kept per rule list, primitive and setting (the engine asks once per node and sweep)."""
        key = (id(self.rules), len(self.rules), primitive, tuple(sorted(setting.items())))
        if key not in self._found:
            hits = [r for r in self.rules if r.primitive == primitive
                    and all(setting.get(k) == v for k, v in r.when.items())]
            hits.sort(key=lambda r: -len(r.when))
            self._found[key] = hits[0] if hits else None
        return self._found[key]

    def primitives_covered(self) -> set[str]:
        return {r.primitive for r in self.rules}
