"""The fixed filters and time courses of the ``synthetic-ventral`` generator (:mod:`neurofit.data.synthetic_generator`).

Pure functions with no random weights: the V1 stage (quadrature Gabor energy and colour opponents on
64 px images, pooled to 16 x 16) and the transient/sustained response time courses averaged per 10 ms bin.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

IMAGE_SIZE = 64
BIN_MS = 10.0
N_BINS = 25


def bin_kernels(latency_ms: np.ndarray, tau_rise: float, tau_decay: float, tau_sustain: float,
                 sustain: float) -> tuple[np.ndarray, np.ndarray]:
    """Transient and sustained time courses averaged over each 10 ms bin, ``[N_BINS, n_units]``.

    Transient: a difference of exponentials scaled to peak 1; sustained: ``sustain * (1 - exp(-t/tau))``;
    both zero before the unit's latency. Averaging over 1 ms samples lets sub-bin latencies grade the onset.

    Example
    -------
    >>> transient, sustained = bin_kernels(np.array([45.0, 60.0]), 3.0, 25.0, 30.0, 0.55)
    >>> transient.shape, bool((transient[:4] == 0).all()), bool(transient[5, 0] > 0 and transient[5, 1] == 0)
    ((25, 2), True, True)
    """
    t = np.arange(N_BINS * BIN_MS) + 0.5  # 1 ms sample centres
    s = np.maximum(t[:, None] - latency_ms[None, :], 0.0)
    transient = np.exp(-s / tau_decay) - np.exp(-s / tau_rise)
    t_peak = np.log(tau_decay / tau_rise) * tau_decay * tau_rise / (tau_decay - tau_rise)
    transient /= np.exp(-t_peak / tau_decay) - np.exp(-t_peak / tau_rise)
    sustained = sustain * (1.0 - np.exp(-s / tau_sustain))
    per_bin = int(BIN_MS)
    return (transient.reshape(N_BINS, per_bin, -1).mean(axis=1),
            sustained.reshape(N_BINS, per_bin, -1).mean(axis=1))


def gabor_bank(size: int) -> np.ndarray:
    """Complex Gabor filters (4 orientations x wavelengths 4 and 8 px) as 2-D FFTs, ``[8, size, size]``.

    Example
    -------
    >>> bank = gabor_bank(16)
    >>> bank.shape, bank.dtype, bool(np.allclose(bank[:, 0, 0], 0, atol=1e-6))  # zero mean: no DC response
    ((8, 16, 16), dtype('complex64'), True)
    """
    c = np.arange(size) - size // 2
    y, x = np.meshgrid(c, c, indexing="ij")
    filters = []
    for wavelength in (4.0, 8.0):
        sigma = 0.5 * wavelength
        for k in range(4):
            a = np.pi * k / 4
            along = x * np.cos(a) + y * np.sin(a)
            g = np.exp(-(x**2 + y**2) / (2 * sigma**2)) * np.exp(2j * np.pi * along / wavelength)
            g -= g.mean()  # no response to uniform fields
            g /= np.abs(g).sum()
            filters.append(sfft.fft2(np.fft.ifftshift(g)).astype(np.complex64))
    return np.stack(filters)


def gaussian_fft(size: int, sigma: float) -> np.ndarray:
    """A normalised Gaussian blur of width ``sigma`` px as a 2-D FFT, ``[size, size]``.

    Example
    -------
    >>> g = gaussian_fft(16, 2.0)
    >>> g.shape, round(float(g[0, 0].real), 5)  # unit sum: the mean of an image is kept
    ((16, 16), 1.0)
    """
    c = np.arange(size) - size // 2
    y, x = np.meshgrid(c, c, indexing="ij")
    g = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return sfft.fft2(np.fft.ifftshift(g / g.sum())).astype(np.complex64)


PAD = 80  # images are zero-padded from 64 to 80 px before filtering: no wrap-around at the borders
_GABORS = gabor_bank(PAD)
_BLUR = gaussian_fft(PAD, 2.0)


def v1_maps(images: np.ndarray) -> np.ndarray:
    """V1 energy and colour maps of uint8 RGB images ``[N, 64, 64, 3]``, pooled to 16 x 16: ``[N, 14, 16, 16]``.

    Channels: 8 Gabor energies (4 orientations x 2 wavelengths, on luminance), rectified red-green and
    blue-yellow opponents (2 + 2) and rectified blurred luminance (2).

    Example
    -------
    >>> v1_maps(np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)).shape
    (2, 14, 16, 16)
    """
    x = images.astype(np.float32) / 255.0
    p = (PAD - IMAGE_SIZE) // 2
    chans = np.zeros((len(x), 3, PAD, PAD), dtype=np.float32)
    inner = (slice(None), slice(p, p + IMAGE_SIZE), slice(p, p + IMAGE_SIZE))
    chans[:, 0][inner] = x.mean(axis=-1) - 0.5  # luminance
    chans[:, 1][inner] = x[..., 0] - x[..., 1]  # red-green
    chans[:, 2][inner] = x[..., 2] - 0.5 * (x[..., 0] + x[..., 1])  # blue-yellow
    spec = sfft.fft2(chans)
    energy = np.abs(sfft.ifft2(spec[:, :1] * _GABORS[None]))
    blurred = sfft.ifft2(spec * _BLUR).real
    colour, lum_blur = blurred[:, 1:], blurred[:, :1]
    maps = np.concatenate([energy, np.maximum(colour, 0), np.maximum(-colour, 0),
                           np.maximum(lum_blur, 0), np.maximum(-lum_blur, 0)], axis=1)
    maps = maps[:, :, p:p + IMAGE_SIZE, p:p + IMAGE_SIZE].astype(np.float64)
    n, c = maps.shape[:2]
    return maps.reshape(n, c, 16, 4, 16, 4).mean(axis=(3, 5))


__all__ = ["BIN_MS", "IMAGE_SIZE", "N_BINS", "PAD", "bin_kernels", "gabor_bank", "gaussian_fft", "v1_maps"]
