"""DDCAdam: the gauge-equivariant Adam of Algorithm 2 (paper §11.1) as a ``torch.optim.Optimizer``."""
from __future__ import annotations

import torch
from torch.optim import Optimizer

from ddgraph.errors import GaugeError
from ddgraph.optim.gauges import Gauge
from ddgraph.optim.kernels import VERTICAL_MODES, adamw_step, multiplicative_step, translation_step

_DECAY_MODES = ("full", "horizontal")


class DDCAdam(Optimizer):
    """Adam whose update commutes with the continuous gauge symmetries it is told about.

    Parameters under a gauge spec are updated in gauge-decomposed coordinates (Algorithm 2); every
    other parameter gets standard AdamW with the same hyperparameters.

    Parameters
    ----------
    params : iterable of tensors or of param-group dicts. A dict may carry ``"gauge": spec``
        (and no ``"params"``) to set per-spec hyperparameters.
    gauges : gauge specs (:mod:`ddgraph.optim.gauges`); each gets its own param group. Their tensors
        are taken out of the plain groups. Specs must act on disjoint tensors.
    lr : step size (absolute) for AdamW parameters and translation-gauge blocks.
    betas, eps : Adam moment decay rates and denominator floor.
    weight_decay : decoupled weight decay, ``p <- (1 - lr * weight_decay) p``. It commutes with the
        multiplicative gauges; on translation gauges see ``translation_decay``.
    vertical : update of the gauge-mode scalars: ``"frozen"`` (never move along the orbit),
        ``"sgd"`` (plain gradient step, the default) or ``"adam"`` (scalar Adam per mode).
    vertical_lr : step size of the vertical update (defaults to ``lr``).
    rel_lr : step size on multiplicative-gauge blocks, *relative*: log-norms move by about
        ``rel_lr`` per step and tangential moves are ``rel_lr`` times the block RMS per coordinate
        (defaults to ``lr``).
    translation_decay : ``"full"`` shrinks the whole tensor, as Algorithm 2 step 1 states (then the
        equivariance identity holds only at ``weight_decay = 0`` on these blocks); ``"horizontal"``
        shrinks only the shift-free part, which is equivariant at any decay.

    Raises
    ------
    GaugeError
        If two specs share a tensor, a spec tensor does not require grad, or an option is unknown.

    Examples
    --------
    >>> import torch
    >>> from ddgraph.optim import DDCAdam, CEShiftBias
    >>> head = torch.nn.Linear(4, 3)
    >>> opt = DDCAdam(head.parameters(), gauges=[CEShiftBias(head.bias)], lr=1e-2)
    >>> [g["gauge"].kind if g["gauge"] else None for g in opt.param_groups]
    [None, 'CEShiftBias']
    """

    def __init__(self, params, gauges=(), *, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 vertical="sgd", vertical_lr=None, rel_lr=None, translation_decay="full"):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, vertical=vertical,
                        vertical_lr=lr if vertical_lr is None else vertical_lr,
                        rel_lr=lr if rel_lr is None else rel_lr, translation_decay=translation_decay,
                        gauge=None)
        plain, specs = _split_groups(params, gauges)
        owner = _check_disjoint([s for s, _ in specs])
        groups = [dict(g, params=[p for p in g["params"] if id(p) not in owner]) for g in plain]
        groups = [g for g in groups if g["params"]]
        groups += [dict(opts, params=list(spec.params), gauge=spec.layout) for spec, opts in specs]
        super().__init__(groups, defaults)
        for g in self.param_groups:
            _check_group(g)
        self.gauges = tuple(s for s, _ in specs)
        self._bases, self._work, self._scratch = {}, {}, {}

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one optimisation step; ``closure`` re-evaluates the loss, as in torch optimisers."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for i, group in enumerate(self.param_groups):
            layout = group["gauge"]
            if layout is None:
                live = [p for p in group["params"] if p.grad is not None]
                if live:
                    adamw_step(live, [_dense(p) for p in live], [self.state[p] for p in live], group)
                continue
            params = group["params"]
            if all(p.grad is None for p in params):
                continue
            grads = [_dense(p) if p.grad is not None else torch.zeros_like(p) for p in params]
            states = [self.state[p] for p in params]
            head = states[0]
            head["step"] = head.get("step", torch.zeros((), dtype=torch.float64)) + 1
            step = float(head["step"])
            if layout.translation:
                translation_step(params[0], grads[0], head, group, step)
            else:
                multiplicative_step(params, grads, states, group, layout, self._group_bases(i, params[0]),
                                    step, *self._workspace(params))
        return loss

    def load_state_dict(self, state_dict):
        """Load a state saved by :meth:`state_dict`; refuses one saved with different gauge specs."""
        saved = [g.get("gauge") for g in state_dict["param_groups"]]
        mine = [g["gauge"] for g in self.param_groups]
        if saved != mine:
            raise GaugeError(f"state dict was saved with gauges {_kinds(saved)}, this optimiser has "
                             f"{_kinds(mine)}")
        super().load_state_dict(state_dict)
        self._bases = {}

    def _workspace(self, params):
        """Buffers kept between steps so a step allocates nothing: two per tensor, of its shape, and a
        flat scratch per dtype and device as long as the largest such tensor."""
        work = []
        for p in params:
            w = self._work.get(p)
            if w is None or w[0].shape != p.shape or w[0].dtype != p.dtype or w[0].device != p.device:
                w = self._work[p] = tuple(torch.empty_like(p, memory_format=torch.contiguous_format) for _ in "ud")
            work.append(w)
            key = (p.dtype, p.device)
            if key not in self._scratch or self._scratch[key].numel() < p.numel():
                self._scratch[key] = p.new_empty(p.numel())
        return work, self._scratch

    def _group_bases(self, i, like):
        key = (i, like.dtype, like.device)
        if key not in self._bases:
            u_orb, u_inv = self.param_groups[i]["gauge"].bases()
            self._bases[key] = tuple(torch.as_tensor(u, dtype=like.dtype, device=like.device)
                                     for u in (u_orb, u_inv))
        return self._bases[key]

    @classmethod
    def from_model(cls, model, example_inputs=None, *, gauges=None, exclude=(), **hyper):
        """Build a DDCAdam whose gauge specs are discovered from ``model``'s labelled graph.

        Parameters
        ----------
        model : the ``torch.nn.Module`` to optimise (all its parameters are handed to the optimiser).
        example_inputs : a tensor or tuple of tensors the model can be traced with.
        gauges : explicit specs that replace discovery entirely (the user override).
        exclude : kinds (e.g. ``"ReLURescaleGauge"``) or spec objects to drop from the discovered list.
        **hyper : optimiser hyperparameters (see :class:`DDCAdam`).

        Returns
        -------
        DDCAdam
            With ``.gauges`` the specs in use and ``.discovery`` the report of what was found and
            dropped (``None`` when ``gauges`` was given).

        Warns
        -----
        GaugeDroppedWarning
            When discovery dropped a candidate because it overlaps a gauge taken earlier (specs act on
            disjoint tensors; e.g. a one-hidden-layer MLP's ReLU rescale shares its output layer with the
            CE head's gauges). Those parameters still train, under the gauge that claimed them.
        """
        import warnings

        from ddgraph.optim.discover import GaugeDroppedWarning, discover_gauges

        report = None
        if gauges is None:
            report = discover_gauges(model, example_inputs)
            gauges = [s for s in report.specs if s not in exclude and s.layout.kind not in exclude]
            if report.dropped:
                warnings.warn(GaugeDroppedWarning(
                    f"DDCAdam.from_model dropped {len(report.dropped)} gauge candidate(s) that overlap a gauge "
                    "taken earlier (priority: CE head, LayerNorm scale, ReLU rescale): "
                    + "; ".join(f"{d} ({why})" for d, why in report.dropped)
                    + ". opt.discovery lists what was kept and dropped; pass gauges=[...] to choose the specs "
                      "yourself."), stacklevel=2)
        opt = cls(model.parameters(), gauges=gauges, **hyper)
        opt.discovery = report
        return opt


