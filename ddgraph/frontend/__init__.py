"""From a model to a labelled graph: tracing, canonical op names, label patterns, plugins and the
placement of dead coordinates."""
