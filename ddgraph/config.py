"""The approach configuration: loss, regime, and the exponents alpha (weights) and beta (biases)."""
from __future__ import annotations

import math

import attrs

from .errors import ConfigError

LOSSES = ("mse", "ce")
REGIMES = ("noisy", "noise-free")
FISHERS = ("expected", "empirical")


@attrs.frozen
class Approach:
    """How the model approaches its canonical singular configuration.

    Parameters
    ----------
    loss : 'mse' or 'ce'.
    regime : for MSE, 'noisy' (the dead part of the target is noise) or 'noise-free'.
    fisher : for CE, 'expected' (labels drawn from the model) or 'empirical' (fixed labels).
    alpha : per-weight exponents of the dead-to-dead entry ``t**alpha``: ``None`` (1 everywhere),
        a number, a list (one per weight node in graph order, or per direction as inner lists), or
        a dict ``{param_name: number or [per-direction numbers]}``.
    beta : bias exponents ``{bias_param_name: number}``; a dead bias entry is zero (``inf``) otherwise.
    n_dead : dead directions per channel space.
    """

    loss: str = "mse"
    regime: str = "noisy"
    fisher: str = "expected"
    alpha: object = None
    beta: object = None
    n_dead: int = 1

    def __attrs_post_init__(self):
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.regime not in REGIMES:
            raise ConfigError(f"regime must be one of {REGIMES}, got {self.regime!r}")
        if self.fisher not in FISHERS:
            raise ConfigError(f"fisher must be one of {FISHERS}, got {self.fisher!r}")
        if not isinstance(self.n_dead, int) or self.n_dead < 1:
            raise ConfigError(f"n_dead must be a positive integer, got {self.n_dead!r}")

    @property
    def setting(self) -> dict:
        """What rule ``when`` clauses are matched against."""
        return {"loss": self.loss, "regime": self.regime, "fisher": self.fisher}


def _per_direction(value, n_dead: int, where: str) -> tuple[float, ...]:
    vals = list(value) if isinstance(value, (list, tuple)) else [value] * n_dead
    if len(vals) != n_dead:
        raise ConfigError(f"{where}: expected {n_dead} per-direction exponents, got {len(vals)}")
    out = []
    for v in vals:
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: exponent {v!r} is not a number") from None
        if not v > 0 or math.isnan(v):
            raise ConfigError(f"{where}: exponents must be positive (the approach needs t**a -> 0), got {v}")
        out.append(v)
    return tuple(out)


def resolve_alpha(approach: Approach, weight_params: list[str]) -> dict[str, tuple[float, ...]]:
    """Per weight parameter (graph order, duplicates allowed), its per-direction exponents."""
    m, a = approach.n_dead, approach.alpha
    unique = list(dict.fromkeys(weight_params))
    if a is None:
        return {p: (1.0,) * m for p in unique}
    if isinstance(a, dict):
        unknown = sorted(set(a) - set(unique))
        if unknown:
            raise ConfigError(f"alpha names {', '.join(unknown)}, which are not weights of this model; "
                              f"weights: {', '.join(unique)}")
        return {p: _per_direction(a.get(p, 1.0), m, f"alpha[{p}]") for p in unique}
    if isinstance(a, (list, tuple)):
        if len(a) != len(unique):
            raise ConfigError(f"alpha lists {len(a)} exponents but the model has {len(unique)} weights "
                              f"({', '.join(unique)})")
        return {p: _per_direction(v, m, f"alpha[{p}]") for p, v in zip(unique, a)}
    return {p: _per_direction(a, m, "alpha") for p in unique}


def resolve_beta(approach: Approach, bias_params: list[str]) -> dict[str, tuple[float, ...]]:
    """Per bias parameter, its per-direction dead-entry exponents (``inf``: the entry is zero)."""
    m, b = approach.n_dead, approach.beta or {}
    if not isinstance(b, dict):
        raise ConfigError("beta must be a dict {bias_param_name: exponent}")
    unknown = sorted(set(b) - set(bias_params))
    if unknown:
        raise ConfigError(f"beta names {', '.join(unknown)}, which are not biases on the dead path; "
                          f"biases: {', '.join(bias_params) or 'none'}")
    return {p: (_per_direction(b[p], m, f"beta[{p}]") if p in b else (math.inf,) * m)
            for p in bias_params}
