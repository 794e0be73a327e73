"""Attention: fused scaled-dot-product attention, softmax over channels or tokens, and products of
two activations (Q K^T contracts channels, A V mixes tokens), settled once dead coordinates are placed."""
from __future__ import annotations

import networkx as nx
import torch

from ddgraph.core.graph import DEP, OPERANDS
from ddgraph.core.primitives import Primitive
from ddgraph.frontend.channels import integer_valued, softmax_dim, varies
from ddgraph.frontend.patterns.base import Match, const_arg, pattern


@pattern("attention", family="attention")
def sdpa(g, n) -> Match | None:
    d = g.nodes[n]
    if d["op"] != "sdpa" or d[DEP] != "input":
        return None
    fx = d["fx"]
    q, k, v = (a.name for a in fx.args[:3])
    mask = const_arg(fx, "attn_mask", 3)
    extra = [m.name for m in [mask] if isinstance(m, torch.fx.Node) and g.nodes[m.name][DEP] == "input"]
    if extra and not _mask_of_ids(g, extra[0]):
        return None  # a mask computed from the activations is outside the attention rule
    return Match("attention", [("q", q), ("k", k), ("v", v)],
                 attrs=dict(gqa=bool(const_arg(fx, "enable_gqa", 7, False))))


def _mask_of_ids(g, m) -> bool:
    """An attention mask built from integer inputs only (a tokenizer's padding mask): a constant shift
    of the scores, as far as the dead coordinate is concerned (no activation or weight reaches it)."""
    above = nx.ancestors(g, m) | {m}
    return all(g.nodes[a][DEP] not in ("param", "mixed") for a in above) and all(
        integer_valued(g.nodes[a]) for a in above if g.nodes[a]["fx"].op == "placeholder")


def _settle_softmax(d, masks, roles) -> str:
    x = masks[roles["x"]]
    return "softmax_channels" if varies(x, softmax_dim(d["fx"], x.dim())) else "softmax_tokens"


def _settle_matmul(d, masks, roles) -> str:
    a, b = masks[roles["a"]], masks[roles["b"]]
    return "contraction" if varies(a, -1) or (b.dim() > 1 and varies(b, -2)) else "token_mix"


PROVISIONAL = (
    Primitive("softmax?", ("x",), "provisional", "a softmax, over channels or over tokens once masks are known",
              settle=_settle_softmax),
    Primitive("matmul?", ("a", "b"), "provisional",
              "a product of two activations: a channel contraction or a token mixing once masks are known",
              settle=_settle_matmul),
)


@pattern("softmax?", "matmul?", family="attention")
def softmax_or_product(g, n) -> Match | None:
    """Ops whose label depends on which axes carry channels; settled when dead coordinates are placed."""
    d = g.nodes[n]
    if d[DEP] != "input":
        return None
    op, ops = d["op"], d[OPERANDS]
    acts = [o for o in ops if g.nodes[o][DEP] == "input"]
    if op in ("softmax", "log_softmax") and len(acts) == 1:
        return Match("softmax?", [("x", acts[0])])
    if op in ("matmul", "bmm", "mm") and len(acts) == 2 and len(ops) == 2:
        return Match("matmul?", [("a", ops[0]), ("b", ops[1])])
    return None
