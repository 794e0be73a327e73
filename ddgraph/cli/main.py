"""The ``ddgraph`` command line."""
from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape

from ddgraph import api
from ddgraph.core.approach import FISHERS, LOSSES, REGIMES, Approach
from ddgraph.errors import ConfigError, DDGraphError, OptionError
from ddgraph.frontend.plugins import extensions
from ddgraph.frontend.target import load_target
from ddgraph.output.tables import make_console

console = make_console()
errors = make_console(stderr=True)


def _parse_alpha(values: tuple[str, ...]):
    """``1,2,1,3`` (per weight, graph order) or ``name=a`` / ``name=a/b`` (per direction)."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        parts = [p for p in values[0].split(",") if p]
        try:
            nums = [[float(x) for x in p.split("/")] if "/" in p else float(p) for p in parts]
        except ValueError:
            raise ConfigError(f"--alpha {values[0]!r}: expected numbers like 1,2,1,3") from None
        return nums[0] if len(nums) == 1 else nums
    return _parse_named(values, "--alpha")


def _parse_named(values, flag):
    out = {}
    for v in values:
        if "=" not in v:
            raise ConfigError(f"{flag} {v!r}: expected PARAM=EXPONENT (or PARAM=a/b per direction)")
        name, val = v.split("=", 1)
        try:
            out[name] = [float(x) for x in val.split("/")] if "/" in val else float(val)
        except ValueError:
            raise ConfigError(f"{flag} {v!r}: {val!r} is not a number") from None
    return out


def approach_options(f):
    """Options shared by every command that builds an Approach."""
    opts = [
        click.option("--loss", type=click.Choice(LOSSES), default="mse", show_default=True),
        click.option("--regime", type=click.Choice(REGIMES), default="noisy", show_default=True,
                     help="MSE target: noisy, or the model at t=0 (noise-free)."),
        click.option("--fisher", type=click.Choice(FISHERS), default="expected", show_default=True,
                     help="CE: labels drawn from the model (expected) or fixed (empirical)."),
        click.option("--alpha", multiple=True, help="Exponents: 1,2,1,3 per weight, or PARAM=a[/b...]."),
        click.option("--beta", multiple=True, help="Bias exponents PARAM=b (default: dead bias entry zero)."),
        click.option("--directions", type=int, default=1, show_default=True, help="Dead directions per channel space."),
        click.option("--exponent", "exponents", multiple=True,
                     help="A plugin's approach exponent: NAME:PARAM=a[/b...] (repeatable)."),
        click.option("--rules", "rule_dirs", multiple=True, type=click.Path(file_okay=False),
                     help="A directory of extra rule files, layered over the built-ins."),
        click.option("--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False),
                     help="A Python file defining PRIMITIVES, PATTERNS and RULES (repeatable)."),
        click.option("--tracer", type=click.Choice(["auto", "fx", "export"]), default="auto", show_default=True),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _parse_exponents(values: tuple[str, ...]) -> dict:
    out: dict[str, dict] = {}
    for v in values:
        name, sep, rest = v.partition(":")
        if not sep or not name:
            raise ConfigError(f"--exponent {v!r}: expected NAME:PARAM=EXPONENT")
        out.setdefault(name, {}).update(_parse_named((rest,), f"--exponent {name}"))
    return out


def build_approach(loss, regime, fisher, alpha, beta, directions, exponents=()) -> Approach:
    return Approach(loss=loss, regime=regime, fisher=fisher, n_dead=directions, exponents=_parse_exponents(exponents),
                    alpha=_parse_alpha(alpha), beta=_parse_named(beta, "--beta") if beta else None)


def _can_create_in(directory: Path) -> str | None:
    """Why nothing can be created in ``directory`` (None: something can; nothing is left behind)."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory(dir=directory, prefix=".ddgraph-check-"):
            pass
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def writable_dir(path, flag: str) -> None:
    """Refuse an output directory that exists as a file or cannot be created or written (before any slow work)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OptionError(f"{flag} {path}: exists and is not a directory; pass a directory")
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OptionError(f"{flag} {path}: {probe} is a file, not a directory; pass another directory")
    why = _can_create_in(probe)
    if why:
        raise OptionError(f"{flag} {path}: cannot write in {probe} ({why}); pass a writable directory")


def writable_file(path, flag: str, make_parents: bool = False) -> None:
    """Refuse an output file whose directory is missing (unless the command creates it) or unwritable."""
    p = Path(path)
    if p.is_dir():
        raise OptionError(f"{flag} {path}: is a directory; pass a file name")
    parent = p.parent
    if make_parents:
        writable_dir(parent, flag)
        return
    if not parent.is_dir():
        raise OptionError(f"{flag} {path}: the directory {parent} does not exist; create it first "
                          "or pass a path in an existing directory")
    why = _can_create_in(parent)
    if why:
        raise OptionError(f"{flag} {path}: cannot write in {parent} ({why}); pass a writable location")


def load_run(target, loss, regime, fisher, alpha, beta, directions, exponents, rule_dirs, plugins, tracer):
    """What every model command starts from: the model, its inputs, the approach, the run's vocabulary."""
    model, inputs, _ = load_target(target)
    approach = build_approach(loss, regime, fisher, alpha, beta, directions, exponents)
    return model, inputs, approach, extensions(plugins, rule_dirs), tracer


#: The exit-code contract of every command (README: "Exit status").
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


def _run(fn):
    """Call ``fn``; ddgraph's own errors reach the group's handler (exit 2, one line, no traceback)."""
    return fn()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _wants_json(args: list[str]) -> bool:
    """Whether the command line asks for ``--format json`` (then an error is a JSON object too)."""
    return any(a == "--format=json" or (a == "--format" and nxt == "json")
               for a, nxt in zip(args, [*args[1:], ""]))


