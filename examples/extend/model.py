"""A model with an op ddgraph has never seen: a per-channel learned scale written as a
``torch.library`` custom op (``ddgraph_example::channel_scale``).

Without a plugin the op is ``unknown`` and every weight it reaches is ``no-rule``::

    ddgraph predict examples/extend/model.py:make

With the plugin (which defines the primitive and its label pattern) and its rule file::

    ddgraph diff examples/extend/model.py:make --plugin examples/extend/plugin.py --rules examples/extend/rules
"""
import torch
from torch import nn


@torch.library.custom_op("ddgraph_example::channel_scale", mutates_args=())
def channel_scale(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * scale`` with ``scale`` one learned number per channel (the last axis)."""
    return x * scale


@channel_scale.register_fake
def _(x, scale):
    return torch.empty_like(x)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    x, scale = ctx.saved_tensors
    return grad * scale, (grad * x).reshape(-1, x.shape[-1]).sum(0)


channel_scale.register_autograd(_backward, setup_context=_setup)


class ScaledMLP(nn.Module):
    """Linear -> channel scale -> ReLU -> Linear -> ReLU -> Linear."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.l0 = nn.Linear(width, width, bias=False)
        self.scale = nn.Parameter(torch.rand(width) + 0.5)
        self.l1 = nn.Linear(width, width, bias=False)
        self.l2 = nn.Linear(width, width, bias=False)

    def forward(self, x):
        h = torch.relu(torch.ops.ddgraph_example.channel_scale(self.l0(x), self.scale))
        return self.l2(torch.relu(self.l1(h)))


def make():
    torch.manual_seed(0)
    return ScaledMLP(), (torch.randn(16, 8),)
