"""Exception classes: every failure ddgraph reports names what failed and where."""


class DDGraphError(Exception):
    """Base class of every error ddgraph raises on purpose."""


class TraceError(DDGraphError):
    """Neither tracer could turn the model into a graph."""


class LabelError(DDGraphError):
    """The labeller met a graph it cannot label consistently (e.g. conflicting dead coordinates)."""


class RuleFileError(DDGraphError):
    """A rule file is malformed: the message names the file, the field and what was expected."""


class ExprError(DDGraphError):
    """A valuation expression failed to parse or refers to an unknown name."""


class NoRuleError(DDGraphError):
    """A primitive was asked for a rule it does not have."""


class ConfigError(DDGraphError):
    """The approach configuration (alpha, beta, regime, loss) is invalid for this model."""


class TargetError(DDGraphError):
    """A command-line TARGET could not be loaded."""


class ProbeError(DDGraphError):
    """The probe could not measure the model (e.g. no weight on the dead path)."""


class FitError(DDGraphError):
    """A slope could not be fitted (too few finite points)."""


class GaugeError(DDGraphError):
    """A gauge specification is invalid, overlaps another, or does not match the optimiser state."""


class PatternError(DDGraphError):
    """A label pattern is malformed or produced a primitive it does not declare."""


class PluginError(DDGraphError):
    """A plugin file cannot be imported or does not define primitives and patterns as expected."""


class MissingDependency(DDGraphError, ImportError):
    """An optional dependency is not installed: the message names the package and the extra."""


class OptionError(DDGraphError):
    """A command-line option or an API argument is invalid (a grid, a sample count, an output path):
    the message names the option and what to pass instead."""


class NothingToCheck(ProbeError):
    """The model has nothing the probe can measure (no weight, normaliser or residual stream)."""


class StochasticModelError(ProbeError):
    """The model draws random numbers in its forward pass (other than dropout, which the probe turns
    off on its own copy): the probe needs a deterministic map."""


class ProbeOptionError(OptionError, ProbeError):
    """A probe option (the t-grid, the sample count) is invalid; still a :class:`ProbeError` for old callers."""


class MonitorError(DDGraphError):
    """The training monitor cannot attach or read: a bad cadence, a module name that is not in the model,
    a log directory that cannot be written or read."""
