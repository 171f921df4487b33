"""The streamed layer x step x bin grid equals the whole-RDM and whole-Gram definitions."""

import numpy as np
import pytest
import torch

from neurofit.metrics import cka, rdm, rsa
from neurofit.metrics.grid import compare_grid


def _representations(seed=0, n=37):
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, 5, generator=g, dtype=torch.float64)
    # positive, offset features (ReLU-like, non-zero means) stress the rank-one corrections
    model = torch.relu(latent @ torch.randn(3, 5, 9, generator=g, dtype=torch.float64) + 0.5) + 2.0
    neural = latent @ torch.randn(2, 5, 6, generator=g, dtype=torch.float64) + torch.randn(2, n, 6, generator=g,
                                                                                          dtype=torch.float64)
    return model, neural


@pytest.mark.parametrize("block", [5, 64])
def test_grid_equals_whole_matrix_definitions_in_float64(block):
    model, neural = _representations()
    out = compare_grid(model, neural, block=block, dtype=torch.float64)
    dm, dn = rdm.correlation_rdm(model), rdm.correlation_rdm(neural)
    for method in ("cosine", "corr"):
        np.testing.assert_allclose(getattr(out, method), rsa.compare_rdms(dm, dn, method).numpy(), rtol=0, atol=1e-12)
    gm, gn = cka.gram_linear(model), cka.gram_linear(neural)
    np.testing.assert_allclose(out.cka, cka.cka_from_grams(gm, gn).numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out.cka_debiased, cka.cka_from_grams(gm, gn, debiased=True).numpy(), rtol=0,
                               atol=1e-12)


def test_grid_in_float32_is_close_and_widths_may_differ():
    model, neural = _representations(1)
    mixed = [model[0], model[1, :, :4], model[2]]
    out = compare_grid(mixed, neural, block=16)
    ref = rsa.compare_rdms(torch.stack([rdm.correlation_rdm(m) for m in mixed]), rdm.correlation_rdm(neural), "corr")
    np.testing.assert_allclose(out.corr, ref.numpy(), rtol=0, atol=1e-5)
    ref_cka = [cka.linear_cka(m, neural[1], debiased=True) for m in mixed]
    np.testing.assert_allclose(out.cka_debiased[:, 1], [float(v) for v in ref_cka], rtol=0, atol=1e-5)
