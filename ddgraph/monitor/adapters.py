"""Thin adapters: the :class:`~ddgraph.monitor.Monitor` as a transformers ``Trainer`` callback and as a
Lightning callback. Each library is imported only when its adapter is asked for; a missing one is named.

    trainer = Trainer(..., callbacks=[trainer_callback(logdir="runs/m")])
    pl.Trainer(..., callbacks=[lightning_callback(logdir="runs/m")])

Both read after every optimiser step (the libraries' step-end hooks, after gradient accumulation) and log
the training loss the library reports.
"""
from __future__ import annotations

import os

from ddgraph._optional import require
from ddgraph.errors import MissingDependency
from ddgraph.monitor.monitor import Monitor


def trainer_callback(logdir: str | None = None, **monitor_options):
    """A ``transformers.TrainerCallback`` that runs a Monitor on the Trainer's model (logdir default:
    ``<output_dir>/ddgraph-monitor``); ``.monitor`` holds it once training started."""
    transformers = require("transformers", "arch", "the transformers Trainer adapter")

    class DDGraphMonitorCallback(transformers.TrainerCallback):
        monitor: Monitor | None = None

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.monitor = Monitor(model, None, logdir=logdir or os.path.join(args.output_dir, "ddgraph-monitor"),
                                   **monitor_options)

        def on_step_end(self, args, state, control, **kwargs):
            self.monitor.step()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.monitor is not None and logs and "loss" in logs:
                self.monitor.log(loss=logs["loss"])

        def on_train_end(self, args, state, control, **kwargs):
            self.monitor.close()

    return DDGraphMonitorCallback()


def _lightning():
    import importlib

    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise MissingDependency("the Lightning adapter needs lightning (or pytorch_lightning), which is not installed: "
                            "pip install lightning (it is no ddgraph extra: install the version your training uses)")


def lightning_callback(logdir: str = "ddgraph-monitor", **monitor_options):
    """A Lightning ``Callback`` that runs a Monitor on the LightningModule; ``.monitor`` holds it."""
    pl = _lightning()

    class DDGraphMonitorCallback(pl.Callback):
        monitor: Monitor | None = None

        def on_train_start(self, trainer, pl_module):
            self.monitor = Monitor(pl_module, None, logdir=logdir, **monitor_options)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.monitor.step()
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if loss is not None:
                self.monitor.log(loss=float(loss))

        def on_train_end(self, trainer, pl_module):
            self.monitor.close()

    return DDGraphMonitorCallback()
