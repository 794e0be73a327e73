"""The approach configuration: loss, regime, and the approach exponents the primitives declare."""
from __future__ import annotations

import math
from typing import Mapping

import attrs

from ddgraph.errors import ConfigError

LOSSES = ("mse", "ce")
REGIMES = ("noisy", "noise-free")
FISHERS = ("expected", "empirical")


@attrs.frozen(init=False)
class Approach:
    """How the model approaches its canonical singular configuration.

    Parameters
    ----------
    loss : 'mse' or 'ce'.
    regime : for MSE, 'noisy' (the dead part of the target is noise) or 'noise-free'.
    fisher : for CE, 'expected' (labels drawn from the model) or 'empirical' (fixed labels).
    n_dead : dead directions per channel space.
    exponents : values of the approach exponents, by name. Every other keyword argument is an
        exponent too: the built-in primitives declare ``alpha`` (the dead-to-dead entry ``t**alpha``
        of each weight; 1 when not given) and ``beta`` (a dead bias entry ``t**beta``; zero when not
        given); a plugin primitive may declare its own. A value is ``None`` (the default), a number,
        a list (one per parameter in graph order, or per direction as inner lists), or a dict
        ``{param_name: number or [per-direction numbers]}``.
    """

    loss: str
    regime: str
    fisher: str
    n_dead: int
    exponents: Mapping

    def __init__(self, loss: str = "mse", regime: str = "noisy", fisher: str = "expected", n_dead: int = 1,
                 exponents: Mapping | None = None, **named):
        values = {k: v for k, v in {**(exponents or {}), **named}.items() if v is not None}
        self.__attrs_init__(loss, regime, fisher, n_dead, values)

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


def resolve(approach: Approach, name: str, params: list[str], default: float, noun: str
            ) -> dict[str, tuple[float, ...]]:
    """Per parameter (graph order, duplicates allowed), the per-direction values of exponent ``name``.

    ``default`` applies to parameters the user gave no value for (``inf``: the entry is held at zero);
    ``noun`` names what the exponent attaches to in error messages.
    """
    m, a = approach.n_dead, approach.exponents.get(name)
    unique = list(dict.fromkeys(params))
    fallback = (float(default),) * m
    if a is None:
        return {p: fallback for p in unique}
    if isinstance(a, dict):
        unknown = sorted(set(a) - set(unique))
        if unknown:
            raise ConfigError(f"{name} names {', '.join(unknown)}, which are not {noun} of this model; "
                              f"{noun}: {', '.join(unique) or 'none'}")
        return {p: (_per_direction(a[p], m, f"{name}[{p}]") if p in a else fallback) for p in unique}
    if isinstance(a, (list, tuple)):
        if len(a) != len(unique):
            raise ConfigError(f"{name} lists {len(a)} exponents but the model has {len(unique)} {noun} "
                              f"({', '.join(unique)})")
        return {p: _per_direction(v, m, f"{name}[{p}]") for p, v in zip(unique, a)}
    return {p: _per_direction(a, m, name) for p in unique}
