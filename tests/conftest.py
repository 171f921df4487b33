"""Suite-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # The suite's convolutions are tiny: on a 2-core machine one thread runs them faster and steadier
    # than two threads contending (measured on the recurrent zoo tests: 160 s -> 7 s under load).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
