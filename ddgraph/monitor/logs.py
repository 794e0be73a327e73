"""Where the monitor writes: a CSV of scalars and a JSON-lines file of flags (always), TensorBoard
event files (when ``tensorboard`` is installed and asked for) and a Parquet copy of the scalars (pandas
and pyarrow). Rows are written as they come and flushed at each reading: memory does not grow with the run.

Layout of a log directory::

    LOGDIR/scalars.csv      step,tier,layer,metric,value   (tier: stream, norm, factor, gauge, train)
    LOGDIR/flags.jsonl      one Flag per line (kind, step, layer, message, evidence)
    LOGDIR/run.json         what was watched, the cadence, the writers
    LOGDIR/scalars.parquet  (optional) the CSV as a table, written at close
    LOGDIR/events.out.tfevents.*  (optional) TensorBoard scalars ``tier/layer/metric`` and spectra histograms
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from ddgraph._optional import require
from ddgraph.errors import MonitorError

SCALARS, FLAGS, RUN = "scalars.csv", "flags.jsonl", "run.json"
COLUMNS = ("step", "tier", "layer", "metric", "value")


class LogWriter:
    """Streams scalars and flags to ``logdir``; TensorBoard and Parquet only where asked for."""

    def __init__(self, logdir, *, tensorboard: bool = False, parquet: bool = False):
        self.dir = Path(logdir)
        if self.dir.exists() and not self.dir.is_dir():
            raise MonitorError(f"logdir {self.dir}: exists and is not a directory; pass a directory")
        self.tb = None
        if tensorboard:  # a missing extra is named before the run starts
            require("tensorboard", "monitor", "TensorBoard logging (Monitor(tensorboard=True))")
        if parquet:
            require("pandas", "monitor", "the Parquet log (Monitor(parquet=True))")
            require("pyarrow", "monitor", "the Parquet log (Monitor(parquet=True))")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._scalars = open(self.dir / SCALARS, "w", newline="")
            self._flags = open(self.dir / FLAGS, "w")
        except OSError as exc:
            raise MonitorError(f"logdir {self.dir}: cannot write there ({exc.strerror}); pass a writable directory") from None
        self._csv = csv.writer(self._scalars)
        self._csv.writerow(COLUMNS)
        self.parquet = parquet
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(self.dir))

    def describe(self, info: dict) -> None:
        (self.dir / RUN).write_text(json.dumps(info, indent=2, default=str))

    def scalars(self, step: int, tier: str, layer: str, values: dict) -> None:
        for metric, value in values.items():
            v = float(value)
            self._csv.writerow((step, tier, layer, metric, repr(v)))
            if self.tb is not None and math.isfinite(v):
                self.tb.add_scalar(f"{tier}/{layer}/{metric}", v, step)

    def histogram(self, step: int, tag: str, values) -> None:
        if self.tb is not None:
            self.tb.add_histogram(tag, values, step)

    def flag(self, flag) -> None:
        self._flags.write(json.dumps(flag.as_dict(), default=float) + "\n")
        self._flags.flush()
        if self.tb is not None:
            self.tb.add_text(f"flags/{flag.kind}", f"step {flag.step}, {flag.layer}: {flag.message}", flag.step)

    def flush(self) -> None:
        self._scalars.flush()
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        if self._scalars.closed:
            return
        self._scalars.close()
        self._flags.close()
        if self.tb is not None:
            self.tb.close()
        if self.parquet:
            read_scalars(self.dir).to_parquet(self.dir / "scalars.parquet", index=False)


def _logfile(logdir, name: str) -> Path:
    path = Path(logdir) / name
    if not path.is_file():
        raise MonitorError(f"{logdir}: no {name} here; is it a directory a ddgraph Monitor wrote "
                           "(Monitor(model, optimizer, logdir=...))?")
    return path


def read_rows(logdir) -> list[dict]:
    """The scalar rows of a log directory as dicts (no pandas needed)."""
    with open(_logfile(logdir, SCALARS), newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise MonitorError(f"{logdir}/{SCALARS}: columns {reader.fieldnames}, expected {list(COLUMNS)}")
        try:
            return [dict(r, step=int(r["step"]), value=float(r["value"])) for r in reader]
        except (TypeError, ValueError) as exc:
            raise MonitorError(f"{logdir}/{SCALARS}: a row does not parse ({exc})") from None


def read_scalars(logdir):
    """The scalars as a pandas DataFrame (columns step, tier, layer, metric, value)."""
    pd = require("pandas", "frames", "read_scalars")
    return pd.DataFrame(read_rows(logdir), columns=list(COLUMNS))


def read_flags(logdir) -> list[dict]:
    """The flags of a log directory, in the order they fired."""
    out = []
    with open(_logfile(logdir, FLAGS)) as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    raise MonitorError(f"{logdir}/{FLAGS}: line {i} is not JSON") from None
    return out
