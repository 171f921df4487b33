"""neurofit's top-level names are exactly its documented API: listed in the package docstring, each with an example."""

from __future__ import annotations

import inspect
import re

import neurofit


def test_every_public_name_is_listed_in_the_package_docstring_and_nothing_else_is():
    documented = set(re.findall(r":(?:func|class):`(\w+)`", neurofit.__doc__))
    assert documented == set(neurofit.__all__) - {"__version__"}


def test_every_public_name_resolves_and_carries_a_runnable_example():
    for name in neurofit.__all__[1:]:
        obj = getattr(neurofit, name)
        assert name in dir(neurofit)
        doc = inspect.getdoc(obj) or ""
        assert ">>>" in doc, f"neurofit.{name} has no example in its docstring"


def test_internal_helpers_stay_in_their_modules():
    for name in ("average_repetitions", "probe_arrival", "extract_activations", "ActivationSet", "fit_and_score"):
        assert not hasattr(neurofit, name), name
    from neurofit.data.recording import average_repetitions  # noqa: F401  (still importable where it lives)
    from neurofit.extract.extract import extract_activations  # noqa: F401
