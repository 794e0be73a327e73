"""The selection rule (Theorem 3, paper §5.1) on full Fisher spectra: Table 8 and the weight boundary.

Run: python examples/slt_selection_rule.py
"""
from ddgraph.slt import cases


def main():
    for row in cases.table8():
        print(f"{row['family']}: transversal slope {row['transversal_slope']}, k = {row['k']}, "
              f"1/(2k) = {row['lambda']}, {row['verdict']}; ranks {row['kinds']}")
    wb = cases.weight_boundary()
    for w in wb["windows"]:
        print(f"weight boundary, t in {w['window']}: slopes {w['slopes']} -> with fibre "
              f"{w['with_fibre']}, spectrum alone {w['without_fibre']} (k = {w['without_fibre_k']})")


if __name__ == "__main__":
    main()
