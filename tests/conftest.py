"""Helpers shared by the test files (suite-wide settings are in the repository's root ``conftest.py``)."""

# scripts run inside the Brain-Score virtualenv (they import brainscore_core), not modules of this suite: the
# doctest collector (--doctest-modules) would import them
collect_ignore = ["brainscore_env"]
