"""A ddgraph plugin: the ``channel_scale`` primitive and the pattern that recognises its op.

The primitive is a per-channel learned scale ``y = scale * x``. It declares everything ddgraph's
stages need: its operand role, that its dead coordinate passes element-wise, an approach exponent
of its own (``rho``: the dead entry of ``scale`` follows ``t**rho``, 1 unless ``--exponent
rho:PARAM=value`` says otherwise), and so how the probe canonicalises it. Its valuation rule lives
in ``rules/channel_scale.toml``.
"""
from ddgraph.extend import Exponent, Match, ParamSpec, Primitive, param_of, pattern

PRIMITIVES = [
    Primitive("channel_scale", ("x",), "elementwise",
              "a per-channel learned scale x * s (the ddgraph_example::channel_scale custom op)",
              approach=(Exponent("rho", "scale_param", default=1.0, noun="channel scales"),),
              canonical=(ParamSpec("scale_param", layout="vector", dead="approach", exponent="rho"),),
              colour="#c8b6ff"),
]


@pattern("channel_scale", family="user")
def channel_scale(g, n):
    d = g.nodes[n]
    if "ddgraph_example.channel_scale" not in d["target"] or d["dep"] != "input":
        return None
    x, scale = d["fx"].args[:2]
    return Match("channel_scale", [("x", x.name)], attrs=dict(scale_param=param_of(g, scale)))


PATTERNS = [channel_scale]
