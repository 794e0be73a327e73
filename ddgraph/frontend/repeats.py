"""Deep stacks traced once: a model built of many identical blocks is traced with its first few only.

A transformer is dozens of copies of one block. A *stack* is a ``ModuleList`` or ``Sequential`` whose
blocks after the first are of one class, with the same parameter and buffer names, shapes and dtypes
and the same plain attributes (an integer that counts the block's position, as ``layer_idx``, may
differ). The model is traced twice on shortened copies that share the parameters (the model is not
changed): with the first :data:`KEEP` blocks of each stack, and with one block more. The graph of every
further block is the last traced block's, copied with that block's own parameters and module paths, as
compilers reuse the code of a repeated layer; nodes after the stack read the last copy. It is used
only when the copy is shown to be right where it can be checked: the last two traced blocks give the
same subgraph (the same ops on the same shapes, fed by the block before in the same places and by the
same nodes outside the stack), the shorter trace grown by one block is the longer trace node for node
(so nothing the parent's loop does depends on the block's position there, and the code after the stack
is the same), and every parameter outside the stacks is read (a module called only at some later
position would not be). Anything else is traced whole.

The result is the graph a full trace gives, up to the names of the copied fx nodes.
"""
from __future__ import annotations

import copy
import logging
import re

import attrs
import torch
from torch import nn

logger = logging.getLogger(__name__)

KEEP = 3  # blocks traced per stack: the first (it may differ) and two to compare; then one more
VALUE_KEYS = ("ddgraph_value", "ddgraph_small_value")  # node.meta entries compared between the two blocks


class NotRepeated(Exception):
    """The traced blocks do not repeat; the message says where (the model is traced whole)."""


@attrs.frozen
class Stack:
    """A container of ``length`` blocks at ``path`` (``""``: the model itself) whose blocks from the
    second on are interchangeable."""

    path: str
    length: int
    block_type: str

    def child(self, k: int) -> str:
        return f"{self.path}.{k}" if self.path else str(k)


def _plain(value):
    """A comparable stand-in for a module attribute: the value itself when it is plain, else its type."""
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        return value
    if isinstance(value, (tuple, list)) and all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
        return tuple(value)
    return type(value).__qualname__


def _state(block: nn.Module) -> dict:
    """Every submodule's class, parameters, buffers and plain attributes, keyed by where they live."""
    out = {}
    for name, m in block.named_modules():
        out[(name, "class")] = type(m)
        for k, v in m.__dict__.items():
            if k in ("_parameters", "_buffers", "_modules"):
                continue
            out[(name, k)] = _plain(v)
        for k, p in m._parameters.items():
            out[(name, "param", k)] = None if p is None else (tuple(p.shape), p.dtype, p.requires_grad)
        for k, b in m._buffers.items():
            out[(name, "buffer", k)] = None if b is None else (tuple(b.shape), b.dtype)
    return out


def _interchangeable(blocks: list[nn.Module]) -> bool:
    """Whether ``blocks`` are one class with the same state; an integer attribute may count the position."""
    if len({id(b) for b in blocks}) != len(blocks):  # one module listed twice: weights shared across blocks
        return False
    states = [_state(b) for b in blocks]
    keys = set(states[0])
    if any(set(s) != keys for s in states[1:]):
        return False
    for key in keys:
        values = [s[key] for s in states]
        if all(v == values[0] for v in values):
            continue
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values) and \
                len({v - i for i, v in enumerate(values)}) == 1:
            continue  # a position counter (layer_idx)
        return False
    return True


def find_stacks(model: nn.Module) -> list[Stack]:
    """The stacks of ``model`` longer than ``KEEP + 1``, outermost first (none inside another)."""
    out: list[Stack] = []
    for path, m in model.named_modules():
        if not isinstance(m, (nn.ModuleList, nn.Sequential)) or len(m) <= KEEP + 1:
            continue
        if any(not s.path or path == s.path or path.startswith(s.path + ".") for s in out):
            continue
        names = list(m._modules)
        if names != [str(i) for i in range(len(names))] or any(b is None for b in m._modules.values()):
            continue
        blocks = list(m._modules.values())
        if _interchangeable(blocks[1:]):
            out.append(Stack(path, len(blocks), type(blocks[1]).__name__))
    return out


