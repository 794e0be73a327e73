"""Appendix B.3 cell A: the trajectory-rate readout from a balanced and a gauge-rotated start.

Run: python examples/ddcadam_cell_a.py [steps]
"""
import sys

from ddgraph.optim.cell_a import cell_a_table

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
print(f"{'optimiser':8s} {'start':9s} {'G1 slope':>9s} {'A2 slope':>9s}   (Theorem 21: 2, 2)")
for r in cell_a_table(steps):
    print(f"{r['optimiser']:8s} {r['start']:9s} {r['G1']:9.4f} {r['A2']:9.4f}")
