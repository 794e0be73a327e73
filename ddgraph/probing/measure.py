"""The probe: sweep t at the canonical configuration and measure every predicted observable.

For each t of the grid the canonical fp64 copy is run chunk by chunk over one fixed sample (common
random numbers: the same inputs, noise and label uniforms at every t). A forward pass records the
K-FAC input rows ``a`` of every weight node; one backward pass (no weight gradients: the parameters
do not require grad) gives the output gradients ``g``. ``A = E[a a^T]`` and ``G = E[g g^T]`` are
accumulated as means over rows (samples x positions), so memory does not grow with the sample count.
"""
from __future__ import annotations

import contextlib
import math
import time

import attrs
import networkx as nx
import numpy as np
import torch

from ddgraph._optional import ProgressBar
from ddgraph.core.approach import Approach
from ddgraph.core.engine import VALUATION
from ddgraph.core.engine import run as run_engine
from ddgraph.core.graph import PRIMITIVE, ROLES, Graph
from ddgraph.core.rules import RuleSet
from ddgraph.errors import NothingToCheck, ProbeError
from ddgraph.errors import ProbeOptionError as OptionError
from ddgraph.frontend.tracing import copy_quietly
from ddgraph.probing import distributed
from ddgraph.probing.canonical import Canonical, canonicalise
from ddgraph.probing.data import Sampler, from_user, gaussian_like
from ddgraph.probing.observables import bottom_overlap, from_matrix, kernel_check, root_kernel, stream_bottom
from ddgraph.probing.residual import ExactResidual
from ddgraph.probing.results import Measurement, SiteSeries
from ddgraph.probing.sites import WeightSite, bulk_channels, channel_axis, deepest_channels, stream_root, weight_sites
from ddgraph.probing.symmetric import add_gram, mirror
from ddgraph.probing.window import Expected, first_segment, next_point, settled


def check_grid(grid) -> tuple[float, ...] | None:
    """The grid as distinct t values in (0, 1), largest first (``None``: an adaptive sweep).

    Raises
    ------
    OptionError
        When a value is not a number in (0, 1), a value repeats (a slope fit needs distinct t: repeated
        points give an infinite standard error and verdicts that mean nothing), or fewer than 3 remain.
    """
    if grid is None:
        return None
    try:
        values = [float(t) for t in grid]
    except (TypeError, ValueError):
        raise OptionError(f"grid {grid!r}: every t must be a number (e.g. 1e-2,1e-3,1e-4)") from None
    bad = [t for t in values if not (0 < t < 1)]
    if bad:
        raise OptionError(f"grid: t must lie in (0, 1), got {', '.join(f'{t:g}' for t in bad)}; "
                          "pass values such as geom:1e-2:1e-4:7")
    dupes = sorted({t for t in values if values.count(t) > 1}, reverse=True)
    if dupes:
        raise OptionError(f"grid: repeated t value(s) {', '.join(f'{t:g}' for t in dupes)}; a slope needs "
                          "distinct points (e.g. geom:1e-2:1e-4:7)")
    if len(values) < 3:
        raise OptionError(f"grid: a slope fit needs at least 3 values of t in (0, 1), got {len(values)}")
    return tuple(sorted(values, reverse=True))


def check_samples(n_samples, chunk: int = 8192) -> None:
    """Refuse a sample count or chunk size below 1 (no rows: no K-FAC factor)."""
    if not isinstance(n_samples, int) or isinstance(n_samples, bool) or n_samples < 1:
        raise OptionError(f"samples: need a whole number of samples >= 1, got {n_samples!r} (default 20000)")
    if not isinstance(chunk, int) or chunk < 1:
        raise OptionError(f"chunk: need a whole number >= 1, got {chunk!r}")


def _first(out):
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        return _first(next(iter(out.values())))
    if isinstance(out, (tuple, list)):
        return _first(out[0])
    raise ProbeError(f"the model returned {type(out).__name__}; the probe needs a tensor output")


