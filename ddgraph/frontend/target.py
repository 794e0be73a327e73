"""Command-line TARGETs: ``path/to/file.py:factory`` or ``package.module:factory``."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from torch import nn

from ddgraph.errors import TargetError


def load_target(target: str):
    """Call the factory a TARGET names; returns ``(model, example_inputs_or_None, label)``.

    The factory returns a model or ``(model, example_inputs)``.
    """
    if ":" not in target:
        raise TargetError(f"TARGET {target!r} must look like path/to/file.py:factory or package.module:factory")
    where, name = target.rsplit(":", 1)
    if where.endswith(".py") or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise TargetError(f"TARGET {target!r}: no file {path}")
        mod_name = f"_ddgraph_target_{path.stem}"
        sys.path.insert(0, str(path.resolve().parent))
        try:
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except Exception as exc:
            raise TargetError(f"TARGET {target!r}: importing {path} failed: {type(exc).__name__}: {exc}") from None
        finally:
            sys.path.pop(0)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise TargetError(f"TARGET {target!r}: cannot import {where}: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, name, None)
    if factory is None or not callable(factory):
        avail = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise TargetError(f"TARGET {target!r}: {where} has no factory {name!r}; callables: {', '.join(avail)}")
    try:
        made = factory()
    except Exception as exc:
        raise TargetError(f"TARGET {target!r}: the factory raised {type(exc).__name__}: {exc}") from None
    model, inputs = (made if isinstance(made, tuple) and len(made) == 2 else (made, None))
    if not isinstance(model, nn.Module):
        raise TargetError(f"TARGET {target!r}: the factory returned {type(model).__name__}, not an nn.Module")
    return model, inputs, name
