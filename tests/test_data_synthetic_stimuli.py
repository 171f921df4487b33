"""The procedural stimuli of synthetic-ventral: 8 categories x 8 objects at three variation levels."""

from __future__ import annotations

import numpy as np
import pytest

from neurofit.data import synthetic_stimuli as stim


@pytest.fixture(scope="module")
def rendered() -> tuple[np.ndarray, object]:
    return stim.render_stimuli({0: 1, 3: 2, 6: 2}, seed=0, image_size=32)


def test_catalogue_has_8_categories_of_8_distinct_objects() -> None:
    objects = stim.object_catalog(seed=0)
    assert len(objects) == 64
    assert len({o.name for o in objects}) == 64
    per_category = {c: [o for o in objects if o.category == c] for c in stim.CATEGORIES}
    assert all(len(members) == 8 for members in per_category.values())
    # each object is a distinct shape: its silhouettes differ from every other object's in its family
    grid = np.linspace(-1.2, 1.2, 96)
    u, v = np.meshgrid(grid, grid)
    for members in per_category.values():
        masks = np.stack([stim._shape_mask(o, u, v) for o in members]).reshape(8, -1)
        assert masks.any(axis=1).all(), "every shape covers some area"
        differing = (masks[:, None] != masks[None]).mean(axis=2)
        assert differing[~np.eye(8, dtype=bool)].min() > 0.02


def test_table_has_every_object_at_every_level_with_the_documented_columns(rendered) -> None:
    images, table = rendered
    assert images.shape == (64 * 5, 32, 32, 3) and images.dtype == np.uint8
    for column in ("stimulus_id", "filename", "object_name", "category_name", "variation", "difficulty", "tx",
                   "ty", "scale", "rotation", "clutter", "occlusion", "occluded_fraction"):
        assert column in table.columns, column
    assert table["stimulus_id"].is_unique
    counts = table.groupby(["object_name", "variation"]).size().unstack()
    assert counts.shape == (64, 3)
    assert (counts[0] == 1).all() and (counts[3] == 2).all() and (counts[6] == 2).all()
    assert table["category_name"].nunique() == 8


def test_variation_grows_from_v0_to_v6(rendered) -> None:
    _, table = rendered
    v0 = table[table["variation"] == 0]
    assert (v0[["tx", "ty", "rotation", "clutter", "occlusion"]] == 0).all().all() and (v0["scale"] == 1).all()
    spread = table.groupby("variation").agg(
        tx=("tx", "std"), rot=("rotation", "std"), log_scale=("scale", lambda s: np.log(s).std()),
        clutter=("clutter", "mean"), occluded=("occluded_fraction", "mean"))
    for column in spread.columns:
        assert spread.loc[0, column] < spread.loc[3, column] < spread.loc[6, column], column


def test_occluders_hide_about_the_requested_share_of_the_object() -> None:
    _, table = stim.render_stimuli({6: 1}, seed=1, image_size=32, occlusion=0.3)
    assert abs(table["occluded_fraction"].mean() - 0.3) < 0.08


def test_difficulty_extrapolates_beyond_v6() -> None:
    _, table = stim.render_stimuli({6: 1, 9: 1}, seed=0, image_size=16, levels={6: 1.0, 9: 1.6})
    by_level = table.groupby("variation")
    assert by_level["difficulty"].first().tolist() == [1.0, 1.6]
    assert by_level["rotation"].apply(lambda r: r.abs().max()).loc[9] > 90
    assert by_level["occluded_fraction"].mean().loc[9] > by_level["occluded_fraction"].mean().loc[6]
    with pytest.raises(ValueError, match="difficulty must be >= 0"):
        stim.view_ranges(-0.1)


def test_images_differ_across_objects_and_views(rendered) -> None:
    images, table = rendered
    flat = images.reshape(len(images), -1).astype(np.int16)
    v0 = flat[(table["variation"] == 0).to_numpy()]
    distances = np.abs(v0[:, None] - v0[None]).mean(axis=2)
    assert distances[~np.eye(len(v0), dtype=bool)].min() > 1.0  # mean absolute pixel difference (0-255)
    assert len({img.tobytes() for img in images}) == len(images)


def test_rendering_is_deterministic_and_independent_of_the_batch(rendered) -> None:
    images, table = rendered
    again = stim.render_views(table.iloc[[7, 200, 3]], seed=0, image_size=32)
    assert np.array_equal(again, images[[7, 200, 3]])
    images_seed1, _ = stim.render_stimuli({0: 1, 3: 2, 6: 2}, seed=1, image_size=32)
    assert not np.array_equal(images_seed1, images)


def test_v0_objects_sit_on_a_gray_background(rendered) -> None:
    images, table = rendered
    v0 = images[(table["variation"] == 0).to_numpy()]
    corners = v0[:, :2, :2].reshape(-1, 3)
    assert np.all(np.abs(corners.astype(int) - round(stim.BACKGROUND_GRAY * 255)) <= 1)
    centre = v0[:, 8:24, 8:24].reshape(len(v0), -1, 3)
    assert (np.abs(centre.astype(int) - 128).max(axis=(1, 2)) > 20).all()  # every object is in view