def shortened(model: nn.Module, stacks: list[Stack], keep: int) -> nn.Module:
    """A copy of ``model`` whose stacks keep their first ``keep`` blocks. Only the modules on the
    way to each stack are copied (shallowly): parameters, buffers and blocks are the model's own, and
    the model itself is not changed (the tracers then work on a twin of this copy)."""
    root = copy.copy(model)
    root._modules = dict(model._modules)
    for s in stacks:
        parent = root
        atoms = s.path.split(".") if s.path else []
        for atom in atoms:
            child = copy.copy(parent._modules[atom])
            child._modules = dict(child._modules)
            parent._modules[atom] = child
            parent = child
        parent._modules = {k: v for k, v in list(parent._modules.items())[:keep]}
    return root


def _block_pattern(stack: Stack) -> re.Pattern:
    return re.compile((re.escape(stack.path) + r"\." if stack.path else "") + r"(\d+)(?=\.|$)")


def _block_of(node: torch.fx.Node, pattern: re.Pattern) -> int | None:
    """The block a node belongs to: its parameter's path, or the innermost module it was traced in."""
    if node.op == "get_attr":
        m = pattern.match(str(node.target))
        return int(m.group(1)) if m else None
    for path, _ in reversed(list((node.meta.get("nn_module_stack") or {}).values())):
        m = pattern.match(path) if isinstance(path, str) else None
        if m:
            return int(m.group(1))
    return None


def _renamed(pattern: re.Pattern, text: str, k: int) -> str:
    m = pattern.match(text)
    return f"{text[:m.start(1)]}{k}{text[m.end(1):]}" if m else text


