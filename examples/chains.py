"""Deep chains: the Thm 21 ladder in its simplest setting (linear, ReLU, GELU, tanh)."""
import torch

from ddgraph.models.zoo import chain


def deep_linear():
    """L = 4 linear chain: G = 6,4,2,0 and A = 0,2,4,6 (Thm 21)."""
    return chain(4, "linear"), (torch.randn(16, 8),)


def deep_relu():
    """L = 4 ReLU chain: the same ladder as the linear one (Thm 21)."""
    return chain(4, "relu"), (torch.randn(16, 8),)


def deep_gelu():
    """L = 4 GELU chain (a smooth activation: finite-t corrections, wider band)."""
    return chain(4, "gelu"), (torch.randn(16, 8),)


def deep_tanh():
    """L = 4 tanh chain."""
    return chain(4, "tanh"), (torch.randn(16, 8),)