class _Recorder(torch.fx.Interpreter):
    """Runs the canonical copy, accumulating A at weight nodes and keeping outputs for G."""

    def __init__(self, gm, sites: dict[str, WeightSite], watch: dict[str, int], acc):
        super().__init__(gm)
        self.sites, self.watch, self.acc = sites, watch, acc
        self.nodes = {n.name: n for n in gm.graph.nodes}
        self.outputs: dict[str, torch.Tensor] = {}
        self.watched: dict[str, torch.Tensor] = {}

    def run_node(self, n):
        out = super().run_node(n)
        site = self.sites.get(n.name)
        if site is not None:
            x = self.env[self.nodes[site.x_node]]
            self.acc.add_a(site, x)
            if not out.requires_grad:  # integer inputs: start the gradient tape here
                out = out.detach().requires_grad_() + 0.0
            self.outputs[n.name] = out
        if n.name in self.watch:
            self.watched[n.name] = out.detach()
        return out

    def first_non_finite(self, *inputs) -> str | None:
        """The first node (graph order) whose output holds a NaN, else the first holding an inf.

        The interpreter frees values after their last use, so the chunk is run again on ``inputs``
        (without side effects) and every floating output is looked at as it is made.
        """
        return _Locate(self.module).locate(*inputs)


class _Locate(torch.fx.Interpreter):
    def locate(self, *inputs) -> str | None:
        self.nan = self.inf = None
        with torch.no_grad():
            self.run(*[x.detach() for x in inputs])
        return self.nan or self.inf

    def run_node(self, n):
        out = super().run_node(n)
        if self.nan is None:
            for v in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                    if bool(torch.isnan(v).any()):
                        self.nan = n.name
                    elif self.inf is None:
                        self.inf = n.name
        return out


@attrs.define
class _Factor:
    """One K-FAC factor (A or G) of every site, summed over the rows of one t-point.

    Blocks that cannot move with t are carried from the first t instead of recomputed: a whole
    factor (``constant`` sites), or everything but the columns of the dead coordinates (``partial``
    sites, ``{site: moving columns}``). The last t recomputes everything to verify the carry.
    """

    sums: dict = attrs.Factory(dict)
    rows: dict = attrs.Factory(dict)
    constant: frozenset = frozenset()
    partial: dict = attrs.Factory(dict)
    base: dict = attrs.Factory(dict)  # site -> full sum at the first t (for partial sites)
    cols: dict = attrs.Factory(dict)  # site -> sum of rows^T rows[:, moving] at this t
    half: set = attrs.Factory(set)  # sites whose sum holds one triangle so far (see :meth:`close`)

    def add(self, key: str, rows: torch.Tensor) -> None:
        if key in self.constant:
            return
        if key in self.partial and key in self.base:
            moving = self.partial[key].to(rows.device)
            cols = rows.T @ rows.index_select(1, moving)  # a gather: far faster than indexing
            self.cols[key] = self.cols[key] + cols if key in self.cols else cols
        else:  # one triangle, in place: half the flops, no temporary d x d matrix per chunk
            self.sums[key] = add_gram(self.sums.get(key), rows)
            self.half.add(key)
        self.rows[key] = self.rows.get(key, 0) + rows.shape[0]

    def close(self) -> None:
        """End of a pass over the chunks: fill in the other triangle of every sum accumulated by halves."""
        for key in self.half:
            mirror(self.sums[key])
        self.half.clear()

    def add_diagonal(self, key: str, counts: torch.Tensor, n: int) -> None:
        if key not in self.constant:
            self.sums[key] = self.sums[key] + counts if key in self.sums else counts
            self.rows[key] = self.rows.get(key, 0) + n

    def next(self, constant: frozenset, partial: dict | None) -> "_Factor":
        """Accumulators for the next t; ``partial=None`` recomputes every partial site in full."""
        base = {k: self.base.get(k, self.sums.get(k)) for k in (set(partial or ()) | set(self.base))
                if k in self.base or k in self.sums}
        return _Factor(sums={k: self.sums[k] for k in constant if k in self.sums},
                       rows={k: self.rows[k] for k in constant if k in self.rows},
                       constant=constant, partial=dict(partial or {}), base=base)

    def means(self) -> dict:
        """Every site's factor (the carried block with its moving rows and columns replaced) / rows."""
        out = {}
        for key, n in self.rows.items():
            if key in self.cols:
                m = self.base[key].clone()
                m[:, self.partial[key]] = self.cols[key]
                m[self.partial[key], :] = self.cols[key].T
                self.sums[key] = m
            out[key] = self.sums[key] / n
        return out


