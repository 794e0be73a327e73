"""``python -m ddgraph``: the command line."""
from ddgraph.cli import main

main()
