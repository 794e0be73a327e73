"""The primitive vocabulary: every label the labeller assigns, each one object that owns its interpretations.

A :class:`Primitive` says, in one place, everything a stage of ddgraph needs to know about a kind of
node, in the spirit of JAX's primitives: its operand ``roles``; how the dead coordinate of its output
follows from its operands (``mask``, a named mask rule of :mod:`ddgraph.frontend.channels`); which approach
exponents it carries (``approach``: ``alpha`` on a weight's dead-to-dead entry, ``beta`` on a dead
bias entry, or any name a user primitive declares); how it is put at the canonical configuration
(``canonical``: which of its parameters are zeroed or follow ``t**exponent`` on the dead entries);
which observables the probe reads at it (``observables``); its finite-t tolerance band (``band``);
and its display colour. What it does to valuations lives in its rule file in ``rules/``.

Primitives are collected in a :class:`Primitives` set per run: the built-ins (:data:`BUILTIN`) plus
those a plugin defines. Nothing here imports torch.
"""
from __future__ import annotations

import math
from typing import Iterable, Iterator

import attrs

#: Named mask rules (see :mod:`ddgraph.frontend.channels`): how a primitive's output dead-class mask is formed.
MASK_RULES = ("source", "weight", "elementwise", "shape", "token_reduction", "channel_row", "channel_free",
              "value", "same_as_x", "opaque", "none", "provisional")

#: Observables a primitive exposes to the probe, the prediction and the report.
OBSERVABLES = {
    "kfac": "K-FAC factors A (input) and G (output gradient) of a weight edge: the rate ladder",
    "kernel": "a normaliser whose output covariance has an exact kernel along 1/gamma (Prop 63)",
    "no_kernel": "a normaliser without a kernel direction (no mean subtraction)",
    "stream": "a residual-stream site: sigma_min^2 of the activations (Cor 58)",
    "kl": "the model output: the KL order of the approach is read here",
    "rescalable": "positively homogeneous of degree one (ReLU): a rescaling gauge passes through it",
    "scale_invariant": "invariant under scaling its input (LayerNorm): a scaling gauge ends at it",
}

#: What the dead entries of a canonicalised parameter become.
DEAD_VALUES = ("zero", "approach")

#: Parameter layouts the canonicaliser knows: a weight edge's matrix, or a per-channel vector.
LAYOUTS = ("matrix", "vector")


@attrs.frozen
class Exponent:
    """An approach exponent: the dead entries of the parameters it names follow ``t**value``.

    ``default`` applies to a parameter the user gives no value for (``inf``: held at zero);
    ``noun`` names what the exponent attaches to in messages ("weights", "biases").
    """

    name: str
    attr: str  # node attribute (dotted path) holding the parameter's qualified name
    default: float = 1.0
    noun: str = "parameters"


@attrs.frozen
class ValueOrder:
    """An order a rule reads off the node's own parameter values, class by class (THEORY §3.9).

    The values (the parameter named by node attribute ``attr``, plus the number held by node attribute
    ``offset`` if any: Gemma's ``1 + w``) are read at labelling along ``axis`` of the node's mask: a class
    whose entries are all exactly zero has order ``inf``, any other ``0``. A missing parameter has order
    ``absent`` (a missing gain is 1: ``0``; a missing bias is 0: ``inf``); values that cannot be read (the
    meta device) count as generic. Unlike an approach exponent it means the same in every class, so
    shared rule blocks may read it.
    """

    name: str
    attr: str
    absent: float = 0.0
    offset: str | None = None
    axis: int = -1


