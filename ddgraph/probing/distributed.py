"""The probe over ``torch.distributed``: chunks sharded over ranks, factor sums reduced, rank 0 reports.

A chunk's inputs, noise and labels are drawn from its global index and the seed (:mod:`ddgraph.probing.data`),
so one process and N processes measure the same sample; rank ``r`` runs the chunks ``k`` with
``k % N == r``. After each t-point the per-rank factor sums are all-reduced (every rank holds every
factor), or, under a factor memory budget, reduced to the rank that owns the layer (the reduce-scatter
kfac-pytorch uses): each rank then holds only the factors it owns, accumulates the rest a few layers
at a time (rounds), and reads the observables (the eigen-work) of its own layers; rank 0 gathers them.
Every decision of the sweep (carried blocks, the next t, where a NaN first appeared) is taken on rank 0
from reduced quantities and broadcast, so the ranks never disagree. Without an initialised process
group everything here is the identity.
"""
from __future__ import annotations

import atexit
import os

import attrs
import torch
import torch.distributed as dist

from ddgraph.errors import ProbeOptionError

MB = 2**20


@attrs.define
class Ranks:
    """The processes sharing one probe, and who holds which factor."""

    rank: int = 0
    world: int = 1
    device: torch.device = attrs.field(factory=lambda: torch.device("cpu"))
    owners: dict = attrs.Factory(dict)  # factor key -> owning rank; empty: every rank holds every factor
    rounds: list = attrs.Factory(lambda: [None])  # factor keys accumulated per pass (None: all at once)
    peak_bytes: int = 0  # the most factor memory this rank held at once (fp64 sums it keeps or accumulates)

    @property
    def lead(self) -> bool:
        """Whether this rank prints, draws progress and returns the full result (rank 0)."""
        return self.rank == 0

    def mine(self, k: int) -> bool:
        """Whether chunk ``k`` is this rank's."""
        return k % self.world == self.rank

    def owns(self, key: str) -> bool:
        return not self.owners or self.owners[key] == self.rank

    def reduce(self, acc, keys=None, second: bool = True) -> None:
        """Sum the per-rank accumulators of this pass over ranks (``keys``: this round's factors)."""
        self._note(acc)
        if self.world == 1:
            return
        for factor in (acc.a, acc.g):
            names = sorted(k for k in factor.rows if k not in factor.constant and (keys is None or k in keys))
            counts = torch.tensor([float(factor.rows[k]) for k in names], dtype=torch.float64, device=self.device)
            dist.all_reduce(counts)
            for k, n in zip(names, counts.tolist()):
                factor.rows[k] = int(n)
                for part in (factor.sums, factor.cols):
                    if k not in part:
                        continue
                    if self.owners:
                        dist.reduce(part[k], dst=self.owners[k])
                        if not self.owns(k):
                            del part[k]
                    else:
                        dist.all_reduce(part[k])
                if not self.owns(k):
                    del factor.rows[k]  # the owner reads this layer
            if self.owners:  # a carried block lives on its owner only
                for k in [k for k in factor.base if not self.owns(k)]:
                    del factor.base[k]
        if second:
            for name in sorted(acc.second):
                s, m, n = acc.second[name]
                total = torch.tensor([float(n)], dtype=torch.float64, device=self.device)
                for x in (s, m, total):
                    dist.all_reduce(x)
                acc.second[name] = (s, m, int(total.item()))

    def peak_mb(self) -> float:
        """The most factor memory any rank held at once, in MB."""
        peak = torch.tensor([float(self.peak_bytes)], dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(peak, op=dist.ReduceOp.MAX)
        return float(peak.item()) / MB

    def sync(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's parameters and buffers (as DDP does when it wraps a model)."""
        if self.world == 1:
            return
        with torch.no_grad():
            for x in [*module.parameters(), *module.buffers()]:
                dist.broadcast(x.data, src=0)

    def _note(self, acc) -> None:
        held = sum(x.numel() * x.element_size() for f in (acc.a, acc.g)
                   for part in (f.sums, f.cols, f.base) for x in part.values())
        self.peak_bytes = max(self.peak_bytes, held)

    def decide(self, value):
        """Rank 0's ``value`` on every rank (a decision the sweep takes once)."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def first_nan(self, local: dict) -> dict:
        """``{t: node}`` of the first non-finite value in chunk order, over every rank's ``{t: (chunk, node)}``."""
        found = self.gather(local) if self.world > 1 else [local]
        out: dict = {}
        for part in found or ():
            for t, (k, node) in part.items():
                if t not in out or k < out[t][0]:
                    out[t] = (k, node)
        return self.decide({t: node for t, (k, node) in sorted(out.items(), key=lambda kv: -kv[0])})

    def share(self, weights: dict, notes: list | None = None) -> list:
        """Under factor ownership, give every rank the series (and overlaps) its owners read, and
        every rank's ``notes`` in rank order; otherwise every rank read everything already."""
        if not self.owners or self.world == 1:
            return list(notes or [])
        mine = {n: (w.series, w.overlap) for n, w in weights.items() if self.owns(n.split("[")[0])}
        every = [None] * self.world
        dist.all_gather_object(every, (mine, notes or []))
        out = []
        for part, said in every:
            for n, (series, overlap) in part.items():
                weights[n].series, weights[n].overlap = series, overlap
            out += said
        return out

    def gather(self, value) -> list | None:
        """Every rank's ``value`` on rank 0 (``None`` elsewhere)."""
        if self.world == 1:
            return [value]
        out = [None] * self.world if self.lead else None
        dist.gather_object(value, out, dst=0)
        return out

    def _object_device(self):
        return self.device if dist.get_backend() == "nccl" else None


def factor_sizes(graph, sites) -> dict:
    """``{factor key: bytes of its fp64 A and G sums}``, read off the traced shapes (an embedding's A is
    its diagonal)."""
    out = {}
    for s in sites:
        if s.parent is not None:
            continue  # a fused weight's slice reads its parent's factors
        x, y = graph[s.x_node]["shape"], graph[s.node]["shape"]
        if s.kind == "conv":
            c = s.conv
            width = c["group"][1] if c["group"] is not None else x[1]
            d_in = width * c["kernel"][0] * c["kernel"][1]
            d_out = c["group"][2] if c["group"] is not None else y[1]
        else:
            d_in = s.vocab if s.kind == "embedding" else x[s.x_axis]
            d_out = y[s.y_axis]
        out[s.node] = 8 * ((d_in if s.kind == "embedding" else d_in * d_in) + d_out * d_out)
    return out


def plan(sites, ranks: Ranks, sizes: dict, budget_mb: float | None) -> Ranks:
    """Give each factor key an owner and split the keys into rounds that fit ``budget_mb`` per rank.

    ``sizes`` maps a factor key to the bytes of its A and G sums. Owners balance the bytes (largest
    first to the least loaded rank, ties to the lower rank); a round is a run of keys in graph order
    whose sums fit what the budget leaves beside the owned factors. No budget: every rank holds all.

    Raises
    ------
    ProbeOptionError
        When the budget cannot hold a rank's own factors and the largest layer's sums beside them.
    """
    check_budget(budget_mb)
    if budget_mb is None:
        return ranks
    keys = [s.node for s in sites if s.parent is None and s.node in sizes]
    load = [0] * ranks.world
    owners = {}
    for k in sorted(keys, key=lambda k: (-sizes[k], keys.index(k))):
        r = min(range(ranks.world), key=lambda r: (load[r], r))
        owners[k] = r
        load[r] += sizes[k]
    budget = int(budget_mb * MB)
    room = budget - max(load)
    if room < max(sizes[k] for k in keys):
        need = max(load) + max(sizes[k] for k in keys)
        raise ProbeOptionError(
            f"factor_budget {budget_mb:g} MB: the K-FAC factors take {sum(load) / MB:.3g} MB in all; with "
            f"{ranks.world} rank(s) each needs at least {need / MB:.3g} MB (its own factors and the largest "
            f"layer's beside them): raise the budget or launch more ranks (torchrun --nproc_per_node N)")
    rounds, current, used = [], set(), 0
    for k in keys:
        if used + sizes[k] > room:
            rounds.append(current)
            current, used = set(), 0
        current.add(k)
        used += sizes[k]
    rounds.append(current)
    return attrs.evolve(ranks, owners=owners, rounds=rounds)


def check_budget(budget_mb) -> None:
    """Refuse a factor budget that is not a positive number of MB (``None``: no budget)."""
    if budget_mb is not None and not (isinstance(budget_mb, (int, float)) and not isinstance(budget_mb, bool)
                                      and budget_mb > 0):
        raise ProbeOptionError(f"factor_budget: need a positive number of MB (e.g. 512), got {budget_mb!r}")


def check_device(device) -> torch.device | None:
    """``device`` as a torch device (``None``: where the model is), refusing a name torch does not know,
    a device the probe does not run on, or a GPU this machine lacks."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ProbeOptionError(f"device {device!r}: not a device torch knows; pass cpu or cuda (cuda:0, ...)") from None
    if dev.type not in ("cpu", "cuda"):
        raise ProbeOptionError(f"device {device}: the probe runs on cpu or cuda, not {dev.type}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ProbeOptionError(f"device {device}: no CUDA GPU is available here; pass cpu or leave it out")
    return dev


def current(device=None) -> Ranks:
    """This process's place in the initialised process group (one rank when there is none)."""
    device = check_device(device) or torch.device("cpu")
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks(device=device)
    backend = dist.get_backend()
    if (backend == "nccl") != (device.type == "cuda"):
        raise ProbeOptionError(f"device {device}: the process group runs {backend}, which reduces "
                               f"{'GPU' if backend == 'nccl' else 'CPU'} tensors: probe on "
                               f"{'cuda' if backend == 'nccl' else 'cpu'}, or initialise the group with "
                               f"{'gloo' if backend == 'nccl' else 'nccl'} (gloo on the CPU, NCCL on GPUs)")
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), device=device)


def check_chunks(n_chunks: int, ranks: Ranks, chunk: int, n_samples: int) -> None:
    """Refuse a sample that leaves a rank without a chunk (it would hold no factor to reduce)."""
    if n_chunks < ranks.world:
        raise ProbeOptionError(
            f"chunk: {n_samples} samples in chunks of {chunk} make {n_chunks} chunk(s) for {ranks.world} ranks; "
            f"every rank needs one: pass a chunk of at most {max(1, n_samples // ranks.world)} (--chunk) "
            "or more samples")


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: str | None, model: torch.nn.Module) -> torch.device:
    """Join the process group torchrun describes (NCCL on CUDA, gloo otherwise) and return this
    rank's device: ``device``, else where ``model`` is; ``cuda`` means this rank's GPU (``LOCAL_RANK``)."""
    p = next(model.parameters(), None)
    dev = torch.device(device) if device else p.device if p is not None and p.device.type != "meta" \
        else torch.device("cpu")
    if dev.type == "cuda" and dev.index is None and launched():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if launched() and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        atexit.register(_leave)
    return dev


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_lead() -> bool:
    """Whether this process reports: rank 0, or the only process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
