"""Metrics beyond one regression score, as leaf math on tensors (no recordings, no ScoreSets in here).

- :mod:`neurofit.metrics.rdm`: representational dissimilarity matrices (correlation distance,
  crossnobis) batched as GEMMs, and the noise precision crossnobis uses.
- :mod:`neurofit.metrics.rsa`: RDM comparisons (cosine, Pearson, Spearman, Kendall tau-a), pooling,
  rsatoolbox's lower/upper noise ceilings, bootstrap resampling of patterns.
- :mod:`neurofit.metrics.rsa_sites`: RSA's bootstrap over recording sites (model RDM fixed).
- :mod:`neurofit.metrics.rsa_grid`: RSA of every model representation (layer x step) against every region
  and bin, batched on torch.
- :mod:`neurofit.metrics.cka`: linear CKA and its debiased estimator.
- :mod:`neurofit.metrics.reverse`: reverse predictivity (model units predicted from neurons).
- :mod:`neurofit.metrics.partition`: banded ridge and variance partitioning over feature spaces.

rsatoolbox, himalaya and scikit-learn are the oracles of the tests, not engines: every function here
equals its oracle on the same inputs (see ``tests/test_metrics_*.py``).
"""
