import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def fixtures():
    return ROOT / "tests" / "fixtures"


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (reproducible reductions), restoring the count after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def conformance_quick():
    """The quick conformance run (~20 s), shared by the claim tests and the generated-docs test."""
    from ddgraph.conformance.runner import run

    return run(quick=True)
