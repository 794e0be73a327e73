"""The built-in label patterns, by family, composed in the order they are tried.

Order matters only where two patterns could claim the same node: fusing patterns (a written-out
LayerNorm, RMSNorm or activation) come before the patterns for the ops they fuse, BatchNorm's tuple form before
plain shape ops, a prepended token before a plain concatenation, and ``unknown`` last. A custom
autograd Function is ``unknown`` before any op pattern can read its forward.
"""
from __future__ import annotations

from ddgraph.frontend.patterns import attention, elementwise, norms, shape, structure, weights
from ddgraph.frontend.patterns.base import Match, Pattern, PatternSet, const_arg, param_of, pattern

BUILTIN = PatternSet.of(
    [structure.sources, structure.custom_function, norms.layernorm_written_out, norms.rmsnorm_written_out,
     elementwise.composite_activation, weights.weight,
     norms.norm, attention.sdpa, elementwise.binary, elementwise.constant_fill, elementwise.activation, attention.softmax_or_product,
     shape.reduction, norms.batch_norm, shape.pool, shape.prepend_token, shape.shape, shape.constant_index,
     structure.unknown],
    primitives=attention.PROVISIONAL + shape.PROVISIONAL,
    passes=[shape.onehot_views, weights.fused_slices])

__all__ = ["BUILTIN", "Match", "Pattern", "PatternSet", "pattern", "param_of", "const_arg"]
