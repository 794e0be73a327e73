"""Real-time tier: residual-stream sigma_min (Cor 58) and LayerNorm kernel alignment (Prop 63).

Both are read from forward hooks on the pass the training loop already runs: on a reading step the
first training-mode forward of each watched module hands its output rows to a reader; no extra pass.

- **block outputs** (the residual stream): the Gram ``X^T X / rows`` of the block output; its smallest
  active eigenvalue is ``sigma_min^2`` of the stream (THEORY §7.4, ``ddgraph inspect``'s stream
  profile). Cor 58 says an exact-identity skip keeps it from collapsing along depth; a fall over
  training says the stream is losing a direction.
- **LayerNorm outputs**: with ``u = (1/gamma)/|1/gamma|``, ``u^T C u / tr C`` of the output covariance
  ``C`` (exactly 0 by Prop 63, up to rounding and eps: ``u`` is a null direction of C) and the dimension of C's
  numerical null space (1 unless the stream itself has lost rank).
"""
from __future__ import annotations

import torch
from torch import nn

from ddgraph.monitor.spectrum import as_rows
from ddgraph.probing.fit import FP64_FLOOR


def block_candidates(model: nn.Module) -> list[str]:
    """Names of the items of every ``nn.ModuleList`` (where models keep their blocks). Which of them
    are residual blocks (output shaped like the input) is decided on the first forward pass."""
    return [f"{name}.{i}" if name else str(i) for name, mod in model.named_modules()
            if isinstance(mod, nn.ModuleList) for i in range(len(mod))]


def norm_names(model: nn.Module) -> list[str]:
    return [name for name, mod in model.named_modules() if isinstance(mod, nn.LayerNorm)]


def _first_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)) and x and isinstance(x[0], torch.Tensor):
        return x[0]
    return None


class StreamTier:
    """Forward hooks on block outputs and LayerNorms; ``armed`` says the next forward is read."""

    def __init__(self, model: nn.Module, blocks: list[str] | None, norms: list[str] | None, max_rows: int,
                 record):
        modules = dict(model.named_modules())
        self.auto_blocks = blocks is None
        self.blocks = block_candidates(model) if blocks is None else list(blocks)
        self.norms = norm_names(model) if norms is None else list(norms)
        self.max_rows, self.record, self.armed = max_rows, record, False
        self._seen: set[str] = set()
        self._handles = [modules[n].register_forward_hook(self._block_hook(n)) for n in self.blocks]
        self._handles += [modules[n].register_forward_hook(self._norm_hook(n, modules[n])) for n in self.norms]

    def _block_hook(self, name):
        def hook(module, args, out):
            x, y = _first_tensor(args), _first_tensor(out)
            if self.auto_blocks and (x is None or y is None or x.shape != y.shape):
                return  # a ModuleList item that is not a residual block: no stream to read
            if not (self.armed and module.training and name not in self._seen and y.is_floating_point()):
                return
            self._seen.add(name)
            rows = as_rows(y, self.max_rows)
            evals = torch.linalg.eigvalsh(rows.T @ rows / rows.shape[0])
            top = float(evals[-1])
            active = evals[evals > FP64_FLOOR * top]
            low = float(active[0]) if active.numel() else 0.0
            self.record("stream", name, {"sigma_min_sq": low, "sigma_max_sq": top,
                                         "sigma_ratio_sq": low / top if top > 0 else 0.0,
                                         "rank_deficit": int(evals.numel() - active.numel())})
        return hook

    def _norm_hook(self, name, ln: nn.LayerNorm):
        def hook(module, args, out):
            y = _first_tensor(out)
            if not (self.armed and module.training and name not in self._seen) or y is None:
                return
            self._seen.add(name)
            rows = as_rows(y, self.max_rows)
            with torch.no_grad():
                gamma = ln.weight.detach().to(torch.float64) if ln.weight is not None else torch.ones(rows.shape[1],
                                                                                                       dtype=torch.float64)
                u = 1.0 / gamma
                u = u / u.norm()
                cov = torch.cov(rows.T)
                evals = torch.linalg.eigvalsh(cov)
            self.record("norm", name, {"kernel_ratio": float(u @ cov @ u / cov.trace()),
                                       "null_dim": int((evals <= FP64_FLOOR * evals[-1]).sum())})
        return hook

    def arm(self, on: bool) -> None:
        self.armed = on
        self._seen.clear()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
