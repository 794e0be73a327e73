"""Canonical op names: one vocabulary for fx (module-free functional) and torch.export (ATen) graphs.

fx gives ``F.linear``, ``operator.add`` and tensor methods (``"view"``); torch.export gives ATen
overloads (``aten.linear.default``, ``aten.add.Tensor``). Both reduce to one lower-case name here,
so the labeller's patterns are written once.
"""
from __future__ import annotations

import operator

import torch

#: Names that differ between fx and ATen for the same operation.
ALIASES = {
    "truediv": "div", "floordiv": "div", "iadd": "add", "isub": "sub", "imul": "mul",
    "itruediv": "div", "_softmax": "softmax", "_unsafe_view": "view", "reshape": "view",
    "_reshape_alias": "view", "view_as": "view", "reshape_as": "view", "_to_copy": "to",
    "type_as": "to", "float": "to", "double": "to", "half": "to", "bfloat16": "to", "type": "to",
    "split_with_sizes": "split", "tensor_split": "split", "concat": "cat", "concatenate": "cat",
    "native_layer_norm": "layer_norm", "group_norm": "group_norm", "_log_softmax": "log_softmax",
    "absolute": "abs", "expand_as": "expand", "swapaxes": "transpose", "swapdims": "transpose",
    "movedim": "permute", "lift_fresh_copy": "clone", "copy": "clone", "detach_": "detach",
    "feature_dropout": "dropout", "native_dropout": "dropout", "alpha_dropout": "dropout",
    "stochastic_depth": "dropout",  # torchvision's: an identity in eval mode, random in training
    "_adaptive_avg_pool2d": "adaptive_avg_pool2d", "_adaptive_avg_pool3d": "adaptive_avg_pool3d",
    "conv1d": "conv", "conv2d": "conv", "conv3d": "conv", "convolution": "conv",
    "_convolution": "conv", "_native_batch_norm_legit_no_training": "batch_norm",
    "_native_batch_norm_legit_functional": "batch_norm", "native_batch_norm": "batch_norm",
    "_native_batch_norm_legit": "batch_norm", "getattr": "getattr", "rsub": "rsub",
    "scaled_dot_product_attention": "sdpa", "matmul": "matmul", "__matmul__": "matmul",
    "square": "square", "sym_size": "size",
}

#: Ops that only move entries around (their output is a rearrangement of their inputs).
SHAPE_OPS = frozenset({
    "view", "transpose", "permute", "t", "flatten", "unflatten", "unsqueeze", "squeeze",
    "contiguous", "expand", "clone", "dropout", "alias", "detach", "slice", "select", "split",
    "chunk", "getitem", "cat", "stack", "to", "narrow", "unbind", "repeat", "repeat_interleave",
    "identity", "getattr", "mT", "T", "numpy_T", "adjoint", "mH", "H", "view_as_real",
})

def op_name(fx_node: torch.fx.Node) -> str:
    """The canonical lower-case name of the operation a node performs."""
    kind, target = fx_node.op, fx_node.target
    if kind in ("placeholder", "output", "get_attr"):
        return kind
    if kind == "call_method":
        name = str(target)
    elif kind == "call_module":
        name = "module"
    elif isinstance(target, torch._ops.OpOverload):
        name = target.overloadpacket.__name__
    elif isinstance(target, torch._ops.OpOverloadPacket):
        name = target.__name__
    elif target is operator.getitem:
        name = "getitem"
    else:
        name = getattr(target, "__name__", str(target))
    if name.endswith("_") and not name.startswith("_") and name[:-1]:
        name = name[:-1]  # in-place variants behave like their functional twin here
    name = name.removeprefix("__").removesuffix("__") if name.startswith("__") else name
    return ALIASES.get(name, name)


def target_repr(fx_node: torch.fx.Node) -> str:
    """A readable description of what a node calls, for error messages and reports."""
    target = fx_node.target
    if isinstance(target, str):
        return f"{fx_node.op}:{target}"
    mod = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    if isinstance(target, torch._ops.OpOverloadPacket):
        return target._qualified_op_name.replace("::", ".")  # a torch.library op: namespace.name
    return f"{mod}.{name}" if mod else name


#: Canonical op names by what they compute (patterns and the dependence analysis read these).
RELU_OPS = frozenset({"relu", "leaky_relu", "hardtanh", "relu6", "prelu", "rrelu"})
CLIP_OPS = frozenset({"relu", "relu6"})  # the ReLU-class ops whose negative half is exactly zero
SMOOTH_OPS = frozenset({"gelu", "tanh", "silu", "elu", "selu", "celu", "mish", "hardswish",
                        "softsign", "tanhshrink", "sin", "atan", "asinh", "erf", "hardshrink",
                        "softshrink"})
OFFSET_OPS = frozenset({"sigmoid", "softplus", "exp", "logsigmoid", "hardsigmoid", "cos", "log_sigmoid"})
WEIGHT_OPS = frozenset({"linear", "matmul", "mm", "bmm", "addmm", "conv", "embedding", "einsum"})
REDUCE_OPS = frozenset({"mean", "sum", "amax", "amin", "max", "min", "logsumexp"})
GATHER_OPS = frozenset({"embedding", "index", "index_select", "gather"})
#: Element-wise ops a written-out activation is made of (x * sigmoid(x), GELU-tanh, ...).
COMPOSITE_OPS = frozenset({"mul", "add", "sub", "div", "pow", "neg", "rsub", "to", "square"})
#: Pooling over spatial windows, per channel (the ``_with_indices`` forms return (values, indices)).
POOL_OPS = frozenset({f"{kind}_pool{k}d{tail}" for kind in ("max", "avg", "adaptive_avg", "adaptive_max")
                      for k in (1, 2, 3) for tail in ("", "_with_indices")})