@attrs.define
class _Accumulators:
    a: _Factor = attrs.Factory(_Factor)
    g: _Factor = attrs.Factory(_Factor)
    second: dict = attrs.Factory(dict)  # watched node -> (sum x x^T, sum x, rows)
    open_second: set = attrs.Factory(set)  # watched nodes whose sum x x^T holds one triangle so far

    def add_a(self, site: WeightSite, x: torch.Tensor) -> None:
        if site.kind == "embedding":
            counts = torch.bincount(x.reshape(-1), minlength=site.vocab).double()
            self.a.add_diagonal(site.node, counts, x.numel())
        else:
            self.a.add(site.node, site.a_rows(x.detach()))

    def add_g(self, site: WeightSite, grad: torch.Tensor | None, like: torch.Tensor) -> None:
        self.g.add(site.node, site.g_rows(grad if grad is not None else torch.zeros_like(like)))

    def add_second(self, name: str, x: torch.Tensor) -> None:
        rows = x.reshape(-1, x.shape[-1])
        s, m, n = self.second.get(name, (None, 0.0, 0))
        self.second[name] = (add_gram(s, rows), m + rows.sum(0), n + rows.shape[0])
        self.open_second.add(name)

    def close(self) -> None:
        """End of a pass over the chunks: every Gram sum made whole (:func:`ddgraph.probing.symmetric.mirror`)."""
        self.a.close()
        self.g.close()
        for name in self.open_second:
            mirror(self.second[name][0])
        self.open_second.clear()


class _Targets:
    """What the loss needs besides the model output, drawn once per chunk (common random numbers).

    MSE: the target ``f0 + noise * eps`` (noisy) or ``f0`` (noise-free), with ``f0`` the model at t = 0.
    CE: label uniforms (expected Fisher: labels drawn from the current model with them) or fixed
    labels drawn once from the model at t = 0 (empirical Fisher). Cached when they fit in memory.
    """

    def __init__(self, canon: Canonical, data: Sampler, approach: Approach, noise: float,
                 cache_bytes: int):
        self.at_zero = copy_quietly(canon)
        self.at_zero.set_t(0.0)
        self.data, self.approach, self.noise, self.cache_bytes = data, approach, noise, cache_bytes
        self.cache: dict = {}
        self.bytes = 0

    def __call__(self, k: int, inputs) -> torch.Tensor:
        if k in self.cache:
            return self.cache[k]
        with torch.no_grad():
            f0 = _first(self.at_zero.gm(*[x.detach() for x in inputs]))
        gen = self.data.generator(k, 1)
        ap = self.approach
        if ap.loss == "mse":
            target = f0 + self.noise * torch.randn(f0.shape, generator=gen, dtype=f0.dtype).to(f0.device) \
                if ap.regime == "noisy" else f0
        else:
            u = torch.rand(f0.shape[:-1] + (1,), generator=gen, dtype=f0.dtype).to(f0.device)
            target = _draw(torch.softmax(f0, -1), u) if ap.fisher == "empirical" else u
        if self.bytes + target.numel() * target.element_size() <= self.cache_bytes:
            self.cache[k] = target
            self.bytes += target.numel() * target.element_size()
        return target