class _Group(click.Group):
    """The ``ddgraph`` group: every subcommand's errors become an exit status and one line.

    A :class:`DDGraphError` (bad input: a target, an option, a file) exits 2 with its message; any
    other exception is an internal error, exit 3, with the traceback only under ``--debug``. Errors
    go to stderr; under ``--format json`` the error is a JSON object on stdout (``{"error": ...}``).
    """

    def invoke(self, ctx):
        as_json = _wants_json([*ctx._protected_args, *ctx.args])
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                SystemExit, KeyboardInterrupt):
            raise
        except DDGraphError as exc:
            if ctx.params.get("debug"):
                errors.print_exception()
            _report(as_json, "bad-input", type(exc).__name__, str(exc), f"[bold red]error:[/] {type(exc).__name__}: "
                    f"{escape(str(exc))}")
            ctx.exit(EXIT_BAD_INPUT)
        except Exception as exc:
            if ctx.params.get("debug"):
                errors.print_exception()
            hint = "" if ctx.params.get("debug") else "; rerun as `ddgraph --debug ...` for the traceback"
            _report(as_json, "internal", type(exc).__name__, _one_line(exc),
                    f"[bold red]internal error[/] (a bug in ddgraph, please report it): "
                    f"{type(exc).__name__}: {escape(_one_line(exc))}{hint}")
            ctx.exit(EXIT_INTERNAL)


def _report(as_json: bool, kind: str, name: str, message: str, text: str) -> None:
    from ddgraph.probing.distributed import is_lead

    if not is_lead():
        return  # under torchrun rank 0 reports (every rank meets the same bad input)
    if as_json:
        click.echo(json.dumps({"error": {"kind": kind, "type": name, "message": message}}, indent=2))
    else:
        errors.print(text, highlight=False, soft_wrap=True)  # one line, however long the path


@click.group(cls=_Group)
@click.version_option(package_name="ddgraph")
@click.option("--debug", is_flag=True, help="Show the traceback of an error (an internal error says only one line).")
def main(debug):
    """ddgraph: the singular geometry of a PyTorch model, read off its architecture.

    Exit status: 0 every check passed; 1 a check failed; 2 bad input or usage (the message names the
    problem and the fix); 3 an internal error (rerun with --debug for the traceback).
    """


def _predict(target, **kw):
    model, inputs, approach, ext, tracer = load_run(target, **kw)
    return api.predict(model, inputs, approach=approach, rules=ext.load_rules(), tracer=tracer,
                       plugins=ext.plugins)


@main.command()
@click.argument("target")
@approach_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--verbose", "-v", is_flag=True, help="Every lemma, the module and the rule files of each row.")
@click.option("--timings", is_flag=True, help="Also the seconds taken to trace, label and predict.")
def predict(target, fmt, verbose, timings, **kw):
    """Predict the rate ladder of TARGET (path/to/file.py:factory or package.module:factory)."""
    from ddgraph.output.tables import print_prediction, timings_line

    pred = _run(lambda: _predict(target, **kw))
    if fmt == "json":
        out = pred.to_json()
        if timings:
            out["timings"] = pred.timings
        click.echo(json.dumps(out, indent=2))
    else:
        print_prediction(pred, console, verbose)
        if timings:
            console.print(timings_line(pred.timings))


@main.command()
@click.argument("target")
@approach_options
@click.option("--dot", "dot_file", required=True, type=click.Path(dir_okay=False), help="Where to write graphviz source.")
def graph(target, dot_file, **kw):
    """Write TARGET's labelled graph for graphviz, coloured by primitive and annotated with rates."""
    from ddgraph.output.dot import to_dot

    writable_file(dot_file, "--dot")
    pred = _run(lambda: _predict(target, **kw))
    with open(dot_file, "w") as fh:
        fh.write(to_dot(pred.graph, pred))
    console.print(f"wrote {dot_file} ({pred.graph.nx.number_of_nodes()} nodes; "
                  f"primitives: {', '.join(f'{k} {v}' for k, v in pred.graph.summary().items())})")


@main.command()
@click.option("--rules", "rule_dirs", multiple=True, type=click.Path(file_okay=False))
@click.option("--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def rules(rule_dirs, plugins, fmt):
    """List the rules in force, what each block (forward, backward) cites and where they live."""
    from rich.table import Table

    rs = _run(lambda: extensions(plugins, rule_dirs).load_rules())
    if fmt == "json":
        click.echo(json.dumps([{"primitive": r.primitive, "when": r.when, "cite": list(r.cite),
                                "cites": {b: list(c) for b, c in r.cites.items()},
                                "summary": r.summary, "source": r.source, "bracket": r.is_bracket,
                                "probe": r.probe} for r in rs.rules], indent=2))
        return
    t = Table(title=f"{len(rs.rules)} rules", title_justify="left")
    for col in ("primitive", "when", "forward cites", "backward cites", "summary", "file"):
        t.add_column(col, overflow="fold")
    for r in sorted(rs.rules, key=lambda r: (r.primitive, str(r.when))):
        when = ", ".join(f"{k}={v}" for k, v in r.when.items()) or "-"
        t.add_row(r.primitive + (" (bracket)" if r.is_bracket else ""), when,
                  ", ".join(r.cites["forward"]) or "-", ", ".join(r.cites["backward"]) or "-", r.summary, r.source)
    console.print(t)
    for o in rs.overridden:
        console.print(f"overridden: {o}")