@attrs.frozen
class ParamSpec:
    """How one parameter of a node is put at the canonical configuration.

    ``attr`` is the node attribute (dotted path) holding the parameter's (or buffer's) qualified
    name. ``layout`` is ``matrix`` (a weight edge: dead rows and columns zeroed, dead-to-dead entry
    ``t**exponent``, the centre tap for a convolution) or ``vector`` (a per-channel vector along
    ``axis`` of the node's mask; a string names the node attribute holding the axis). ``dead`` is
    ``zero`` or ``approach`` (``t**exponent``, zero when the exponent is ``inf``). A ``buffer`` (a
    BatchNorm's running mean) can only be zeroed.
    """

    attr: str
    layout: str = "vector"
    dead: str = "zero"
    exponent: str | None = None
    axis: int | str = -1
    buffer: bool = False

    def __attrs_post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"ParamSpec {self.attr}: layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.dead not in DEAD_VALUES:
            raise ValueError(f"ParamSpec {self.attr}: dead must be one of {DEAD_VALUES}, got {self.dead!r}")
        if (self.dead == "approach") != (self.exponent is not None):
            raise ValueError(f"ParamSpec {self.attr}: dead='approach' goes with an exponent name, and only it")
        if self.buffer and self.dead != "zero":
            raise ValueError(f"ParamSpec {self.attr}: a buffer's dead entries can only be zeroed")


@attrs.frozen
class Primitive:
    """One labelled kind of node and everything the stages need to know about it."""

    name: str
    roles: tuple[str, ...]  # operand roles in order; a role ending in '*' is variadic
    mask: object  # a name from MASK_RULES, or a callable mask rule (see ddgraph.frontend.channels)
    doc: str
    approach: tuple[Exponent, ...] = ()
    canonical: tuple[ParamSpec, ...] = ()
    values: tuple[ValueOrder, ...] = ()
    observables: tuple[str, ...] = ()
    band: float | None = None  # finite-t tolerance band of the probe behind this primitive
    colour: str = "#ffffff"
    settle: object = None  # provisional primitives: callable(node, masks, roles) -> final name

    def __attrs_post_init__(self):
        if isinstance(self.mask, str) and self.mask not in MASK_RULES:
            raise ValueError(f"primitive {self.name}: unknown mask rule {self.mask!r}; "
                             f"known: {', '.join(MASK_RULES)}")
        if not isinstance(self.mask, str) and not callable(self.mask):
            raise ValueError(f"primitive {self.name}: mask must be a mask-rule name or a callable")
        unknown = [o for o in self.observables if o not in OBSERVABLES]
        if unknown:
            raise ValueError(f"primitive {self.name}: unknown observable {unknown[0]!r}; "
                             f"known: {', '.join(OBSERVABLES)}")
        if (self.mask == "provisional") != (self.settle is not None):
            raise ValueError(f"primitive {self.name}: a provisional primitive needs settle(), and only it")
        names = {e.name for e in self.approach}
        for spec in self.canonical:
            if spec.exponent is not None and spec.exponent not in names:
                raise ValueError(f"primitive {self.name}: canonical spec {spec.attr} uses exponent "
                                 f"{spec.exponent!r}, which the primitive does not declare")
        clash = names & {v.name for v in self.values}
        if clash:
            raise ValueError(f"primitive {self.name}: {sorted(clash)[0]!r} is both an approach exponent and a "
                             "value order")
        if self.band is not None and not (0 < self.band < 1):
            raise ValueError(f"primitive {self.name}: band must lie in (0, 1), got {self.band}")

    @property
    def inert(self) -> bool:
        """Nodes that carry no dead coordinate and take no part in the sweeps."""
        return self.mask == "none"

    @property
    def exponents(self) -> tuple[str, ...]:
        """Names of the approach exponents a rule of this primitive may read."""
        return tuple(e.name for e in self.approach)

    @property
    def value_names(self) -> tuple[str, ...]:
        """Names of the value orders a rule of this primitive may read in any block."""
        return tuple(v.name for v in self.values)


def node_attr(d: dict, path: str):
    """The node attribute at dotted ``path`` (``weight.param``), or None."""
    cur = d
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


