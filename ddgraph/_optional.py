"""Optional dependencies, imported where they are used, and the progress bar of long sweeps.

The core (trace, label, predict, probe, diff) needs none of matplotlib, pandas or tensorboard; the parts
that do import them through :func:`require`, which names the extra to install when one is missing.
"""
from __future__ import annotations

import importlib
import weakref

from ddgraph.errors import MissingDependency

#: extra -> what it installs (kept in step with pyproject.toml's optional-dependencies)
EXTRAS = {"plot": "matplotlib", "frames": "pandas", "monitor": "tensorboard"}


def require(module: str, extra: str, what: str):
    """Import ``module`` for ``what``, or raise :class:`MissingDependency` naming the extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is installed but broken: show its own error
        package = module.split(".")[0]
        raise MissingDependency(f"{what} needs {package}, which is not installed: "
                                f"pip install {package}  (or pip install 'ddgraph[{extra}]')") from exc


def pyplot(what: str):
    """matplotlib.pyplot on the non-interactive Agg backend (figures are only written to files)."""
    matplotlib = require("matplotlib", "plot", what)
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "plot", what)


class ProgressBar:
    """A rich progress bar on stderr with tqdm's ``update``/``close``; inert when disabled or when
    stderr is not a terminal. ``transient`` bars disappear when closed (tqdm's ``leave=False``)."""

    def __init__(self, total: int | None, description: str, *, enabled: bool = True, unit: str = "",
                 transient: bool = True):
        self._progress = self._task = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        # No refresh thread and no stdout/stderr redirection: the bar redraws on update only, so
        # a sweep that raises leaves no global state behind (and the finaliser restores the cursor).
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn(unit), TimeElapsedColumn(), TimeRemainingColumn(),
                                  console=console, transient=transient, auto_refresh=False,
                                  redirect_stdout=False, redirect_stderr=False)
        self._task = self._progress.add_task(description, total=total)
        self._progress.start()
        self._progress.refresh()
        self._stop = weakref.finalize(self, self._progress.stop)

    def update(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)
            self._progress.refresh()

    def grow(self, n: int) -> None:
        """Raise the total by ``n`` (a sweep that decides to go on)."""
        if self._progress is not None:
            self._progress.update(self._task, total=self._progress.tasks[0].total + n)

    def close(self) -> None:
        if self._progress is not None:
            self._stop()


def track(iterable, description: str, *, enabled: bool = True, transient: bool = False):
    """Iterate with a progress bar (tqdm's ``tqdm(iterable)``)."""
    items = list(iterable)
    bar = ProgressBar(len(items), description, enabled=enabled, transient=transient)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
