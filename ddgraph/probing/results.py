"""What the probe returns: the measured series per weight node, normaliser and stream site."""
from __future__ import annotations

import math

import attrs

from ddgraph.core.approach import Approach


@attrs.define
class SiteSeries:
    """Observables of one weight node over the grid: ``series[factor][name][class] -> list over t``."""

    node: str
    param: str
    kind: str
    series: dict = attrs.Factory(dict)
    overlap: dict = attrs.Factory(dict)  # factor -> class -> bottom-eigvec overlap at the smallest t


@attrs.define
class Measurement:
    """What the probe measured: per weight node, per LN node and per residual-stream site."""

    model: str
    approach: Approach
    grid: tuple[float, ...]  # every t measured, largest first
    n_samples: int
    weights: dict[str, SiteSeries]
    ln: dict[str, dict]
    streams: dict[str, list[float]]
    skipped: list[str]
    nan: dict[float, str]  # t -> where the forward pass first produced a non-finite value
    seconds_per_t: float = math.nan  # median wall time of one t-point (first-point caching excluded)
    moved: list = attrs.Factory(list)  # A blocks the calculus called constant that moved (an engine bug)
    cpu_seconds_per_t: float = math.nan  # the same in process CPU time (robust to other load)
    notes: list = attrs.Factory(list)  # what the probe did or could not read, said once (dropout off, no bulk)
    adaptive: bool = False  # the grid was chosen by the sweep (each fit picks its window), not pinned
    ranks: int = 1  # processes that shared the sample (torch.distributed)
    factor_mb: float = math.nan  # the most K-FAC factor sums one process held at once (MB)

    def to_frame(self):
        """Every measured value as a pandas DataFrame, one row per node, factor, observable,
        direction and t (needs pandas; see :func:`ddgraph.output.frames.measurement_rows`)."""
        from ddgraph.output.frames import measurement_frame

        return measurement_frame(self)
