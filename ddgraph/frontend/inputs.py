"""Example inputs: what to feed a model when the user gives none."""
from __future__ import annotations

import torch
from torch import nn

from ddgraph.errors import TraceError

BATCH, TOKENS = 4, 6


def infer_example_inputs(model: nn.Module) -> tuple:
    """A small input batch shaped for the model's first weight module.

    Raises
    ------
    TraceError
        When the first module gives no clue; pass ``example_inputs`` then.
    """
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            return (torch.randn(BATCH, mod.in_features, device=_device(model)),)
        if isinstance(mod, nn.Embedding):
            return (torch.randint(0, mod.num_embeddings, (BATCH, TOKENS), device=_device(model)),)
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            spatial = (16,) * (mod.weight.dim() - 2)
            return (torch.randn(BATCH, mod.in_channels, *spatial, device=_device(model)),)
        if isinstance(mod, nn.MultiheadAttention):
            shape = (BATCH, TOKENS, mod.embed_dim) if mod.batch_first else (TOKENS, BATCH, mod.embed_dim)
            x = torch.randn(*shape, device=_device(model))
            return (x, x, x)
    raise TraceError(f"cannot guess example inputs for {type(model).__name__}: its first weight module "
                     "is not Linear, Embedding, Conv or MultiheadAttention. Pass example_inputs=...")


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def to_meta_if_needed(model: nn.Module, example_inputs):
    """Inputs moved to the meta device when the model's weights live there (no weight memory)."""
    p = next(model.parameters(), None)
    if p is None or p.device.type != "meta":
        return example_inputs
    conv = lambda v: v.to("meta") if isinstance(v, torch.Tensor) else v  # noqa: E731
    if isinstance(example_inputs, dict):
        return {k: conv(v) for k, v in example_inputs.items()}
    if isinstance(example_inputs, torch.Tensor):
        return conv(example_inputs)
    return tuple(conv(v) for v in example_inputs)
