"""DDCAdam on a small cross-entropy classifier: gauges discovered from the model, drift compared to Adam.

Run: python examples/ddcadam_classifier.py
"""
import torch

from ddgraph.optim import DDCAdam
from ddgraph.optim.drift import classifier, data, run

torch.set_num_threads(1)
model = classifier()
opt = DDCAdam.from_model(model, data(2, seed=0)[0], lr=1e-3, rel_lr=1e-2)
print("gauges found on the labelled graph:")
for line in opt.discovery.summary():
    print("  ", line)
for name in ("Adam", "DDCAdam"):
    r = run(name, steps=1000)
    print(f"{name:8s} logit shift {r['logit_shift']:.2e}  |d w_bar| {r['row_mean']:.2e}  "
          f"ReLU balance drift {r['relu_balance']:.2e}  test acc {r['test_acc']:.3f}")