@attrs.frozen
class Primitives:
    """The primitives in force for one run: a mapping by name, composable with ``+``."""

    table: dict = attrs.field(factory=dict)

    @classmethod
    def of(cls, prims: Iterable[Primitive]) -> "Primitives":
        out: dict[str, Primitive] = {}
        for p in prims:
            if p.name in out:
                raise ValueError(f"primitive {p.name!r} is defined twice")
            out[p.name] = p
        return cls(out)._checked()

    def _checked(self) -> "Primitives":
        defaults: dict[str, tuple[float, str]] = {}
        for p in self.table.values():
            for e in p.approach:
                seen = defaults.setdefault(e.name, (e.default, p.name))
                if seen[0] != e.default and not (math.isinf(seen[0]) and math.isinf(e.default)):
                    raise ValueError(f"approach exponent {e.name!r}: primitive {p.name} gives default "
                                     f"{e.default}, primitive {seen[1]} gives {seen[0]}")
        return self

    def __add__(self, other: "Primitives | Iterable[Primitive]") -> "Primitives":
        """A set with ``other``'s primitives added; redefining an existing name is refused."""
        other = other if isinstance(other, Primitives) else Primitives.of(other)
        clash = sorted(set(self.table) & set(other.table))
        if clash:
            raise ValueError(f"primitive {clash[0]!r} is already defined")
        return Primitives({**self.table, **other.table})._checked()

    def __getitem__(self, name: str) -> Primitive:
        try:
            return self.table[name]
        except KeyError:
            raise KeyError(f"unknown primitive {name!r}; known: {', '.join(sorted(self.table))}") from None

    def __contains__(self, name) -> bool:
        return name in self.table

    def __iter__(self) -> Iterator[Primitive]:
        return iter(self.table.values())

    def __len__(self) -> int:
        return len(self.table)

    def with_observable(self, observable: str) -> frozenset[str]:
        """Names of the primitives exposing ``observable``."""
        return frozenset(p.name for p in self if observable in p.observables)

    def exponent_defaults(self) -> dict[str, Exponent]:
        """Every approach exponent declared in this set, by name (the first declaration)."""
        out: dict[str, Exponent] = {}
        for p in self:
            for e in p.approach:
                out.setdefault(e.name, e)
        return out


ALPHA = "alpha"
BETA = "beta"
_WEIGHT_EXPONENTS = (Exponent(ALPHA, "weight.param", 1.0, "weights"),
                     Exponent(BETA, "weight.bias", math.inf, "biases on the dead path"))
_BIAS_EXPONENT = (Exponent(BETA, "bias_param", math.inf, "biases on the dead path"),)
_GAIN = ValueOrder("gain", "norm_weight", absent=0.0, offset="norm_gain_offset")
_NORM_BIAS = ValueOrder("bias", "norm_bias", absent=math.inf)
_BN_VALUES = (attrs.evolve(_GAIN, axis=1), attrs.evolve(_NORM_BIAS, axis=1))
_ACT = "#d8f3dc"
_ATTN = "#f4a261"
_SHAPE = "#eeeeee"

