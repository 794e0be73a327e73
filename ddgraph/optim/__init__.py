"""Gauge-equivariant optimisation: DDCAdam (paper §11.1, Algorithm 2) and its gauge specs."""
from ddgraph.optim.ddcadam import DDCAdam
from ddgraph.optim.discover import GaugeDroppedWarning
from ddgraph.optim.gauges import (
                                  CATALOGUE,
                                  CEShiftBias,
                                  CEShiftRowShift,
                                  ChainedReLURescaleGauge,
                                  Gauge,
                                  Layout,
                                  LNScaleGauge,
                                  ReLURescaleGauge,
)

__all__ = ["DDCAdam", "CATALOGUE", "CEShiftBias", "CEShiftRowShift", "ChainedReLURescaleGauge", "Gauge",
           "GaugeDroppedWarning", "LNScaleGauge", "Layout", "ReLURescaleGauge"]
