"""Residual, gated, normalised and biased MLPs: the DAG, SwiGLU, LayerNorm and bias results."""
import torch

from ddgraph.models.zoo import NormedChain, ResidualMLP, SwiGLU, chain


def residual_mlp():
    """A residual block over the middle two of four weights: A = 0,2,4,2, G = 2,4,2,0 (Cor 48)."""
    return ResidualMLP(), (torch.randn(16, 8),)


def swiglu_mlp():
    """SwiGLU: G = 4,4,0 and A = 0,0,4 for W1, W3, W2 (Prop 114)."""
    return SwiGLU(), (torch.randn(16, 8),)


def layernorm_chain():
    """LayerNorm after the first of four layers: G = 0,4,2,0, A = 0,0,2,4."""
    return NormedChain(position=1), (torch.randn(16, 8),)


def rmsnorm_chain():
    """RMSNorm (nn.RMSNorm) after the first of four layers: no mean leak, no kernel."""
    return NormedChain(position=1, norm="rmsnorm"), (torch.randn(16, 8),)


def hand_rmsnorm_chain():
    """RMSNorm written out by hand (pow-mean-rsqrt-mul) after the first of four layers."""
    return NormedChain(position=1, norm="hand_rmsnorm"), (torch.randn(16, 8),)


def biased_chain():
    """A four-layer ReLU chain with biases (Thm 112: zeroed dead bias entries are inert)."""
    return chain(4, "relu", bias=True), (torch.randn(16, 8),)