BUILTIN = Primitives.of([
    Primitive("input", (), "source", "a model input (float features, or integer ids for an embedding)"),
    Primitive("param", (), "none", "a parameter, or a shape-only view of one"),
    Primitive("const", (), "none", "a tensor that does not depend on the inputs or the parameters"),
    Primitive("output", ("x",), "same_as_x", "the model output, where the loss base case applies",
              observables=("kl",)),
    Primitive("weight", ("x",), "weight",
              "a weight edge: linear, matmul/addmm with a parameter, convolution, embedding",
              approach=_WEIGHT_EXPONENTS,
              canonical=(ParamSpec("weight", layout="matrix", dead="approach", exponent=ALPHA),
                         ParamSpec("weight.bias", dead="approach", exponent=BETA, axis="weight.y_axis")),
              observables=("kfac",), colour="#8ecae6"),
    Primitive("bias_add", ("x",), "elementwise", "adding a parameter vector (a bias) to an activation",
              approach=_BIAS_EXPONENT, canonical=(ParamSpec("bias_param", dead="approach", exponent=BETA),)),
    Primitive("skip_add", ("a", "b"), "elementwise", "an identity-skip (residual) add: x + f(x)",
              observables=("stream",), colour="#ffb703"),
    Primitive("add", ("a", "b"), "elementwise", "sum or difference of two activations", colour="#ffd166"),
    Primitive("shift", ("x",), "elementwise", "adding a constant (buffer or scalar) to an activation"),
    Primitive("scale", ("x",), "elementwise",
              "multiplying or dividing by a constant, a scalar, a parameter vector, or negation"),
    Primitive("product", ("a", "b"), "elementwise", "element-wise product of two activations",
              colour="#cdb4db"),
    Primitive("gate", ("a", "b"), "elementwise",
              "a GLU gate act(W1 x) * (W3 x): both factors weight edges of one input (SwiGLU, GeGLU)",
              colour="#cdb4db"),
    Primitive("act_relu", ("x",), "elementwise",
              "piecewise-linear activation with phi(0)=0 (ReLU, leaky ReLU)",
              observables=("rescalable",), colour=_ACT),
    Primitive("act_smooth", ("x",), "elementwise",
              "smooth activation with phi(0)=0, phi'(0)!=0 (GELU, tanh, SiLU, ELU)", band=0.1, colour=_ACT),
    Primitive("act_offset", ("x",), "elementwise",
              "activation with phi(0)!=0, phi'(0)!=0 (sigmoid, softplus, exp)", band=0.1, colour=_ACT),
    Primitive("layernorm", ("x",), "same_as_x", "mean-subtracting LayerNorm (module, functional, ATen)",
              canonical=(ParamSpec("norm_bias"),), values=(_GAIN, _NORM_BIAS),
              observables=("kernel", "scale_invariant"),
              colour="#b5e48c"),
    Primitive("rmsnorm", ("x",), "same_as_x",
              "RMSNorm (module, functional, or written out as pow-mean-rsqrt-mul)", values=(_GAIN,),
              observables=("no_kernel",), colour="#99d98c"),
    Primitive("softmax_channels", ("x",), "same_as_x", "softmax over a channel axis (e.g. output logits)",
              colour="#e9c46a"),
    Primitive("softmax_tokens", ("x",), "same_as_x", "softmax over a token axis (attention weights)",
              colour="#e9c46a"),
    Primitive("contraction", ("a", "b"), "channel_free",
              "a product of two activations contracting a channel axis (Q K^T)", colour=_ATTN),
    Primitive("token_mix", ("a", "b"), "value",
              "a product of channel-free weights with an activation over tokens (A V)", colour=_ATTN),
    Primitive("attention", ("q", "k", "v"), "value", "fused scaled-dot-product attention softmax(QK^T)V",
              colour=_ATTN),
    Primitive("reduce_channels", ("x",), "channel_free", "a mean or sum over a channel axis"),
    Primitive("reduce_tokens", ("x",), "token_reduction", "a mean or sum over token axes only"),
    Primitive("pool", ("x",), "channel_row",
              "average or max pooling over the spatial axes of each channel (avg_pool, max_pool, adaptive)",
              colour=_SHAPE),
    Primitive("shape", ("x",), "shape",
              "shape-only: view, reshape, transpose, permute, split, slice, contiguous, expand, dropout (eval)",
              colour=_SHAPE),
    Primitive("concat", ("xs*",), "shape", "concatenation or stacking of activations", colour=_SHAPE),
    Primitive("batchnorm_eval", ("x",), "same_as_x",
              "BatchNorm in eval mode: a per-channel affine map with the running statistics",
              canonical=(ParamSpec("norm_bias", axis=1), ParamSpec("running_mean", axis=1, buffer=True)),
              values=_BN_VALUES + (ValueOrder("mean", "running_mean", absent=math.inf, axis=1),)),
    Primitive("batchnorm_train", ("x",), "same_as_x",
              "BatchNorm in train mode: every channel normalised by its batch mean and std",
              canonical=(ParamSpec("norm_bias", axis=1),), values=_BN_VALUES),
    Primitive("batch_stats", (), "none", "the tuple an ATen batch_norm returns (its statistics are not used)"),
    Primitive("pool_indices", (), "none",
              "the (values, indices) tuple of a max pooling, or its indices; the values are read through getitem 0"),
    Primitive("prepend_token", ("b",), "value",
              "a learned token (class token, registers) concatenated to the activations along the token "
              "axis; its dead entry is zeroed like a bias", approach=_BIAS_EXPONENT,
              canonical=(ParamSpec("bias_param", dead="approach", exponent=BETA),)),
    Primitive("unknown", ("xs*",), "opaque", "an op no pattern recognises (named in the report)",
              colour="#ef476f"),
])