def _split_groups(params, gauges):
    params = list(params)
    plain, specs = [], [(s, {}) for s in gauges]
    if params and not isinstance(params[0], dict):
        params = [{"params": params}]
    for g in params:
        if "gauge" in g:
            if "params" in g:
                raise GaugeError("a param group with a 'gauge' takes its tensors from the spec, not 'params'")
            specs.append((g["gauge"], {k: v for k, v in g.items() if k != "gauge"}))
        else:
            plain.append(dict(g, params=list(g["params"])))
    for s, _ in specs:
        if not isinstance(s, Gauge):
            raise GaugeError(f"not a gauge spec: {s!r}")
    return plain, specs


def _check_disjoint(specs):
    owner = {}
    for s in specs:
        for p in s.params:
            if not p.requires_grad:
                raise GaugeError(f"{s!r} acts on a tensor that does not require grad")
            if id(p) in owner:
                raise GaugeError(f"{owner[id(p)]!r} and {s!r} act on the same tensor of shape "
                                 f"{tuple(p.shape)}: overlapping gauges need one joint spec (e.g. "
                                 "ChainedReLURescaleGauge), not a composition")
            owner[id(p)] = s
    return owner


def _check_group(g):
    if g["vertical"] not in VERTICAL_MODES:
        raise GaugeError(f"vertical must be one of {VERTICAL_MODES}, got {g['vertical']!r}")
    if g["translation_decay"] not in _DECAY_MODES:
        raise GaugeError(f"translation_decay must be one of {_DECAY_MODES}, got {g['translation_decay']!r}")


def _dense(p):
    if p.grad.is_sparse:
        raise GaugeError("DDCAdam does not support sparse gradients")
    return p.grad


def _kinds(layouts):
    return [lay.kind if lay is not None else "AdamW" for lay in layouts]
