"""Work functions the dask tests send to worker processes.

Workers import the module a pickled function comes from. A test module imports the helpers as
``from conftest import ...``, and in a worker that name can resolve to the repository's root ``conftest.py``
(when the session also collected neurofit/'s doctests), so the task never deserialised and the run waited
forever. The functions live here, in a module that imports nothing from the suite.
"""

from __future__ import annotations

import os
import time

import numpy as np


class SlowWeightedSum:
    """A work function holding a large array: unit f returns weights[f] @ data after a pause."""

    def __init__(self, data: np.ndarray, weights: np.ndarray, pause: float) -> None:
        self.data = data
        self.weights = weights
        self.pause = pause

    def __call__(self, unit) -> dict[str, np.ndarray]:
        time.sleep(self.pause)
        return {"value": self.weights[unit.fold] @ self.data, "pid": np.array(os.getpid())}
