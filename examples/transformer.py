"""A GPT-style pre-norm transformer of any size; build it on the meta device for real scale."""
import torch

from ddgraph.zoo import PreNormTransformer


def small_transformer():
    """Two blocks, width 16, two heads, vocabulary 32 (probe it with --grid geom:1e-3:1e-5:7:
    the LayerNorm eps sets a crossover near t ~ sqrt(eps * width))."""
    return PreNormTransformer(), (torch.randint(0, 32, (4, 6)),)


def meta_transformer(depth=32, width=4096, heads=32, vocab=32000):
    """A 32-layer, 4096-wide transformer on the meta device (no weight memory): prediction only."""
    with torch.device("meta"):
        model = PreNormTransformer(depth, width, heads, vocab)
    return model, (torch.randint(0, vocab, (1, 8)),)
