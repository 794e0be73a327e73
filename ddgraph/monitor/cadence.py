"""How often each tier of the monitor reads, and the thresholds of its flags (docs/MONITOR.md)."""
from __future__ import annotations

import attrs

from ddgraph.errors import MonitorError


def _positive_int(inst, attr, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise MonitorError(f"Cadence.{attr.name}={value!r}: expected a whole number >= 1")


def _above_one(inst, attr, value):
    if not isinstance(value, (int, float)) or not value > 1:
        raise MonitorError(f"Cadence.{attr.name}={value!r}: expected a ratio > 1")


def _fraction(inst, attr, value):
    if not isinstance(value, (int, float)) or not 0 < value < 1:
        raise MonitorError(f"Cadence.{attr.name}={value!r}: expected a number in (0, 1)")


@attrs.frozen
class Cadence:
    """Steps between readings and the flag thresholds. The defaults keep monitoring under 10% of a
    training step (benchmarks/monitor_overhead.py).

    Attributes
    ----------
    stream_every : steps between real-time readings (stream sigma_min, LayerNorm kernel); 1 reads every step.
    factor_every : steps between periodic readings (K-FAC spectra, flags).
    factor_batch_every : every how many training batches feeds the K-FAC accumulators (1: all of them).
    max_rows : at most this many rows (samples x positions) of a batch enter a factor or a stream reading.
    bottom : how many bottom eigenvalues of each factor are logged and tracked.
    window : readings the rate fits (rank collapse) take, spread over the last ``baseline_steps`` steps.
    warmup : readings a baseline needs before a flag may fire.
    baseline_steps : training steps the task-expansion baseline and the rank-collapse fit look back over
        (memory is bounded by ``baseline_steps / factor_every`` readings), and the steps a (layer, kind)
        that fired stays silent. In steps, not readings, so that the baseline
        covers the same stretch of training at any ``factor_every``: the largest of the last ``window``
        readings of a fine cadence spans a few steps of minibatch noise and is no baseline at all. The
        default is ``window`` readings at the default ``factor_every`` (1600 steps); it must fit inside the
        stationary phase before the change the flag should see.
    warmup_steps : training steps of history (besides ``warmup`` readings) a baseline needs before a flag may
        fire; the default is ``warmup`` readings at the default ``factor_every``.
    spike : task expansion fires when a layer's G top eigenvalue exceeds this multiple of the largest reading of
        its baseline.
    collapse : rank-collapse warning fires when a bottom eigenvalue (relative to lambda_max) has fallen by
        this factor across the window while the selection rule classifies it as decaying.
    drift : gauge drift fires when the gauge coordinates moved by more than this fraction of the gauged
        parameters' own displacement since the monitor attached.
    """

    stream_every: int = attrs.field(default=20, validator=_positive_int)
    factor_every: int = attrs.field(default=200, validator=_positive_int)
    factor_batch_every: int = attrs.field(default=20, validator=_positive_int)
    max_rows: int = attrs.field(default=128, validator=_positive_int)
    bottom: int = attrs.field(default=4, validator=_positive_int)
    window: int = attrs.field(default=8, validator=_positive_int)
    warmup: int = attrs.field(default=3, validator=_positive_int)
    baseline_steps: int = attrs.field(default=1600, validator=_positive_int)
    warmup_steps: int = attrs.field(default=600, validator=_positive_int)
    spike: float = attrs.field(default=5.0, validator=_above_one)
    collapse: float = attrs.field(default=10.0, validator=_above_one)
    drift: float = attrs.field(default=1e-2, validator=_fraction)

    def __attrs_post_init__(self):
        if self.window < 4:
            raise MonitorError(f"Cadence.window={self.window}: a rate fit needs at least 4 readings")
        if self.warmup >= self.window:
            raise MonitorError(f"Cadence.warmup={self.warmup} must be below window={self.window}")
        if self.warmup_steps >= self.baseline_steps:
            raise MonitorError(f"Cadence.warmup_steps={self.warmup_steps} must be below "
                               f"baseline_steps={self.baseline_steps}")
