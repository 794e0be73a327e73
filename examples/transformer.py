"""A GPT-style pre-norm transformer of any size; build it on the meta device for real scale."""
import torch

from ddgraph.models.zoo import PreNormTransformer


def small_transformer():
    """Two blocks, width 16, two heads, vocabulary 32, token ids in.

    Probe it with ``--loss ce --grid geom:1e-5:1e-8:7``: the dead token's embedding row is ``t e_dead``,
    which LayerNorm rescales to order 1 until ``t**2`` falls below its eps, so the asymptotic window
    only opens below t ~ 1e-4 (the default grid reports ``not-asymptotic`` there, honestly).
    """
    return PreNormTransformer(), (torch.randint(0, 32, (4, 6)),)


def meta_transformer(depth=32, width=4096, heads=32, vocab=32000):
    """A 32-layer, 4096-wide transformer on the meta device (no weight memory): prediction only."""
    with torch.device("meta"):
        model = PreNormTransformer(depth, width, heads, vocab)
    return model, (torch.randint(0, vocab, (1, 8)),)
