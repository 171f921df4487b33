"""Representation dynamics and adaptive computation: what a recurrent model's recurrence does.

* :mod:`neurofit.analysis.readout`: per-step readout accuracy, first-correct step, movement after
  correct classification, L2 norms, cross-validated probes (Thorat, Doerig & Kietzmann 2023);
* :mod:`neurofit.analysis.geometry`: readout-zone margins, zone centres and axes, transitions;
* :mod:`neurofit.analysis.halting`: ACT halting step vs difficulty, zero-shot extrapolation
  (Graves 2016; Veerabadran et al. 2023);
* :mod:`neurofit.analysis.solution_time`: neural object solution times (Kar et al. 2019);
* :mod:`neurofit.analysis.dynamics`: :func:`analyze_dynamics`, all of the above as one Dataset
  (``neurofit analyze dynamics``); :mod:`neurofit.analysis.figures`: its figures;
* :mod:`neurofit.analysis.robustness`: accuracy per step under pixel noise, FGSM and PGD, dropout at test,
  participation ratio and trajectory stability (Greco et al. 2025; :func:`analyze_robustness`,
  ``neurofit analyze robustness``);
* :mod:`neurofit.analysis.cells`: the six recurrent cells of Nayebi et al. (2018) at matched parameter
  counts (widths, counts, model configs for the cell comparison of ``reports/cells/``).

Example
-------
>>> from neurofit.analysis import analyze_dynamics
>>> ds = analyze_dynamics("bl", "holdout", out="bl-dynamics")  # doctest: +SKIP
"""

from __future__ import annotations

from neurofit._lazy import lazy_exports

__all__ = ["analyze_dynamics", "analyze_robustness"]


# lazy, so `import neurofit.analysis.geometry` does not import torch-heavy modules
__getattr__, __dir__ = lazy_exports(__name__, {"analyze_dynamics": "neurofit.analysis.dynamics",
                                                  "analyze_robustness": "neurofit.analysis.robustness"})
