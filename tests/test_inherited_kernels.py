"""A residual stream that inherits an exact kernel from the tensor its skips start from (THEORY §5.3).

At the canonical configuration a patchify stem reads fewer numbers than it writes: its dead input
channel's columns are zeroed, so its bulk outputs span fewer dimensions than there are channels. The
LayerNorm after it then has a kernel of several dimensions (1/gamma lies in it, but is not its only
direction), and the stream that starts there keeps that kernel, filled only by branches under a layer
scale of 1e-6: its sigma_min^2 sits at about 1e-15 of its largest eigenvalue. timm's ConvNeXt-atto
failed four structural sites this way: its two stage-0 stream sites (floor) and two LayerNorms (the
bottom eigenvector is not 1/gamma in a kernel of dimension 7; the Rayleigh quotient of 1/gamma is the check).
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ddgraph
from ddgraph.probing.observables import stream_bottom


class _Norm2d(nn.LayerNorm):
    """LayerNorm over the channels of a feature map (permute, layer_norm, permute back)."""

    def forward(self, x):
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class _Block(nn.Module):
    """Depthwise conv, channels-last LayerNorm, GELU MLP, layer scale 1e-6, identity skip."""

    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.norm = nn.LayerNorm(c)
        self.fc1, self.fc2 = nn.Linear(c, 2 * c), nn.Linear(2 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 1e-6))

    def forward(self, x):
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        y = self.gamma * self.fc2(F.gelu(self.fc1(y)))
        return x + y.permute(0, 3, 1, 2)


def _mini_convnext():
    """A 2x2 patchify stem from 3 channels to 12 (its bulk reads 2 * 4 = 8 numbers for 11 channels), two
    stages joined by a LayerNorm-and-conv downsample."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 12, 2, stride=2), _Norm2d(12), _Block(12),
                          _Norm2d(12), nn.Conv2d(12, 16, 2, stride=2), _Block(16),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
    return model.eval(), (torch.randn(1, 3, 8, 8),)


def test_convnext_structural_sites_pass_where_the_stem_is_rank_deficient():
    model, x = _mini_convnext()
    d = ddgraph.check(model, x, n_samples=1000, progress=False)
    assert [s["verdict"] for s in d.ln] == ["pass"] * 4, d.ln
    assert [(s["predicted"], s["verdict"]) for s in d.streams] == [(0.0, "pass"), (2.0, "pass")], d.streams
    assert d.ok, [(c.node, c.factor, c.verdict) for c in d.failures]


def test_the_stems_layernorm_kernel_has_more_than_one_dimension():
    """What makes the stream's reading necessary: with the dead input channel cut (as the canonical
    configuration cuts it from the bulk), the stem's LayerNorm holds 1/gamma in a kernel of several
    dimensions, so no eigensolver singles out 1/gamma as the bottom eigenvector there."""
    from ddgraph.probing.observables import holds_kernel, kernel_check
    model, _ = _mini_convnext()
    x = torch.randn(4000, 3, 8, 8, dtype=torch.float64)
    x[:, 2] = 0.0  # the dead input channel
    with torch.no_grad():
        y = model[1].double()(model[0].double()(x)).permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(y.T)
    evals = torch.linalg.eigvalsh(cov)
    assert int((evals < 1e-10 * evals.sum()).sum()) >= 2, evals
    assert holds_kernel(kernel_check(cov, 1 / model[1].weight.detach().double())["rayleigh"])


def _stream(scale, n=4000, d=6, rank=4):
    """Rows ``R + scale * B``: a root of rank 4 in 6 channels and independent branches."""
    g = torch.Generator().manual_seed(1)
    root = torch.randn(n, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, d, generator=g,
                                                                                   dtype=torch.float64)
    branch = scale * torch.randn(n, d, generator=g, dtype=torch.float64)
    x = root + branch
    return x.T @ x / n, root.T @ root / n, branch.T @ branch / n


def test_stream_bottom_reads_a_kernel_filled_far_under_the_eigensolver_floor():
    # filled at 1e-4 the bottom is resolved by an eigensolver on the whole moment; it scales as the
    # square of the fill, so at 1e-9 it is 1e-10 of that, far under fp64's 1e-16 of the bulk
    m, _, _ = _stream(1e-4)
    resolved = float(torch.linalg.eigvalsh(m)[0])
    m, root, branches = _stream(1e-9)
    assert float(torch.linalg.eigvalsh(m)[0]) != pytest.approx(1e-10 * resolved, rel=0.5, abs=0)
    assert stream_bottom(m, root, branches) == pytest.approx(1e-10 * resolved, rel=1e-3, abs=0)


def test_stream_bottom_leaves_a_root_without_kernel_to_the_plain_reading():
    m, root, branches = _stream(1e-3, rank=6)
    assert stream_bottom(m, root, branches) is None
