"""Deep chains: the Thm 21 ladder in its simplest setting (linear, ReLU, GELU, tanh)."""
import torch
from torch import nn

WIDTH = 8
ACTS = {"linear": nn.Identity, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def chain(depth: int = 4, act: str = "linear", width: int = WIDTH, bias: bool = False) -> nn.Module:
    """A depth-``depth`` MLP of square ``width`` layers with ``act`` between them."""
    layers = []
    for i in range(depth):
        layers.append(nn.Linear(width, width, bias=bias))
        if i < depth - 1 and act != "linear":
            layers.append(ACTS[act]())
    return nn.Sequential(*layers)


def deep_linear():
    """L = 4 linear chain: G = 6,4,2,0 and A = 0,2,4,6 (Thm 21)."""
    return chain(4, "linear"), (torch.randn(16, WIDTH),)


def deep_relu():
    """L = 4 ReLU chain: the same ladder as the linear one (Thm 21)."""
    return chain(4, "relu"), (torch.randn(16, WIDTH),)


def deep_gelu():
    return chain(4, "gelu"), (torch.randn(16, WIDTH),)


def deep_tanh():
    return chain(4, "tanh"), (torch.randn(16, WIDTH),)