def _value_key(node: torch.fx.Node):
    out = []
    for key in VALUE_KEYS:
        v = node.meta.get(key)
        if isinstance(v, torch.Tensor):
            out.append((tuple(v.shape), v.dtype))
        elif isinstance(v, (tuple, list)):
            out.append(tuple((tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else type(x) for x in v))
        else:
            out.append(type(v))
    return tuple(out)


def _same_constant(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return a is b
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


class _Blocks:
    """Where each traced block of one stack lies in the graph: its segment (the compute nodes from just
    after the previous block to its last node) and its parameter reads outside the segment."""

    def __init__(self, graph: torch.fx.Graph, stack: Stack, keep: int):
        self.stack, self.pattern, self.keep = stack, _block_pattern(stack), keep
        self.nodes = list(graph.nodes)
        pos = {n: i for i, n in enumerate(self.nodes)}
        block = {n: _block_of(n, self.pattern) for n in self.nodes}
        last = []
        for k in range(keep):
            at = [pos[n] for n in self.nodes if block[n] == k and n.op != "get_attr"]
            if not at:
                raise NotRepeated(f"block {stack.child(k)} left no node in the graph")
            if last and min(at) <= last[-1]:
                raise NotRepeated(f"blocks {stack.child(k - 1)} and {stack.child(k)} interleave")
            last.append(max(at))
        first = min(pos[n] for n in self.nodes if block[n] == 0 and n.op != "get_attr")
        starts = [first] + [e + 1 for e in last[:-1]]
        self.segments = [self.nodes[s:e + 1] for s, e in zip(starts, last)]
        inside = {n for seg in self.segments for n in seg}
        self.params = [[n for n in self.nodes if n.op == "get_attr" and block[n] == k and n not in inside]
                       for k in range(keep)]
        self.end = last[-1]
        for k, seg in enumerate(self.segments):
            for n in seg:
                if block[n] not in (None, k):
                    raise NotRepeated(f"node {n.name} of {stack.child(block[n])} lies in {stack.child(k)}")
        self.owner = {n: k for k, seg in enumerate(self.segments) for n in seg}
        self.owner.update({n: k for k, ps in enumerate(self.params) for n in ps})

    def index(self, n: torch.fx.Node, k: int):
        """Where ``n`` sits in block ``k``: ('segment', i) or ('param', i)."""
        if n in self.segments[k]:
            return ("segment", self.segments[k].index(n))
        return ("param", self.params[k].index(n))

    def reference(self, x: torch.fx.Node, k: int):
        """How a node of block ``k`` refers to ``x``: in its own block, in the block before, or outside."""
        owner = self.owner.get(x)
        if owner == k:
            return ("own",) + self.index(x, k)
        if owner == k - 1 and x in self.segments[k - 1]:
            return ("previous", len(self.segments[k - 1]) - self.segments[k - 1].index(x))
        if owner is not None:
            raise NotRepeated(f"{self.stack.child(k)} reads {x.name} of {self.stack.child(owner)}")
        return ("outside", x)

    def signature(self, n: torch.fx.Node, k: int):
        """What a node of block ``k`` computes, with its operands as references."""
        refs = []

        def ref(x):
            refs.append(self.reference(x, k))
            return x

        torch.fx.node.map_arg((n.args, n.kwargs), ref)
        consts = []
        torch.fx.node.map_aggregate((n.args, n.kwargs),
                                    lambda a: consts.append(a) if not isinstance(a, torch.fx.Node) else None)
        target = _renamed(self.pattern, str(n.target), 0) if n.op == "get_attr" else n.target
        return n.op, target, _value_key(n), refs, consts

    def check(self) -> None:
        """The last two traced blocks compute the same thing from the same places; nothing after the
        stack reads a block but the last."""
        a, b = self.keep - 2, self.keep - 1
        for kind in ("segments", "params"):
            left, right = getattr(self, kind)[a], getattr(self, kind)[b]
            if len(left) != len(right):
                raise NotRepeated(f"{self.stack.child(a)} and {self.stack.child(b)} differ in length ({kind})")
            for x, y in zip(left, right):
                sx, sy = self.signature(x, a), self.signature(y, b)
                if sx[:4] != sy[:4] or len(sx[4]) != len(sy[4]) or \
                        not all(_same_constant(p, q) for p, q in zip(sx[4], sy[4])):
                    raise NotRepeated(f"{x.name} of {self.stack.child(a)} and {y.name} of {self.stack.child(b)} "
                                      "differ")
        for n in self.nodes[self.end + 1:]:
            for x in n.all_input_nodes:
                if self.owner.get(x, b) != b:
                    raise NotRepeated(f"{n.name}, after the stack, reads {x.name} of an earlier block")


def _base(name: str) -> str:
    return re.sub(r"_\d+$", "", name)


def _moved_meta(meta: dict, pattern: re.Pattern, k: int) -> dict:
    out = copy.copy(meta)
    stack = meta.get("nn_module_stack")
    if stack:
        out["nn_module_stack"] = {key: (_renamed(pattern, path, k) if isinstance(path, str) else path, kind)
                                  for key, (path, kind) in stack.items()}
    return out


def _attach(gm: torch.nn.Module, target: str, value) -> None:
    """Put ``value`` at ``target`` in ``gm`` (parameter, buffer or attribute), making the modules on the way."""
    *path, field = target.split(".")
    m = gm
    for atom in path:
        if not hasattr(m, atom):
            m.add_module(atom, nn.Module())
        m = getattr(m, atom)
    if isinstance(value, nn.Parameter):
        m.register_parameter(field, value)
    elif isinstance(value, torch.Tensor):
        m.register_buffer(field, value.detach().clone())
    else:
        setattr(m, field, value)


def _lookup(model: nn.Module, target: str):
    value = model
    for atom in target.split("."):
        value = getattr(value, atom)
    return value


def _grown(graph: torch.fx.Graph, stack: Stack, keep: int, length: int) -> torch.fx.Graph:
    """``graph``, traced with ``keep`` blocks of ``stack``, grown to ``length`` blocks.

    Raises
    ------
    NotRepeated
        When the traced blocks do not repeat.
    """
    blocks = _Blocks(graph, stack, keep)
    blocks.check()
    t = keep - 1
    seg_t, params_t = blocks.segments[t], blocks.params[t]
    template = set(seg_t) | set(params_t)
    runs: dict = {}  # last node of each run of consecutive parameter reads of the template -> the run
    run: list = []
    for n in blocks.nodes + [None]:
        if n is not None and n in params_t:
            run.append(n)
        elif run:
            runs[run[-1]], run = run, []
    previous = {x: seg_t[i] for i, x in enumerate(blocks.segments[t - 1])}  # block t-1's node -> block t's
    pattern = blocks.pattern
    new = torch.fx.Graph()
    new._codegen = graph._codegen
    env: dict = {}
    copies: dict[int, dict] = {t: {}}
    after_stack = False

    def value(x):
        return copies[length - 1][x] if after_stack and x in copies[t] else env[x]

    def copy_block(nodes, k: int) -> None:
        own = copies.setdefault(k, {})
        for n in nodes:
            def arg(x):
                if x in template:
                    return own[x]
                if x in previous:
                    return copies[k - 1][previous[x]]
                return env[x]
            target = _renamed(pattern, str(n.target), k) if n.op == "get_attr" else n.target
            c = new.create_node(n.op, target, torch.fx.node.map_arg(n.args, arg),
                                torch.fx.node.map_arg(n.kwargs, arg), name=_base(n.name), type_expr=n.type)
            c.meta = _moved_meta(n.meta, pattern, k)
            own[n] = c

    for i, n in enumerate(blocks.nodes):
        env[n] = new.node_copy(n, value)
        if n in template:
            copies[t][n] = env[n]
        if n in runs:  # the last of a run of the template's parameter reads: the copies' follow it
            for k in range(keep, length):
                copy_block(runs[n], k)
        if i == blocks.end:
            for k in range(keep, length):
                copy_block(seg_t, k)
            after_stack = True
    return new


def _leaves(n: torch.fx.Node, index: dict) -> list:
    out = []
    torch.fx.node.map_aggregate((n.args, n.kwargs),
                                lambda a: out.append(("node", index[a]) if isinstance(a, torch.fx.Node) else a))
    return out


def _same_graph(left: torch.fx.Graph, right: torch.fx.Graph) -> str | None:
    """Why two graphs differ as computations (None: op for op, target, shape and operand in order)."""
    a, b = list(left.nodes), list(right.nodes)
    if len(a) != len(b):
        return f"{len(a)} nodes against {len(b)}"
    ia, ib = {n: i for i, n in enumerate(a)}, {n: i for i, n in enumerate(b)}
    for x, y in zip(a, b):
        la, lb = _leaves(x, ia), _leaves(y, ib)
        same_target = str(x.target) == str(y.target) if x.op in ("get_attr", "call_module") else x.target == y.target
        if x.op != y.op or not same_target or _value_key(x) != _value_key(y) or len(la) != len(lb) or \
                not all(p == q if isinstance(p, tuple) and p[:1] == ("node",) else _same_constant(p, q)
                        for p, q in zip(la, lb)):
            return f"{x.name} against {y.name}"
    return None


def _unread(gm: torch.fx.GraphModule, model: nn.Module, stacks: list[Stack]) -> list[str]:
    """Parameters outside the stacks that no node of ``gm`` reads."""
    read = {id(_lookup(gm, str(n.target))) for n in gm.graph.nodes if n.op == "get_attr" and n.users}
    inside = {id(p) for s in stacks for p in model.get_submodule(s.path).parameters()}
    return [name for name, p in model.named_parameters() if id(p) not in inside and id(p) not in read]


def expand(gm: torch.fx.GraphModule, model: nn.Module, stack: Stack, keep: int) -> None:
    """Grow ``gm``, traced with ``keep`` blocks of ``stack``, to all of them (in place), reading the
    parameters of the copied blocks from ``model``."""
    new = _grown(gm.graph, stack, keep, stack.length)
    for n in new.nodes:
        m = _block_pattern(stack).match(str(n.target)) if n.op == "get_attr" else None
        if m and int(m.group(1)) >= keep:
            _attach(gm, str(n.target), _lookup(model, str(n.target)))
    gm.graph = new


def trace_stacks(model: nn.Module, example_inputs, tracer: str, shapes) -> tuple | None:
    """Trace ``model`` with :data:`KEEP` blocks per stack and copy the rest: ``(gm, tracer used, note)``,
    or None when the model has no stack or its traced blocks do not repeat (then trace it whole).
    ``shapes(gm, tracer_used)`` records the shapes of the shortened graph before it is grown."""
    from ddgraph.frontend.tracing import NOTE, UNWRAPPED, trace_module, uncompiled

    inner = uncompiled(model)
    stacks = find_stacks(inner)
    if not stacks:
        return None
    try:
        short, used = trace_module(shortened(inner, stacks, KEEP), example_inputs, tracer=tracer)
        gm, used_longer = trace_module(shortened(inner, stacks, KEEP + 1), example_inputs, tracer=used)
        if used_longer != used:
            raise NotRepeated(f"traced by {used} with {KEEP} blocks and by {used_longer} with one more")
        shapes(short, used)
        shapes(gm, used)
        grown = short.graph
        for s in stacks:
            grown = _grown(grown, s, KEEP, KEEP + 1)
        why = _same_graph(grown, gm.graph)
        if why:
            raise NotRepeated(f"the trace with {KEEP} blocks per stack, grown by one, is not the trace with "
                              f"{KEEP + 1}: {why}")
        unread = _unread(gm, inner, stacks)
        if unread:
            raise NotRepeated(f"{unread[0]} is not read with {KEEP + 1} blocks per stack")
        for s in stacks:
            expand(gm, inner, s, KEEP + 1)
        if inner is not model:
            gm.meta[NOTE] = "; ".join(n for n in (UNWRAPPED, gm.meta.get(NOTE)) if n)
    except Exception as exc:  # the whole model is traced instead, and says what is wrong if anything is
        logger.info("%s: tracing %d blocks per stack did not carry over (%s: %s); tracing every block",
                    type(model).__name__, KEEP, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None
    note = "; ".join(f"{s.path or 'the model'}: {s.length} blocks of {s.block_type}, the first {KEEP + 1} traced and "
                     f"the rest copied from the last (the same subgraph)" for s in stacks)
    return gm, used, note

