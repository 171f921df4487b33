"""Small synthetic ScoreSets following the contract of BRIEF/DESIGN, for the stats and report tests.

Each region has a latency; the noise ceiling rises after it, and a model explains a fraction of the
explainable variance that depends on time (``early`` and ``late`` gains), so feedforward-like and
recurrent-like models differ in the late bins.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

LATENCY_MS = {"V4": 50.0, "IT": 80.0}


def make_scoreset(
    model_id: str = "feedforward",
    *,
    benchmark: str = "synthetic-ventral-it-temporal",
    regions: dict[str, int] | None = None,
    n_bins: int = 25,
    bin_ms: float = 10.0,
    early: float = 0.6,
    late: float = 0.3,
    seed: int = 0,
    grid: bool = True,
    aggregates: bool = True,
    layers: tuple[str, ...] = ("V1", "V2", "V4", "IT"),
    n_steps: int = 8,
    n_folds: int = 3,
    nan_sites: int = 1,
    stimulus_draws: int = 0,
) -> xr.Dataset:
    """A ScoreSet with per-site ``r``, ``ceiling``, ``ceiled``, ``r_fold`` and optional aggregates and grid.

    The per-region aggregates lie on an unlabelled ``region`` dim in sorted region order (what
    ``groupby('region')`` gives), with a ``region_name`` coordinate along it naming them.
    """
    regions = regions or {"V4": 12, "IT": 16}
    site_rng = np.random.default_rng(1000)  # the sites' own properties are shared by all models
    model_rng = np.random.default_rng(seed)
    starts = np.arange(n_bins) * bin_ms
    ends = starts + bin_ms
    centres = (starts + ends) / 2
    ids, region_of, ceiling_rows, frac_rows = [], [], [], []
    for region, n in regions.items():
        latency = LATENCY_MS.get(region, 60.0) + site_rng.normal(0, 8, n)
        peak = site_rng.uniform(0.6, 0.9, n)
        for i in range(n):
            ids.append(f"{region.lower()}_{i:03d}")
            region_of.append(region)
            rise = 1 / (1 + np.exp(-(centres - latency[i]) / 6))
            ceiling_rows.append(np.clip(0.05 + (peak[i] - 0.05) * rise + site_rng.normal(0, 0.02, n_bins), 0.01, 1))
            late_weight = 1 / (1 + np.exp(-(centres - latency[i] - 60) / 10))
            frac = (early * (1 - late_weight) + late * late_weight) * rise
            frac_rows.append(np.clip(frac + model_rng.normal(0, 0.05, n_bins), 0.0, 1.0))
    ceiling = np.array(ceiling_rows)
    frac = np.array(frac_rows)
    r = np.sqrt(frac * ceiling)
    ceiled = r**2 / ceiling
    for k in range(min(nan_sites, len(ids))):
        r[k, k % n_bins] = np.nan
        ceiled[k, k % n_bins] = np.nan
    r_fold = r[None] + model_rng.normal(0, 0.02, (n_folds, *r.shape))
    ds = xr.Dataset(
        {
            "r": (("neuroid", "time_bin"), r),
            "ceiling": (("neuroid", "time_bin"), ceiling),
            "ceiled": (("neuroid", "time_bin"), ceiled),
            "r_fold": (("fold", "neuroid", "time_bin"), r_fold),
        },
        coords={
            "neuroid_id": ("neuroid", ids),
            "region": ("neuroid", region_of),
            "time_bin_start": ("time_bin", starts),
            "time_bin_end": ("time_bin", ends),
        },
        attrs={
            "benchmark": benchmark,
            "benchmark_version": "1",
            "model_id": model_id,
            "weights_sha256": f"{seed:064x}",
            "dataset_sha256": "ab" * 32,
            "neurofit_version": "0.1.0",
            "seed": 0,
            "split_scheme": "kfold",
            "temporal_mode": "per_bin",
            "metric": "pls",
            "normalisation": "r2_over_ceiling",
            "mapping_policy": "one_to_one",
            "created": "2026-01-01T00:00:00+00:00",
            "stimulus_on_ms": 0.0,
            "stimulus_off_ms": 100.0,
        },
    )
    if stimulus_draws:
        # per-site scores on resampled stimuli: the same stimulus draws for every model (one shared key)
        draw_rng = np.random.default_rng(seed + 7)
        ds["r_boot"] = (("boot", "neuroid", "time_bin"),
                        r[None] + draw_rng.normal(0, 0.03, (stimulus_draws, *r.shape)))
        ds["ceiled_boot"] = (("boot", "neuroid", "time_bin"),
                             ceiled[None] + draw_rng.normal(0, 0.03, (stimulus_draws, *r.shape)))
        ds.attrs["stimulus_draws"] = f"toy stimuli, {stimulus_draws} draws, seed 0"
    names = sorted(regions)
    if aggregates:
        med = np.stack([np.nanmedian(ceiled[np.array(region_of) == name], axis=0) for name in names])
        ds["median_ceiled"] = (("region", "time_bin"), med)
        ds["median_ceiled_low"] = (("region", "time_bin"), med - 0.05)
        ds["median_ceiled_high"] = (("region", "time_bin"), med + 0.05)
        ds["median_ceiled_sites_low"] = (("region", "time_bin"), med - 0.08)
        ds["median_ceiled_sites_high"] = (("region", "time_bin"), med + 0.08)
        ds = ds.assign_coords(region_name=("region", names))
    if grid:
        layer_peak = {"V4": 2, "IT": 3}
        values = np.full((len(names), len(layers), n_steps, n_bins), np.nan)
        for ri, name in enumerate(names):
            for li in range(len(layers)):
                closeness = 1.0 / (1 + abs(li - layer_peak.get(name, 2)))
                for step in range(li, n_steps):  # steps before a layer's arrival are absent
                    values[ri, li, step] = closeness * (0.3 + 0.05 * step) + model_rng.normal(0, 0.01, n_bins)
        ds["grid_ceiled"] = (("region", "layer", "step", "time_bin"), values)
        ds = ds.assign_coords(layer=("layer", list(layers)), step=("step", np.arange(n_steps)))
    return ds
