"""The hidden seeded network behind ``synthetic-ventral`` (:mod:`neurofit.data.synthetic`).

A seeded random network that is *not* in the model zoo:

1. **V1 stage**: a fixed bank of quadrature Gabor filters (4 orientations x 2 wavelengths, energy) on
   luminance plus rectified red-green and blue-yellow opponent channels, pooled to a 16 x 16 grid and
   divisively normalised.
2. **V4 stage**: a random 3 x 3 convolution with a threshold, pooled to 8 x 8, read by 128 V4 units with
   local, spatially Gaussian receptive fields. Each unit has a latency (40-70 ms) and two drives: one
   with a transient time course (difference of exponentials), one with a sustained one.
3. **IT stage**: 256 units driven by dense random projections of the V4 drives (latencies 70-110 ms),
   integrated in 10 ms steps as a leaky rate network. Recurrent input comes through a random matrix
   (operator norm, hence spectral radius, 0.9 < 1; a mean negative part acts as global inhibition) with
   a 20 ms loop delay and multiplies each unit's feedforward drive by a gain ``1 + tanh(.)`` in (0, 2):
   bounded and stable, and nonlinear enough that a linear readout of the feedforward sweep cannot stand
   in for it. The late IT response thus depends on recurrent processing; with the recurrence ablated
   (feedforward sweep only) the early bins are unchanged and the late ones differ.

Sites read the hidden features of their region affinely, per 10 ms bin, through sparse weights on the
8-13 units whose latency is closest to the site's own, followed by a softplus (a mild nonlinearity:
responses sit mostly on its near-linear part), giving rates in spikes/s (the Poisson counts are drawn in
:mod:`neurofit.data.synthetic`). All normalisation constants are fitted once on the generator's own
calibration images, so the generator is a fixed function of each image (responses to one image do not
depend on which other images are generated with it).

The fixed filters and time courses are in :mod:`neurofit.data.synthetic_kernels`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from neurofit.data import synthetic_stimuli as stim
from neurofit.data.synthetic_kernels import IMAGE_SIZE, N_BINS, bin_kernels, v1_maps
from neurofit.errors import NeurofitError

# Random streams, one per purpose, so that changing one quantity never reshuffles another.
_NET_STREAM = 21
_SITE_STREAM = 23


def blas_single_thread() -> Any:
    """A context with one BLAS thread (threadpoolctl), in which the generator runs.

    Example
    -------
    >>> with blas_single_thread():
    ...     pass
    """
    # One BLAS thread: the matrices are small, a shared machine oversubscribed by BLAS threads runs many
    # times slower, and results then do not depend on the thread count.
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


@functools.lru_cache(maxsize=4)
def _calibration_v1(seed: int) -> np.ndarray:
    """V1 maps of the generator's calibration images: a catalogue of its own, one V3 view per object.

    The V1 stage has no random weights, so its output depends on the seed only through the images;
    memoised because every generator of a seed needs it.
    """
    table = stim.sample_views({3: 1}, seed=seed + 7919)
    images = stim.render_views(table, seed=seed + 7919, image_size=IMAGE_SIZE)
    v1 = VentralGenerator._v1_maps(images)
    v1.setflags(write=False)
    return v1


@dataclass(frozen=True)
class GeneratorFeatures:
    """Hidden features of the generator per 10 ms bin: V4 units ``[N, T, 128]``, IT units ``[N, T, 256]``."""

    v4: np.ndarray
    it: np.ndarray


class VentralGenerator:
    """The hidden seeded network behind ``synthetic-ventral`` (see the module docstring).

    Parameters
    ----------
    seed : int
        Seed of every weight, latency and site readout.
    n_v4, n_it : int
        Number of V4 and IT recording sites. Site ``k`` of a region is the same for every ``n`` > k.
    recurrent_gain : float
        Operator norm of the IT recurrent matrix, which bounds its spectral radius (must be < 1).

    Example
    -------
    >>> gen = VentralGenerator(seed=0, n_v4=2, n_it=3)
    >>> images, _ = stim.render_stimuli({0: 1}, image_size=64)
    >>> gen.rates(images[:4]).shape  # (images, sites, bins)
    (4, 5, 25)
    """

    n_v4_units = 128
    n_it_units = 256
    v4_latency = (40.0, 70.0)
    it_latency = (70.0, 110.0)
    loop_delay_bins = 2
    leak = 0.5  # Euler step dt / tau with tau = 20 ms

    def __init__(self, seed: int = 0, n_v4: int = 40, n_it: int = 80, recurrent_gain: float = 0.9) -> None:
        if n_v4 < 0 or n_it < 0 or n_v4 + n_it == 0:
            raise NeurofitError(f"need at least one site; got n_v4={n_v4}, n_it={n_it}")
        if not 0 <= recurrent_gain < 1:
            raise NeurofitError(f"recurrent_gain must be in [0, 1) for stable dynamics, got {recurrent_gain}")
        self.seed = int(seed)
        self.n_v4 = int(n_v4)
        self.n_it = int(n_it)
        self.recurrent_gain = float(recurrent_gain)
        rng = np.random.default_rng([self.seed, _NET_STREAM])
        n_v1 = 8 + 4 + 2
        n_conv = 64
        self._conv = rng.normal(0, 1, (n_conv, n_v1, 3, 3)) / np.sqrt(n_v1 * 9)
        grid = np.arange(8) + 0.5
        gy, gx = np.meshgrid(grid, grid, indexing="ij")
        centres = rng.uniform(1.0, 7.0, (self.n_v4_units, 2))
        widths = rng.uniform(1.2, 2.5, self.n_v4_units)
        envelope = np.exp(-((gy[None] - centres[:, 0, None, None]) ** 2 + (gx[None] - centres[:, 1, None, None])
                            ** 2) / (2 * widths[:, None, None] ** 2))
        w_a = rng.normal(0, 1, (self.n_v4_units, n_conv))
        # The sustained drive shares half its tuning with the transient one: V4 changes over time but
        # stays recognisably the same unit.
        w_b = 0.7 * w_a + 0.7 * rng.normal(0, 1, (self.n_v4_units, n_conv))
        self._v4_a = (envelope[..., None] * w_a[:, None, None, :]).reshape(self.n_v4_units, -1)
        self._v4_b = (envelope[..., None] * w_b[:, None, None, :]).reshape(self.n_v4_units, -1)
        self._it_a = rng.normal(0, 1, (self.n_it_units, self.n_v4_units)) / np.sqrt(self.n_v4_units)
        self._it_b = 0.6 * self._it_a + 0.8 * rng.normal(0, 1, self._it_a.shape) / np.sqrt(self.n_v4_units)
        w = rng.normal(0, 1, (self.n_it_units, self.n_it_units)) / np.sqrt(self.n_it_units)
        w -= 1.5 / self.n_it_units  # global inhibition: units compete, which keeps recurrence nonlinear
        self._w_rec = w * (self.recurrent_gain / np.linalg.norm(w, 2))
        self.v4_unit_latency = np.sort(rng.uniform(*self.v4_latency, self.n_v4_units))
        self.it_unit_latency = np.sort(rng.uniform(*self.it_latency, self.n_it_units))
        self._v4_kt, self._v4_ks = bin_kernels(self.v4_unit_latency, 3.0, 25.0, 30.0, 0.55)
        self._it_kt, self._it_ks = bin_kernels(self.it_unit_latency, 4.0, 30.0, 40.0, 0.5)
        with blas_single_thread():
            self._calibrate()
            self._draw_sites()

    # -- static (time-free) stages ----------------------------------------------------------------------
    def _v1(self, images: np.ndarray) -> np.ndarray:
        return self._v1_maps(images)

    @staticmethod
    def _v1_maps(images: np.ndarray) -> np.ndarray:
        """V1 energy/colour maps pooled to 16 x 16: ``[N, 14, 16, 16]`` (computed in chunks of 64 images)."""
        return np.concatenate([v1_maps(images[i:i + 64]) for i in range(0, len(images), 64)])

    def _conv3x3(self, v1: np.ndarray) -> np.ndarray:
        """Same-size 3 x 3 convolution ``[N, C, 16, 16] -> [N, K, 16, 16]`` as nine small matrix products."""
        n, c, h, w = v1.shape
        padded = np.pad(v1, ((0, 0), (0, 0), (1, 1), (1, 1))).transpose(0, 2, 3, 1)  # N, H+2, W+2, C
        out = np.zeros((n, h, w, len(self._conv)))
        for i in range(3):
            for j in range(3):
                out += padded[:, i:i + h, j:j + w] @ self._conv[:, :, i, j].T
        return out.transpose(0, 3, 1, 2)

    def _v4_static(self, images: np.ndarray | None, v1: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Transient and sustained V4 drives before thresholding, ``[N, 128]`` each (chunks of 64 images)."""
        v1 = self._v1(images) if v1 is None else v1
        parts = []
        for i in range(0, len(v1), 64):
            conv = np.maximum(self._conv_input(v1[i:i + 64]) - self._conv_threshold[None, :, None, None], 0.0)
            pooled = conv.reshape(len(conv), conv.shape[1], 8, 2, 8, 2).mean(axis=(3, 5))
            flat = pooled.transpose(0, 2, 3, 1).reshape(len(conv), -1)
            parts.append(np.concatenate([flat @ self._v4_a.T, flat @ self._v4_b.T], axis=1))
        both = np.concatenate(parts)
        return both[:, :self.n_v4_units], both[:, self.n_v4_units:]

    def _conv_input(self, v1: np.ndarray) -> np.ndarray:
        v1 = v1 / self._v1_scale[None, :, None, None]
        v1 = v1 / (0.5 + v1.mean(axis=1, keepdims=True))  # divisive normalisation across channels
        return self._conv3x3(v1)

    def _calibrate(self) -> None:
        """Fit scales and thresholds on the generator's own images so every stage has unit-scale drives."""
        v1 = _calibration_v1(self.seed)
        self._v1_scale = v1.mean(axis=(0, 2, 3)) + 1e-9
        self._conv_threshold = np.quantile(self._conv_input(v1), 0.6, axis=(0, 2, 3))
        a, b = self._v4_static(None, v1)
        self._v4_stats = self._threshold_stats(a), self._threshold_stats(b)
        a, b = self._rectify(a, self._v4_stats[0]), self._rectify(b, self._v4_stats[1])
        self._it_stats = self._threshold_stats(a @ self._it_a.T), self._threshold_stats(b @ self._it_b.T)
        self._calibration_v1 = v1

    @staticmethod
    def _threshold_stats(drive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Threshold at the 40th percentile (units respond to ~60% of images); unit sd after rectifying.
        threshold = np.quantile(drive, 0.4, axis=0)
        scale = np.maximum(drive - threshold, 0).std(axis=0) + 1e-9
        return threshold, scale

    @staticmethod
    def _rectify(drive: np.ndarray, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        return np.maximum(drive - stats[0], 0.0) / stats[1]

    # -- dynamics ---------------------------------------------------------------------------------------
    def features(self, images: np.ndarray, ablate_recurrence: bool = False) -> GeneratorFeatures:
        """Hidden V4 and IT features per 10 ms bin for uint8 images ``[N, 64, 64, 3]``.

        With ``ablate_recurrence`` the IT recurrent matrix is zero: the feedforward sweep alone.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or images.dtype != np.uint8:
            raise NeurofitError(
                f"the generator takes uint8 RGB images of shape (N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3); got "
                f"{images.dtype} {images.shape}"
            )
        with blas_single_thread():
            return self._dynamics(*self._v4_static(images), ablate_recurrence)

    def _dynamics(self, a: np.ndarray, b: np.ndarray, ablate_recurrence: bool) -> GeneratorFeatures:
        a, b = self._rectify(a, self._v4_stats[0]), self._rectify(b, self._v4_stats[1])
        v4 = a[:, None, :] * self._v4_kt[None] + b[:, None, :] * self._v4_ks[None]
        ia = self._rectify(a @ self._it_a.T, self._it_stats[0])
        ib = self._rectify(b @ self._it_b.T, self._it_stats[1])
        drive = ia[:, None, :] * self._it_kt[None] + ib[:, None, :] * self._it_ks[None]
        w_rec = np.zeros_like(self._w_rec) if ablate_recurrence else self._w_rec
        h = np.zeros_like(drive)
        state = np.zeros_like(drive[:, 0])
        d = self.loop_delay_bins
        for t in range(N_BINS):
            # Recurrent input multiplies the feedforward drive (gain in (0, 2)): a unit never fires before
            # its own input arrives, and its late response is a nonlinear function of the population.
            gate = 1.0 + np.tanh(2.0 * (h[:, t - d] @ w_rec.T)) if t >= d else 1.0
            state = (1 - self.leak) * state + self.leak * drive[:, t] * gate
            h[:, t] = state
        return GeneratorFeatures(v4=v4, it=h)

    # -- sites ------------------------------------------------------------------------------------------
    def _draw_sites(self) -> None:
        """Sparse readouts: each site reads 8-13 units of its region whose latency is nearest its own."""
        regions = [("V4", self.n_v4, self.v4_latency, self.v4_unit_latency, self._v4_kt + self._v4_ks),
                   ("IT", self.n_it, self.it_latency, self.it_unit_latency, self._it_kt + self._it_ks)]
        calibration = self._dynamics(*self._v4_static(None, self._calibration_v1), False)
        window = slice(7, 17)  # 70-170 ms
        sites = []
        for r, (region, n, (lo, hi), unit_latency, kernels) in enumerate(regions):
            feats = calibration.v4 if region == "V4" else calibration.it
            for k in range(n):
                rng = np.random.default_rng([self.seed, _SITE_STREAM, r, k])
                latency = rng.uniform(lo, hi)
                n_units = int(rng.integers(8, 14))
                units = np.argsort(np.abs(unit_latency - latency), kind="stable")[:n_units]
                weights = rng.normal(0, 1, n_units)
                z = feats[:, :, units] @ weights
                onset = kernels[:, units].mean(axis=1)
                sites.append({
                    "neuroid_id": f"{region}_{k:03d}", "region": region, "units": units, "weights": weights,
                    "latency_ms": latency, "gain": rng.uniform(20.0, 50.0), "offset": rng.uniform(-2.6, -1.6),
                    "evoked": rng.uniform(1.0, 2.5), "selectivity": rng.uniform(0.2, 0.7),
                    # image-independent parts of the drive, fixed on the calibration images
                    "onset": onset / onset[window].mean(), "z_mean": z.mean(axis=0),
                    "z_scale": z[:, window].mean(axis=1).std() + 1e-9,
                })
        self.sites = sites

    def site_table(self) -> pd.DataFrame:
        """One row per site: ``neuroid_id, region, latency_ms, gain, baseline_rate`` (spikes/s)."""
        rows = []
        for s in self.sites:
            rows.append({"neuroid_id": s["neuroid_id"], "region": s["region"], "latency_ms": s["latency_ms"],
                         "gain": s["gain"], "baseline_rate": s["gain"] * np.logaddexp(0.0, s["offset"])})
        return pd.DataFrame(rows)

    def rates_from_features(self, features: GeneratorFeatures) -> np.ndarray:
        """Expected firing rates (spikes/s) ``[N, n_sites, N_BINS]`` from hidden features.

        Per site and bin the drive is affine in the features, ``offset + (evoked - offset) * onset(t) +
        selectivity * (w . f(t) - mean(t)) / scale`` (``onset`` and ``mean`` are image-independent time
        courses; ``evoked`` is the mean drive in 70-170 ms); the rate is ``gain * softplus(drive)``, which
        is nearly linear where the responses live.
        """
        out = np.empty((features.v4.shape[0], len(self.sites), N_BINS))
        for j, s in enumerate(self.sites):
            z = (features.v4 if s["region"] == "V4" else features.it)[:, :, s["units"]] @ s["weights"]
            selective = s["selectivity"] * (z - s["z_mean"]) / s["z_scale"]
            drive = s["offset"] + (s["evoked"] - s["offset"]) * s["onset"] + selective
            out[:, j] = s["gain"] * np.logaddexp(0.0, drive)
        return out

    def rates(self, images: np.ndarray, ablate_recurrence: bool = False) -> np.ndarray:
        """Expected firing rates (spikes/s) ``[N, n_sites, N_BINS]`` for uint8 images ``[N, 64, 64, 3]``."""
        return self.rates_from_features(self.features(images, ablate_recurrence=ablate_recurrence))


__all__ = ["GeneratorFeatures", "VentralGenerator", "blas_single_thread"]
