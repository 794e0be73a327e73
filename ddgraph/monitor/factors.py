"""Periodic tier: per-layer K-FAC factors ``A = E[a a^T]`` and ``G = E[g g^T]`` (THEORY §7.3).

Streamed (:class:`FactorTier`): on the training batches the loop already runs (every
``factor_batch_every``-th one), a forward hook on each ``nn.Linear`` adds its input rows to ``A`` and a
tensor hook on its output adds the loss gradient's rows to ``G``. This is the *empirical* Fisher (the
training labels), the estimand that flags a transition (Algorithm 1). Per-sample gradients are the
output gradient times the batch size: the loss is taken to be a mean over the batch (scale-free readouts
do not depend on that). Each reading decomposes the factors accumulated since the last one and resets them,
so memory stays at two square matrices per layer.

On demand (:func:`expected_factors`): one extra forward and backward on a batch the caller gives, labels
drawn from the model itself (CE) or the model plus unit Gaussian noise (MSE): the *expected* Fisher, the
estimand for quantitative readouts (Remark 4; THEORY §2.4). Parameters, their ``.grad``, buffers and the
train/eval mode are left as they were.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ddgraph.errors import MonitorError
from ddgraph.monitor.spectrum import Spectrum, as_rows, spectrum


def linear_names(model: nn.Module) -> list[str]:
    return [name for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]


class _Accumulator:
    def __init__(self):
        self.a = self.g = None
        self.n_a = self.n_g = 0

    def add_a(self, rows: torch.Tensor) -> None:
        self.a = rows.T @ rows if self.a is None or self.a.shape[0] != rows.shape[1] else self.a + rows.T @ rows
        self.n_a += rows.shape[0]

    def add_g(self, rows: torch.Tensor) -> None:
        self.g = rows.T @ rows if self.g is None or self.g.shape[0] != rows.shape[1] else self.g + rows.T @ rows
        self.n_g += rows.shape[0]

    def factors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.n_a or not self.n_g or self.a.shape[0] == 0:
            return None
        return self.a / self.n_a, self.g / self.n_g


class FactorTier:
    """Hooks that stream K-FAC factors of the watched ``nn.Linear`` layers while ``armed``."""

    def __init__(self, model: nn.Module, layers: list[str] | None, max_rows: int):
        self.model, self.max_rows, self.armed, self.train_only = model, max_rows, False, True
        self.requested = layers
        self.acc: dict[str, _Accumulator] = {}
        self._handles: list = []
        self.rewire()

    def rewire(self) -> None:
        """Hook the current modules again (after the model's layers were replaced, e.g. a head grown)."""
        self.remove()
        modules = dict(self.model.named_modules())
        self.layers = linear_names(self.model) if self.requested is None else list(self.requested)
        for name in self.layers:
            if not isinstance(modules.get(name), nn.Linear):
                raise MonitorError(f"layers: {name!r} is not an nn.Linear of {type(self.model).__name__} "
                                   f"(its Linear layers: {', '.join(linear_names(self.model)) or 'none'})")
            self.acc.setdefault(name, _Accumulator())
            self._handles.append(modules[name].register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def hook(module, args, out):
            if not (self.armed and (module.training or not self.train_only) and out.requires_grad):
                return
            acc, batch = self.acc[name], out.shape[0] if out.dim() > 1 else 1
            acc.add_a(as_rows(args[0], self.max_rows))
            out.register_hook(lambda g: acc.add_g(as_rows(g * batch, self.max_rows)))
        return hook

    def read(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``(A, G)`` per layer, means over the rows accumulated since the last read; the accumulators reset."""
        out = {}
        for name in self.layers:
            f = self.acc[name].factors()
            self.acc[name] = _Accumulator()
            if f is not None:
                out[name] = f
        return out

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


@contextlib.contextmanager
def _buffers_kept(model: nn.Module):
    saved = {n: b.detach().clone() for n, b in model.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(saved[n])


def expected_factors(model: nn.Module, inputs, *, loss: str, k: int, layers: list[str] | None = None,
                     max_rows: int = 4096, generator: torch.Generator | None = None
                     ) -> dict[str, tuple[Spectrum, Spectrum]]:
    """K-FAC spectra with the expected Fisher on ``inputs`` (labels drawn from the model's own predictive
    distribution): one forward and one backward, nothing of the model changed.

    ``loss`` is ``"ce"`` (logits on the last axis) or ``"mse"`` (unit-variance Gaussian noise)."""
    if loss not in ("ce", "mse"):
        raise MonitorError(f"expected_factors: loss={loss!r}; expected 'ce' or 'mse'")
    inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    tier = FactorTier(model, layers, max_rows)
    tier.armed, tier.train_only = True, False
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        with _buffers_kept(model), torch.enable_grad():
            out = model(*inputs)
            out = out if isinstance(out, torch.Tensor) else out[0]
            batch = out.shape[0]
            if loss == "ce":
                with torch.no_grad():
                    probs = out.detach().softmax(-1).reshape(-1, out.shape[-1])
                    labels = torch.multinomial(probs, 1, generator=generator).reshape(out.shape[:-1])
                value = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), labels.reshape(-1),
                                                    reduction="sum") / batch
            else:
                noise = torch.randn(out.shape, generator=generator, dtype=out.dtype)
                value = 0.5 * ((out - (out.detach() + noise)) ** 2).sum() / batch
            torch.autograd.grad(value, params, allow_unused=True)  # fires the G hooks; no .grad is written
        return {name: (spectrum(a, k), spectrum(g, k)) for name, (a, g) in tier.read().items()}
    finally:
        tier.remove()
