"""PLS, RidgeCV and Ridge keep scikit-learn's estimator contract by type: clone, Pipeline, GridSearchCV, checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from neurofit.regression import PLS, Ridge, RidgeCV, get_backend, set_backend

ESTIMATORS = [PLS(n_components=1, device="cpu"), RidgeCV(device="cpu"), Ridge(alpha=0.5, device="cpu")]

# The checks that do not apply, each with its reason (everything else of sklearn's suite must pass).
NOT_APPLICABLE = {
    "check_estimators_empty_data_messages": "the ValueError for 0 features is worded 'needs at least 1 feature and "
                                            "1 target, got 0 feature(s)', not with sklearn's phrase",
    "check_non_transformer_estimators_n_iter": "PLS's exact solver counts inverse-iteration steps in n_iter_; a "
                                               "component that the Rayleigh-Ritz step already solves takes 0",
}


def _expected_failures(estimator):
    return {k: v for k, v in NOT_APPLICABLE.items() if k != "check_non_transformer_estimators_n_iter"
            or isinstance(estimator, PLS)}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _data(n=60, p=6, q=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    return X, X[:, :2] @ rng.normal(size=(2, q)) + 0.1 * rng.normal(size=(n, q))


@pytest.mark.parametrize("make", [lambda: PLS(n_components=3), lambda: RidgeCV(), lambda: Ridge(alpha=2.0)])
def test_predict_before_fit_is_sklearns_not_fitted_error(make):
    with pytest.raises(NotFittedError):
        make().predict(np.zeros((2, 3)))


@pytest.mark.parametrize("make", [lambda: PLS(3, device="cpu"), lambda: RidgeCV(device="cpu"),
                                  lambda: Ridge(alpha=2.0, device="cpu")])
def test_clone_gives_an_unfitted_copy_with_the_same_settings(make):
    X, Y = _data()
    fitted = make().fit(X, Y)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "coef_")
    np.testing.assert_array_equal(copy.fit(X, Y).predict(X), fitted.predict(X))
    assert fitted.n_features_in_ == 6 and repr(copy).startswith(type(copy).__name__ + "(")


def test_pls_in_a_pipeline_equals_pls_on_the_scaled_features():
    X, Y = _data()
    pipe = make_pipeline(StandardScaler(), PLS(n_components=2, device="cpu")).fit(X, Y)
    scaler = StandardScaler().fit(X)
    direct = PLS(n_components=2, device="cpu").fit(scaler.transform(X), Y)
    np.testing.assert_allclose(pipe.predict(X), direct.predict(scaler.transform(X)), rtol=1e-12, atol=1e-12)


def test_grid_search_chooses_pls_components_and_ridge_penalty():
    X, Y = _data(n=80, p=8)
    search = GridSearchCV(PLS(device="cpu"), {"n_components": [1, 2, 4]}, cv=KFold(4)).fit(X, Y)
    assert search.best_params_["n_components"] >= 2  # Y depends on two directions of X
    assert isinstance(search.best_estimator_, PLS) and search.best_estimator_.n_features_in_ == 8
    ridge = GridSearchCV(Ridge(device="cpu"), {"alpha": [1e-3, 1e3, 1e6]}, cv=KFold(4)).fit(X, Y)
    assert ridge.best_params_["alpha"] == 1e-3  # nearly noiseless: the smallest penalty fits best


@pytest.mark.parametrize("make", [lambda **kw: PLS(3, **kw), lambda **kw: RidgeCV(**kw),
                                  lambda **kw: Ridge(alpha=1.0, **kw)])
def test_every_estimator_predicts_float64_numpy_for_numpy_and_a_tensor_for_a_tensor(make):
    X, Y = _data()
    for dtype in (torch.float64, torch.float32):
        model = make(device="cpu", dtype=dtype).fit(X.astype(np.float32), Y)
        out = model.predict(X)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == Y.shape
        tensor_out = model.predict(torch.as_tensor(X))
        assert isinstance(tensor_out, torch.Tensor) and tensor_out.dtype == torch.float64
    assert make(device="cpu").fit(X, Y[:, 0]).predict(X).shape == (60,)  # 1-d y in, 1-d predictions out


def test_predict_names_the_expected_number_of_features():
    X, Y = _data()
    model = RidgeCV(device="cpu").fit(X, Y)
    with pytest.raises(ValueError, match="X has 5 features, but RidgeCV is expecting 6 features as input"):
        model.predict(X[:, :5])


def test_backend_is_chosen_once_by_a_context_or_the_estimator():
    X, Y = _data()
    with set_backend("cpu", torch.float32):
        assert get_backend() == (torch.device("cpu"), torch.float32)
        inside = RidgeCV().fit(X, Y)
        explicit = RidgeCV(dtype=torch.float64).fit(X, Y)  # the estimator's own setting wins
    assert inside.coef_.dtype == torch.float32 and explicit.coef_.dtype == torch.float64
    assert get_backend("cpu") == (torch.device("cpu"), torch.float64)  # the context ended
    assert PLS(3, device="cpu").fit(X, Y).get_params()["dtype"] is None  # resolved at fit, not stored
