"""Plugins: a user's Python file that adds primitives, label patterns and rules for one run.

A plugin file defines, at module level, any of::

    PRIMITIVES = [Primitive(...), ...]        # new primitives (ddgraph.core.primitives.Primitive)
    PATTERNS = [pattern_fn, ...]              # @pattern-decorated functions, or a PatternSet
    RULES = "rules"                           # a directory of rule files, relative to the plugin

and is loaded with ``--plugin FILE.py`` (repeatable) or ``plugins=[...]`` in the Python API. Nothing
is registered globally: the plugin's vocabulary is passed to the run that asked for it.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Iterable, Sequence

import attrs

from ddgraph.core.primitives import BUILTIN as BUILTIN_PRIMITIVES
from ddgraph.core.primitives import Primitive, Primitives
from ddgraph.core.rules import RuleSet
from ddgraph.errors import DDGraphError, PluginError
from ddgraph.frontend.patterns import BUILTIN as BUILTIN_PATTERNS
from ddgraph.frontend.patterns import Pattern, PatternSet


@attrs.frozen
class Plugin:
    """What one plugin file defines."""

    path: str
    primitives: tuple[Primitive, ...]
    patterns: PatternSet
    rule_dirs: tuple[str, ...]


def load_plugin(path: str | Path) -> Plugin:
    """Import a plugin file and read its ``PRIMITIVES``, ``PATTERNS`` and ``RULES``."""
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"{path}: no such plugin file")
    name = f"ddgraph_plugin_{path.stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a plugin's own dataclasses and pickles need their module
    try:
        spec.loader.exec_module(module)
    except DDGraphError as exc:
        raise PluginError(f"{path}: {exc}") from None
    except Exception as exc:
        raise PluginError(f"{path}: importing the plugin failed: {type(exc).__name__}: {exc}") from exc
    prims = tuple(getattr(module, "PRIMITIVES", ()))
    bad = [p for p in prims if not isinstance(p, Primitive)]
    if bad:
        raise PluginError(f"{path}: PRIMITIVES must hold ddgraph.core.primitives.Primitive objects, got {bad[0]!r}")
    raw = getattr(module, "PATTERNS", ())
    if isinstance(raw, PatternSet):
        patterns = raw
    else:
        raw = tuple(raw)
        bad = [p for p in raw if not isinstance(p, Pattern)]
        if bad:
            raise PluginError(f"{path}: PATTERNS must hold @pattern-decorated functions, got {bad[0]!r}")
        patterns = PatternSet.of(raw)
    rules = getattr(module, "RULES", None)
    rule_dirs: tuple[str, ...] = ()
    if rules is not None:
        rdir = (path.parent / rules) if not Path(rules).is_absolute() else Path(rules)
        if not rdir.is_dir():
            raise PluginError(f"{path}: RULES names {rules!r}, which is not a directory next to the plugin")
        rule_dirs = (str(rdir),)
    if not prims and not patterns.patterns and not rule_dirs:
        raise PluginError(f"{path}: defines none of PRIMITIVES, PATTERNS, RULES")
    return Plugin(str(path), prims, patterns, rule_dirs)


@attrs.frozen
class Extensions:
    """The vocabulary of one run: the built-in patterns and primitives plus every plugin's, and the
    rule directories layered over the built-in rules (the plugins' first, then the user's)."""

    patterns: PatternSet
    primitives: Primitives
    rule_dirs: tuple[str, ...] = ()
    plugins: tuple[Plugin, ...] = ()

    def load_rules(self) -> RuleSet:
        """The built-in rules with this run's rule directories layered on top."""
        return RuleSet.load(*self.rule_dirs, primitives=self.primitives)


def extensions(plugins: Iterable[str | Path | Plugin] = (), rule_dirs: Sequence[str | Path] = ()) -> Extensions:
    """The built-in vocabulary extended by ``plugins`` (files or loaded :class:`Plugin` objects)."""
    loaded = tuple(p if isinstance(p, Plugin) else load_plugin(p) for p in plugins)
    dirs = tuple(d for p in loaded for d in p.rule_dirs) + tuple(str(d) for d in rule_dirs)
    return _compose(loaded, dirs) if loaded or dirs else _builtin()


def _compose(loaded: tuple[Plugin, ...], dirs: tuple[str, ...]) -> Extensions:
    patterns, extra = PatternSet(), Primitives()
    try:
        for p in loaded:
            patterns, extra = patterns + p.patterns, extra + Primitives.of(p.primitives)
        patterns = patterns + BUILTIN_PATTERNS
        prims = BUILTIN_PRIMITIVES + extra + patterns.primitives
    except ValueError as exc:
        raise PluginError(f"{', '.join(p.path for p in loaded)}: {exc}") from None
    return Extensions(patterns.check(prims), prims, dirs, loaded)


@functools.cache
def _builtin() -> Extensions:
    """The built-in vocabulary alone, composed and checked once."""
    return _compose((), ())
