"""Reading one token (a class token, ``h[:, 0]``) after attention: the engine's classes do not track
token positions, so the tokens that are not read get their gradient only through attention.

The minimal case behind torchvision's ViT disagreement (issue 11). With every token read, the
ladder holds; reading the class token alone, the patch embedding's G rate measures above the
prediction. Kept as a strict xfail until the calculus tracks read and unread tokens.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ddgraph


class ClassTokenAttention(nn.Module):
    def __init__(self, width=8, select=True):
        super().__init__()
        self.emb = nn.Linear(width, width, bias=False)
        self.cls = nn.Parameter(torch.randn(1, 1, width))
        self.q, self.k, self.v, self.o = (nn.Linear(width, width, bias=False) for _ in range(4))
        self.head = nn.Linear(width, 4, bias=False)
        self.select = select

    def forward(self, x):
        h = torch.cat([self.cls.expand(x.shape[0], -1, -1), self.emb(x)], 1)
        h = h + self.o(F.scaled_dot_product_attention(self.q(h), self.k(h), self.v(h)))
        return self.head(h[:, 0] if self.select else h)


def _check(select):
    torch.manual_seed(0)
    return ddgraph.check(ClassTokenAttention(select=select), torch.randn(4, 5, 8), progress=False,
                         n_samples=4000, grid=list(np.geomspace(1e-3, 1e-6, 4)))


def test_reading_every_token_the_ladder_holds():
    d = _check(select=False)
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]


@pytest.mark.xfail(strict=True, reason="token selection: unread tokens get their gradient only through "
                   "attention; the per-class calculus does not see token positions (issue 11)")
def test_reading_the_class_token_alone():
    d = _check(select=True)
    assert d.ok, [(c.param, c.factor, c.predicted, c.fit.slope, c.verdict) for c in d.failures]