def _draw(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Labels drawn from probabilities ``p`` with uniforms ``u`` (inverse CDF)."""
    return torch.searchsorted(p.cumsum(-1), u).clamp_max(p.shape[-1] - 1)


def _loss_gradient(f: torch.Tensor, target: torch.Tensor, approach: Approach) -> torch.Tensor:
    """The loss gradient at the model output: ``f - y`` (MSE) or ``softmax(f) - onehot(y)`` (CE)."""
    if approach.loss == "mse":
        return f - target
    p = torch.softmax(f, dim=-1)
    labels = target if approach.fisher == "empirical" else _draw(p, target)
    return p - torch.zeros_like(p).scatter_(-1, labels, 1.0)


def probe(graph: Graph, *, approach: Approach, grid=None, n_samples: int = 20000, sampler=None,
          seed: int = 0, chunk: int = 8192, noise: float = 1.0, progress: bool = True, ln_directions=None,
          cache_mb: float = 256, rules: RuleSet | None = None, expected: dict | None = None, device=None,
          factor_budget: float | None = None) -> Measurement:
    """Measure a labelled graph's K-FAC observables along the approach to its canonical configuration.

    Parameters
    ----------
    graph : a labelled :class:`~ddgraph.core.graph.Graph` (:func:`ddgraph.probe` traces and labels a model).
    approach : the :class:`~ddgraph.core.approach.Approach`.
    grid : t values pinning a fixed window; ``None`` (the default) sweeps adaptively
        (:mod:`ddgraph.probing.window`): 1e-2 to 1e-4 first, then smaller t while a series still moves.
    n_samples : sample count; processed in chunks of ``chunk`` rows.
    sampler : ``fn(n, generator) -> inputs`` or a tensor data set; Gaussian by default.
    noise : the noise scale of the MSE noisy regime.
    ln_directions : ``{ln_node: predicted kernel direction}`` to check (Prop 63).
    cache_mb : memory for keeping each chunk's inputs and targets between t-points (a speed-up);
        beyond it chunks are redrawn from their seeds, so memory stops growing with ``n_samples``.
    rules : the rule set whose valuations tell which K-FAC blocks cannot move with t (default: the
        built-in rules over the graph's primitives).
    expected : ``{(node, factor, direction) or ("stream", node): Expected}``, the series that drive an
        adaptive sweep and what they are predicted to do (default: every dead entry, no prediction).
    device : where the fp64 copy runs and the factors accumulate (default: where the model is).
    factor_budget : MB of K-FAC factor sums one process may hold: each rank of the process group then owns
        the factors of a subset of layers (:mod:`ddgraph.probing.distributed`); ``None``: every rank holds all.

    Inside an initialised ``torch.distributed`` process group the chunks are shared over the ranks and
    the factor sums reduced; every rank returns the same measurement, measured on the same sample as
    one process.

    Returns
    -------
    Measurement
    """
    if not graph.labelled or graph.n_dead != approach.n_dead:
        raise ProbeError(f"the graph must be labelled with n_dead={approach.n_dead} first (ddgraph.label)")
    grid = check_grid(grid)
    check_samples(n_samples, chunk)
    if not all(VALUATION in graph[n] for n in graph.nodes_exposing("kfac")):
        run_engine(graph, rules or RuleSet.load(primitives=graph.primitives), approach)  # valuations tell which blocks cannot move with t
    canon = canonicalise(graph, approach)
    ranks = distributed.current(device if device is not None else _model_device(graph))
    canon.gm.to(ranks.device)
    ranks.sync(canon.gm)
    sites, skipped = weight_sites(graph)
    site_map = {s.node: s for s in sites}
    ln_nodes = sorted(set(graph.nodes_exposing("kernel")) | set(graph.nodes_exposing("no_kernel")),
                      key=graph.order().index)
    stream_nodes = graph.nodes_exposing("stream")
    if not sites and not ln_nodes and not stream_nodes:
        raise NothingToCheck(f"nothing to check: {graph.model_name} has no weight, normaliser or residual stream "
                             "the probe can measure" + (f" ({'; '.join(skipped)})" if skipped else "")
                             + "; a model needs at least one weight (nn.Linear, nn.Conv*, nn.Embedding, ...) on its "
                             "output path")
    vocab = next((s.vocab for s in sites if s.kind == "embedding"), None)
    order = [n.target for n in graph.gm.graph.nodes if n.op == "placeholder"]
    make = from_user(sampler) if sampler is not None else gaussian_like(
        graph.example_inputs, vocab, order, token_ids=_token_ids(graph, sites))
    data = Sampler(make, n_samples, chunk, seed, cache_bytes=int(cache_mb * 2**19), device=ranks.device)
    targets = _Targets(canon, data, approach, noise, cache_bytes=int(cache_mb * 2**19))
    exact = ExactResidual(canon, _first) if approach.loss == "mse" and approach.regime == "noise-free" else None
    weights = {s.node: SiteSeries(s.node, s.param, s.kind) for s in sites}
    ln = {n: {"ratio": [], "rayleigh": [], "cosine": [], "node": n, "module": graph[n].get("module")} for n in ln_nodes}
    streams = {n: [] for n in stream_nodes}
    nan: dict[float, str] = {}
    adaptive = grid is None
    points = list(first_segment(_rates(expected)) if adaptive else grid)
    verify = len(points) - 1  # carried blocks are recomputed in full at the end of the first points and compared
    n_chunks = sum(1 for _ in data.chunks())
    distributed.check_chunks(n_chunks, ranks, chunk, n_samples)
    ranks = distributed.plan(sites, ranks, distributed.factor_sizes(graph, sites), factor_budget)
    n_chunks = sum(1 for k, _ in data.chunks() if ranks.mine(k)) * len(ranks.rounds)
    bar = ProgressBar(len(points) * n_chunks, f"probe {graph.model_name}", unit="chunk",
                      enabled=progress and ranks.lead)
    watch = {n: channel_axis(graph[n]) for n in [*ln_nodes, *stream_nodes]}  # node -> its channel axis
    deepest = {n: deepest_channels(graph[n], watch[n]) for n in stream_nodes}
    # a stream with no deeper dead class is also read against the tensor its skips start from (THEORY §5.3)
    roots = {n: r for n in stream_nodes if not deepest[n] and (r := stream_root(graph, n)) is not None}
    for r in roots.values():
        watch.setdefault(r, channel_axis(graph[r]))
    # a normaliser claimed to have no kernel of its own is read on its bulk channels (the dead ones
    # vanish with t), beside its input: a kernel the input already has is inherited, not made
    kernel_free = {}
    for n in graph.nodes_exposing("no_kernel"):
        x = graph[n][ROLES][0][1]
        watch.setdefault(x, channel_axis(graph[x]))
        kernel_free[n] = (bulk_channels(graph[n], watch[n]), x, bulk_channels(graph[x], watch[x]))
    a_constant = _t_independent_inputs(graph, sites)
    a_partial = {} if ranks.owners else _moving_columns(graph, sites, a_constant)  # owners: no column carries
    g_partial: dict = {}
    per_t, cpu_t, moved = [], [], []
    notes = list(canon.notes)
    acc = _Accumulators()
    with _flush_denormals():  # values under 2.2e-308 are under the floor anyway, and 100x slower
        i = 0
        while i < len(points):
            t = points[i]
            t_start, c_start = time.perf_counter(), time.process_time()
            canon.set_t(t)
            if exact is not None:
                exact.set_t(t)
            check = i == verify
            before = None if ranks.owners else acc  # kept only to find unmoved G blocks at i == 1
            if i:
                acc = _Accumulators(a=acc.a.next(a_constant, None if check else a_partial),
                                    g=acc.g.next(frozenset(), None if check or i < 2 else g_partial))
            found: dict = {}
            for r, keys in enumerate(ranks.rounds):  # one pass unless factor ownership splits the layers
                now = site_map if keys is None else {n: s for n, s in site_map.items() if n in keys}
                for k, size in data.chunks():
                    if not ranks.mine(k):
                        continue
                    where = _run_chunk(canon, data, k, size, now, watch if r == 0 else {}, acc,
                                       targets, approach, locate=t not in found, exact=exact,
                                       roots=roots if r == 0 else {})
                    if where and t not in found:
                        found[t] = (k, where)
                    bar.update(1)
                acc.close()
                ranks.reduce(acc, keys, second=r == 0)
            nan.update(ranks.first_nan(found))
            if i == 1 and not ranks.owners:  # G blocks equal to the last bit at two t-points are carried
                g_partial = ranks.decide(_unmoved_bulk(before.g.sums, acc.g.sums, sites))  # verified at `verify`
            if check and i:
                moved = _moved(acc.a, a_partial) + _moved(acc.g, g_partial)
            memos = _finish(acc, [s for s in sites if ranks.owns(s.parent or s.node)], weights, graph.n_dead)
            ranks.share(weights)
            with _one_thread():
                _finish_sites(acc, ln, streams, ln_directions or {}, kernel_free, deepest, roots)
                if i == 0:  # a root without an exact kernel at the first t has none below: no branch moments
                    roots = {n: r for n, r in roots.items() if root_kernel(acc.second[r][0] / acc.second[r][2])}
            per_t.append(time.perf_counter() - t_start)
            cpu_t.append(time.process_time() - c_start)
            i += 1
            if adaptive and i == len(points) and not ranks.decide(_all_settled(points, weights, streams, expected)):
                nxt = next_point(points)
                if nxt is not None:
                    points.append(nxt)
                    bar.grow(n_chunks)
    with _one_thread():
        last: list = []
        _read_last(acc, [s for s in sites if ranks.owns(s.parent or s.node)], weights, graph.n_dead, last, memos)
    notes += ranks.share(weights, last)
    bar.close()
    notes += exact.notes if exact is not None else []
    elapsed = float(np.median(per_t[1:]))
    return Measurement(model=graph.model_name, approach=approach, grid=tuple(points), n_samples=n_samples,
                       weights=weights, ln=ln, streams=streams, skipped=skipped, nan=nan,
                       seconds_per_t=elapsed, moved=moved, cpu_seconds_per_t=float(np.median(cpu_t[1:])),
                       notes=notes, adaptive=adaptive, ranks=ranks.world, factor_mb=ranks.peak_mb())


def _model_device(graph) -> torch.device:
    p = next(graph.gm.parameters(), None)
    return p.device if p is not None and p.device.type != "meta" else torch.device("cpu")


def _token_ids(graph, sites) -> set[int]:
    """Positions of the inputs an embedding looks up (through views): token ids, drawn at random;
    other integer inputs (an attention mask) are held at their example values."""
    placeholders = [n.name for n in graph.gm.graph.nodes if n.op == "placeholder"]
    looked_up = set()
    for s in sites:
        if s.kind == "embedding":
            looked_up |= nx.ancestors(graph.nx, s.x_node) | {s.x_node}
    return {i for i, p in enumerate(placeholders) if p in looked_up}


def _moving_columns(graph, sites, constant) -> dict:
    """Sites whose input's bulk provably does not move with t (bulk deviation order inf in the
    prediction's valuations): only the columns of their dead coordinates need recomputing."""
    out = {}
    for s in sites:
        val = graph[s.x_node].get(VALUATION)
        if s.node in constant or s.kind not in ("linear", "matmul") or val is None or s.parent:
            continue
        bulk = val.d.get(0)
        if bulk is None or bulk[0] != math.inf:
            continue
        cols = _dead_columns(s.dead_in)
        if cols.numel():
            out[s.node] = cols
    return out


def _dead_columns(idx_by_class: dict) -> torch.Tensor:
    return torch.tensor(sorted({i for ids in idx_by_class.values() for i in ids}), dtype=torch.long)


def _unmoved_bulk(first: dict, second: dict, sites) -> dict:
    """Sites whose G agrees to the last bit off the dead columns at two t-points: only the dead
    columns are recomputed from then on (the last t checks the rest did not move after all)."""
    out = {}
    for s in sites:
        if s.node not in first or s.node not in second or s.kind == "embedding":
            continue
        cols = _dead_columns(s.dead_out)
        if not cols.numel():
            continue
        keep = torch.ones(first[s.node].shape[0], dtype=torch.bool)
        keep[cols] = False
        if torch.equal(first[s.node][keep][:, keep], second[s.node][keep][:, keep]):
            out[s.node] = cols
    return out


def _moved(factor: "_Factor", partial: dict) -> list[str]:
    """At the last t every factor is recomputed in full: a carried block must not have moved."""
    bad = []
    for key, idx in partial.items():
        if key not in factor.base or key not in factor.sums:
            continue
        keep = torch.ones(factor.base[key].shape[0], dtype=torch.bool)
        keep[idx] = False
        old, new = factor.base[key][keep][:, keep], factor.sums[key][keep][:, keep]
        if not old.numel():
            continue  # every coordinate is dead (a 1-wide head): nothing was carried
        if not (torch.isfinite(old).all() and torch.isfinite(new).all()):
            continue  # non-finite sweeps are reported as such, not as moved blocks
        if not torch.allclose(old, new, rtol=1e-10, atol=1e-12 * float(old.abs().max())):
            bad.append(key)
    return bad


def _t_independent_inputs(graph, sites) -> frozenset:
    """Weight sites whose input has no parameter moving with t upstream: their A factor is the same at
    every t. A parameter moves when its primitive puts an approach exponent on it."""
    moving = {n for n in graph.order()
              if any(s.dead == "approach" for s in graph.primitives[graph[n][PRIMITIVE]].canonical)}
    return frozenset(s.node for s in sites if not (nx.ancestors(graph.nx, s.x_node) | {s.x_node}) & moving)


def _run_chunk(canon, data, k, size, site_map, watch, acc, targets, approach, locate=True,
               exact: ExactResidual | None = None, roots: dict | None = None) -> str | None:
    inputs = [x.detach().requires_grad_() if x.is_floating_point() else x for x in data.inputs(k, size)]
    rec = _Recorder(canon.gm, site_map, watch, acc)
    f = _first(rec.run(*inputs))
    bad = None if _all_finite(f) else ((rec.first_non_finite(*inputs) if locate else None) or "output")
    if exact is not None:  # noise-free MSE: the residual f_t - f_0 without cancellation
        g_out = exact(inputs, f.detach(), targets(k, inputs))
    else:
        g_out = _loss_gradient(f.detach(), targets(k, inputs), approach)
    names = list(rec.outputs)
    outs = [rec.outputs[n] for n in names]
    grads = torch.autograd.grad(f, outs, grad_outputs=g_out, allow_unused=True) if outs else []
    for name, out, grad in zip(names, outs, grads):
        acc.add_g(site_map[name], grad, out)
    for name, val in rec.watched.items():
        acc.add_second(name, val.movedim(watch[name], -1))
    for name, root in (roots or {}).items():  # the branches' sum, free of the root's order-1 entries
        acc.add_second(_branches(name), (rec.watched[name] - rec.watched[root]).movedim(watch[name], -1))
    return bad


def _branches(stream: str) -> str:
    """The key of a stream site's branch-sum moment among the watched ones."""
    return f"{stream} branches"


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry is finite: one sum (a NaN or inf entry makes it non-finite) settles the usual
    case; only a non-finite sum (which finite entries can also reach, by overflow) looks at every entry."""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


@contextlib.contextmanager
def _flush_denormals():
    """Subnormal numbers read as zero while the sweep runs (torch's default, off, is restored after)."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextlib.contextmanager
def _one_thread():
    """Small eigenproblems run fastest on one thread (no OpenMP hand-offs), then restore the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _finish(acc, sites, weights, n_dead) -> dict:
    """Read every site's observables off this t-point's factors (one thread: small eigenproblems); returns
    each matrix's spectrum ends, for :func:`_read_last`."""
    with _one_thread():
        means = {"A": acc.a.means(), "G": acc.g.means()}
        memos: dict = {}  # per matrix: its spectrum and bulk factorisation, shared by classes and slices
        for s in sites:
            series = weights[s.node].series
            for factor, dead in (("A", s.dead_in), ("G", s.dead_out)):
                key = (factor, s.parent or s.node)
                m = means[factor][key[1]]  # a fused weight's slice reads its parent's factors
                all_dead = {i for idx in dead.values() for i in idx}
                for j in range(1, n_dead + 1):
                    obs = from_matrix(m, dead.get(j, []), all_dead, memos.setdefault(key, {}))
                    for name, value in obs.items():
                        series.setdefault(factor, {}).setdefault(name, {}).setdefault(j, []).append(value)
    # the spectra only: the bulks' Cholesky factors are as large as the factors themselves
    return {key: {k: v for k, v in memo.items() if k in ("finite", "spectrum")} for key, memo in memos.items()}


def _read_last(acc, sites, weights, n_dead, notes: list, memos: dict) -> None:
    """What is read at the smallest t only: the bottom-eigenvector overlaps, and a note per factor with no bulk;
    ``memos`` are the last t-point's, from :func:`_finish` (its spectra carry their bottom eigenvectors)."""
    means = {"A": acc.a.means(), "G": acc.g.means()}
    for s in sites:
        for factor, dead in (("A", s.dead_in), ("G", s.dead_out)):
            key = (factor, s.parent or s.node)
            m = means[factor][key[1]]
            all_dead = {i for idx in dead.values() for i in idx}
            if m.shape[0] == len(all_dead) and all_dead:
                notes.append(f"{s.param} {factor}: all {m.shape[0]} coordinate(s) are dead (no bulk): there is no "
                             "Schur complement against a bulk and no active lambda_min; the Schur and lambda_min "
                             "columns read the dead block itself")
            for j in range(1, n_dead + 1):
                weights[s.node].overlap.setdefault(factor, {})[j] = bottom_overlap(m, dead.get(j, []),
                                                                               memos.setdefault(key, {}))


def _rates(expected) -> list:
    """Every finite predicted rate (a bracket's upper end) among the series that drive the sweep."""
    out = []
    for e in (expected or {}).values():
        p = e.predicted[1] if isinstance(e.predicted, tuple) else e.predicted
        if p is not None and math.isfinite(p):
            out.append(p)
    return out


def _all_settled(points, weights, streams, expected) -> bool:
    """Whether every series that drives the sweep needs no smaller t (every dead entry when nothing
    was predicted)."""
    if expected is None:
        expected = {(n, f, j): Expected() for n, w in weights.items()
                    for f, obs in w.series.items() for j in obs["dd"]}
    for key, e in expected.items():
        if key[0] == "stream":
            values = streams.get(key[1])
        else:
            node, factor, j = key
            w = weights.get(node)
            values = w.series[factor]["dd"][j] if w is not None and factor in w.series else None
        if values and not settled(points[:len(values)], values, e):
            return False
    return True


def _bulk_ratio(stats, keep) -> float:
    """lambda_min / trace of a watched node's covariance on the channels ``keep``."""
    if stats is None:
        return math.nan
    s, total, n = stats
    mean = total / n
    cov = (s / n - torch.outer(mean, mean))[keep][:, keep]
    evals = torch.linalg.eigvalsh(cov)
    return float(evals[0] / evals.sum()) if bool(torch.isfinite(cov).all()) else math.nan


def _stream_value(m: torch.Tensor, deepest: list[int], rooted=None) -> float:
    """sigma_min^2 of a residual stream from its second moment ``m``: the smallest eigenvalue of the
    Schur complement of its deepest dead channels against the other active ones when it has any (equal
    to the active lambda_min to leading order, and read to the last digit where lambda_min sits at the
    fp64 floor of the bulk, as a weight row's Schur complement is); else, when ``rooted`` (the moments of
    its root and of its branches' sum) shows the root has an exact kernel, the Schur complement of that
    kernel (:func:`stream_bottom`); else the active lambda_min."""
    dead = [i for i in deepest if m[i, i] > 0]
    if not dead and rooted is not None:
        value = stream_bottom(m, *rooted)
        if value is not None:
            return value
    return from_matrix(m, dead, set(dead))["schur" if dead else "lmin"]


def _finish_sites(acc, ln, streams, directions, kernel_free, deepest, roots) -> None:
    for name, (s, total, n) in acc.second.items():
        if not bool(torch.isfinite(s).all()):
            if name in streams:
                streams[name].append(math.nan)
            if name in ln:
                for key in ("ratio", "rayleigh", "cosine"):
                    ln[name][key].append(math.nan)
            continue
        if name in streams:
            rooted = None
            if name in roots:
                (r, _, nr), (b, _, nb) = acc.second[roots[name]], acc.second[_branches(name)]
                rooted = (r / nr, b / nb)
            streams[name].append(_stream_value(s / n, deepest.get(name, []), rooted))
        if name in ln:
            mean = total / n
            cov = s / n - torch.outer(mean, mean)
            u = directions.get(name)
            if name in kernel_free:
                keep, x, keep_x = kernel_free[name]
                cov = cov[keep][:, keep]
                u = None
                ln[name].setdefault("input_ratio", []).append(_bulk_ratio(acc.second.get(x), keep_x))
            if u is None:
                u = cov.new_ones(cov.shape[0])  # no prediction: report against the mean direction
            chk = kernel_check(cov, torch.as_tensor(u, dtype=cov.dtype))
            for key in ("ratio", "rayleigh", "cosine"):
                ln[name][key].append(chk[key])
