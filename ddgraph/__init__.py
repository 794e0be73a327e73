"""ddgraph: read the singular geometry of a PyTorch model off its architecture."""
import logging

__version__ = "0.1.0"
# Library messages go through logging ("ddgraph.*" loggers); the application decides where they go.
logging.getLogger(__name__).addHandler(logging.NullHandler())

from ddgraph.api import check, label, predict, probe, trace  # noqa: E402
from ddgraph.compare.checks import diff  # noqa: E402
from ddgraph.core.approach import Approach  # noqa: E402
from ddgraph.core.graph import Graph  # noqa: E402
from ddgraph.core.rules import RuleSet  # noqa: E402

__all__ = ["trace", "label", "predict", "probe", "diff", "check", "Approach", "Graph", "RuleSet", "__version__"]
