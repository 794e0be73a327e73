"""The training-time observatory: dead-direction observables read while a model trains.

Two or three lines in a plain PyTorch loop::

    from ddgraph.monitor import Monitor
    mon = Monitor(model, optimizer, logdir="runs/exp1")   # hooks; readings follow optimizer.step()
    ...                                                    # train as usual
    mon.close()                                            # flush the logs; mon.flags lists the alarms

Modules, one job each:

- :mod:`~ddgraph.monitor.cadence`: how often each tier reads, and the flag thresholds;
- :mod:`~ddgraph.monitor.stream`: the real-time tier (residual-stream sigma_min, Cor 58; LayerNorm
  kernel alignment, Prop 63), from forward hooks on the pass the loop already runs;
- :mod:`~ddgraph.monitor.factors`: the periodic tier (per-layer K-FAC A and G, streamed empirical Fisher;
  the expected Fisher on demand) and the spectrum summary of a factor;
- :mod:`~ddgraph.monitor.flags`: task expansion (Algorithm 1), rank-collapse early warning, gauge drift;
- :mod:`~ddgraph.monitor.logs`: CSV (always), TensorBoard and Parquet (optional) writers, and the reader;
- :mod:`~ddgraph.monitor.monitor`: :class:`Monitor`, which ties them to a model and an optimiser;
- :mod:`~ddgraph.monitor.adapters`: callbacks for the transformers ``Trainer`` and for Lightning;
- :mod:`~ddgraph.monitor.report`: the timelines of ``ddgraph monitor report LOGDIR``.

docs/MONITOR.md says what each tier reads, what it costs and when each flag is trustworthy.
"""
from ddgraph.monitor.cadence import Cadence
from ddgraph.monitor.flags import Flag
from ddgraph.monitor.logs import read_flags, read_scalars
from ddgraph.monitor.monitor import Monitor

__all__ = ["Cadence", "Flag", "Monitor", "read_flags", "read_scalars"]
