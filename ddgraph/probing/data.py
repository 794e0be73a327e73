"""Inputs, noise and label draws for the probe, reproducible chunk by chunk (common random numbers)."""
from __future__ import annotations

from typing import Callable

import attrs
import torch

from ddgraph.errors import ProbeError


@attrs.define
class Sampler:
    """Draws chunk ``k`` of the sample identically every time it is asked: from the seed and ``k`` alone
    (samples ``k * chunk`` onward), so the sample does not depend on which process draws it."""

    make: Callable[[int, int, torch.Generator], tuple]  # (start row, size, generator) -> inputs
    n: int
    chunk: int
    seed: int
    cache_bytes: int = 256 * 2**20
    device: torch.device = torch.device("cpu")  # drawn on the CPU (the same numbers everywhere), then moved here
    _cache: dict = attrs.field(factory=dict, init=False)
    _bytes: int = attrs.field(default=0, init=False)

    def chunks(self):
        """``(k, size)`` for every chunk."""
        k, done = 0, 0
        while done < self.n:
            size = min(self.chunk, self.n - done)
            yield k, size
            k, done = k + 1, done + size

    def generator(self, k: int, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + k * 7919 + stream)

    def inputs(self, k: int, size: int) -> tuple:
        """Chunk ``k``: drawn once, then served from a cache while it fits in ``cache_bytes``."""
        if k in self._cache:
            return self._cache[k]
        out = tuple(x.to(self.device) for x in self.make(k * self.chunk, size, self.generator(k, 0)))
        nbytes = sum(t.numel() * t.element_size() for t in out)
        if self._bytes + nbytes <= self.cache_bytes:
            self._cache[k] = out
            self._bytes += nbytes
        return out


def _spec(example, order=()):
    if isinstance(example, torch.Tensor):
        return (example,)
    if isinstance(example, dict):  # keyword inputs, in the order of the traced graph's inputs
        missing = [name for name in order if name not in example]
        if missing or len(order) != len(example):
            raise ProbeError(f"keyword example inputs {sorted(example)} do not match the traced graph's inputs "
                             f"{list(order)}; pass every input the forward uses, by its name")
        return tuple(example[name] for name in order)
    return tuple(example)


def gaussian_like(example_inputs, vocab_hint: int | None = None, order=(), token_ids=None):
    """Gaussian samples in the example inputs' per-sample shapes; integer inputs at ``token_ids``
    (positions; default: every integer input) get uniform ids, other integer or boolean inputs (an
    attention mask) repeat the example's rows. Keyword inputs (a dict) are drawn in ``order``, the
    graph's input names."""
    spec = _spec(example_inputs, order)

    def make(start, size, gen):
        out = []
        for i, e in enumerate(spec):
            shape = (size, *e.shape[1:])
            if e.is_floating_point():
                out.append(torch.randn(shape, generator=gen, dtype=torch.float64))
            elif token_ids is None or i in token_ids:
                high = vocab_hint or int(e.max()) + 1
                out.append(torch.randint(0, high, shape, generator=gen, dtype=e.dtype))
            else:
                out.append(e[(torch.arange(size) + start) % e.shape[0]])
        return tuple(out)

    return make


def from_user(sampler) -> Callable:
    """Adapt a user sampler ``fn(n, generator)`` or a tensor data set (a tensor or tuple of tensors)."""
    if callable(sampler):
        def make(start, size, gen):
            out = sampler(size, gen)
            return tuple(_to64(t) for t in (out if isinstance(out, (tuple, list)) else (out,)))
        return make
    data = sampler if isinstance(sampler, (tuple, list)) else (sampler,)
    if not all(isinstance(t, torch.Tensor) for t in data):
        raise ProbeError("sampler must be a callable fn(n, generator) or a tensor (or tuple of tensors)")
    total = data[0].shape[0]

    def make(start, size, gen):
        idx = (torch.arange(size) + start) % total
        return tuple(_to64(t[idx]) for t in data)

    return make


def _to64(t: torch.Tensor) -> torch.Tensor:
    return t.double() if t.is_floating_point() else t
