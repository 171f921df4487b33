"""Suite-wide settings for the tests and the doctests of ``neurofit/`` (test helpers: ``tests/conftest.py``)."""

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The suite's convolutions and fits are small: on a 2-core machine one thread runs them faster and
    # steadier than two contending pools (torch's and the BLAS under numpy/scipy spin-wait; measured on the
    # recurrent zoo tests: 160 s -> 7 s under load). Denormals are flushed as on any CPU run of neurofit.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(previous)
