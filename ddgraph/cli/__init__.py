"""The ``ddgraph`` command line: one group (:mod:`ddgraph.cli.main`: predict, graph, rules), one
module per further command family."""
from ddgraph.cli import architectures, conformance, ddcadam, inspect, monitor, probe, slt
from ddgraph.cli.main import main

for _cmd in (*probe.commands, slt.slt, ddcadam.ddcadam, conformance.conformance, inspect.inspect,
             architectures.architectures, monitor.monitor):
    main.add_command(_cmd)

__all__ = ["main"]
