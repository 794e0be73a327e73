"""What a plugin needs to add a primitive: the primitive's declarations and the pattern tools.

A plugin file (``--plugin FILE.py``) defines ``PRIMITIVES``, ``PATTERNS`` and optionally ``RULES``;
see :mod:`ddgraph.frontend.plugins` and ``examples/extend/``.
"""
from ddgraph.core.primitives import MASK_RULES, OBSERVABLES, Exponent, ParamSpec, Primitive, node_attr
from ddgraph.frontend.patterns import Match, Pattern, PatternSet, const_arg, param_of, pattern

__all__ = ["Exponent", "MASK_RULES", "Match", "OBSERVABLES", "ParamSpec", "Pattern", "PatternSet", "Primitive",
           "const_arg", "node_attr", "param_of", "pattern"]
