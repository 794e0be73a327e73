"""The primitive vocabulary: every label the labeller assigns, defined once.

A primitive says what a node does to the dead coordinate *structurally* (``masks``: how the
dead-class mask of its output follows from its operands) and which operand roles it has. What it
does to valuations lives in its rule file in ``rules/``; rules and labeller patterns both refer to
the names defined here, so a typo is an error at load time.
"""
from __future__ import annotations

import attrs

#: How a primitive's output dead-class mask is formed (see :mod:`ddgraph.channels`).
MASK_KINDS = ("source", "weight", "elementwise", "shape", "channel_free", "value", "same_as_x",
              "none")


@attrs.frozen
class Primitive:
    """One labelled kind of node."""

    name: str
    roles: tuple[str, ...]  # operand roles in order; a role ending in '*' is variadic
    masks: str  # one of MASK_KINDS
    doc: str
    params: tuple[str, ...] = ()  # approach parameters a rule may read (alpha, beta)

    def __attrs_post_init__(self):
        if self.masks not in MASK_KINDS:
            raise ValueError(f"primitive {self.name}: unknown mask kind {self.masks!r}")


_ALL = [
    Primitive("input", (), "source", "a model input (float features, or integer ids for an embedding)"),
    Primitive("param", (), "none", "a parameter, or a shape-only view of one"),
    Primitive("const", (), "none", "a tensor that does not depend on the inputs or the parameters"),
    Primitive("output", ("x",), "same_as_x", "the model output, where the loss base case applies"),
    Primitive("weight", ("x",), "weight",
              "a weight edge: linear, matmul/addmm with a parameter, convolution, embedding",
              ("alpha", "beta")),
    Primitive("bias_add", ("x",), "elementwise", "adding a parameter vector (a bias) to an activation",
              ("beta",)),
    Primitive("skip_add", ("a", "b"), "elementwise", "an identity-skip (residual) add: x + f(x)"),
    Primitive("add", ("a", "b"), "elementwise", "sum or difference of two activations"),
    Primitive("shift", ("x",), "elementwise", "adding a constant (buffer or scalar) to an activation"),
    Primitive("scale", ("x",), "elementwise",
              "multiplying or dividing by a constant, a scalar, a parameter vector, or negation"),
    Primitive("product", ("a", "b"), "elementwise", "element-wise product of two activations"),
    Primitive("gate", ("a", "b"), "elementwise",
              "a GLU gate act(W1 x) * (W3 x): both factors weight edges of one input (SwiGLU, GeGLU)"),
    Primitive("act_relu", ("x",), "elementwise", "piecewise-linear activation with phi(0)=0 (ReLU, leaky ReLU)"),
    Primitive("act_smooth", ("x",), "elementwise",
              "smooth activation with phi(0)=0, phi'(0)!=0 (GELU, tanh, SiLU, ELU)"),
    Primitive("act_offset", ("x",), "elementwise",
              "activation with phi(0)!=0, phi'(0)!=0 (sigmoid, softplus, exp)"),
    Primitive("layernorm", ("x",), "same_as_x", "mean-subtracting LayerNorm (module, functional, ATen)"),
    Primitive("rmsnorm", ("x",), "same_as_x",
              "RMSNorm (module, functional, or written out as pow-mean-rsqrt-mul)"),
    Primitive("softmax_channels", ("x",), "same_as_x", "softmax over a channel axis (e.g. output logits)"),
    Primitive("softmax_tokens", ("x",), "same_as_x", "softmax over a token axis (attention weights)"),
    Primitive("contraction", ("a", "b"), "channel_free",
              "a product of two activations contracting a channel axis (Q K^T)"),
    Primitive("token_mix", ("a", "b"), "value",
              "a product of channel-free weights with an activation over tokens (A V)"),
    Primitive("attention", ("q", "k", "v"), "value", "fused scaled-dot-product attention softmax(QK^T)V"),
    Primitive("reduce_channels", ("x",), "channel_free", "a mean or sum over a channel axis"),
    Primitive("reduce_tokens", ("x",), "shape", "a mean or sum over token axes only"),
    Primitive("shape", ("x",), "shape",
              "shape-only: view, reshape, transpose, permute, split, slice, contiguous, expand, dropout (eval)"),
    Primitive("concat", ("xs*",), "shape", "concatenation or stacking of activations"),
    Primitive("batchnorm_eval", ("x",), "same_as_x",
              "BatchNorm in eval mode: a per-channel affine map with the running statistics"),
    Primitive("batchnorm_train", ("x",), "same_as_x",
              "BatchNorm in train mode: every channel normalised by its batch mean and std"),
    Primitive("batch_stats", (), "none", "the tuple an ATen batch_norm returns (its statistics are not used)"),
    Primitive("prepend_token", ("b",), "value",
              "a learned token (class token, registers) concatenated to the activations along the token "
              "axis; its dead entry is zeroed like a bias", ("beta",)),
    Primitive("unknown", ("xs*",), "channel_free", "an op no pattern recognises (named in the report)"),
]

PRIMITIVES: dict[str, Primitive] = {}
for _p in _ALL:
    if _p.name in PRIMITIVES:
        raise ValueError(f"primitive {_p.name} defined twice")
    PRIMITIVES[_p.name] = _p

#: Primitives whose nodes carry no dead coordinate and take no part in the sweeps.
INERT = frozenset({"param", "const", "batch_stats"})


def get(name: str) -> Primitive:
    """The primitive called ``name``; raises KeyError naming the known ones otherwise."""
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise KeyError(f"unknown primitive {name!r}; known: {', '.join(sorted(PRIMITIVES))}") from None


def register(prim: Primitive) -> Primitive:
    """Add a user primitive (see :func:`ddgraph.label.register_pattern`). Duplicates are refused."""
    if prim.name in PRIMITIVES:
        raise ValueError(f"primitive {prim.name!r} is already defined")
    PRIMITIVES[prim.name] = prim
    return prim
