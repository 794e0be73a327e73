"""The core vocabulary and the engine: primitives, the valuation expression language, rule files,
the approach, the graph container and the min-plus sweep. Nothing here imports torch."""
