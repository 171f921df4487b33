"""Procedural object stimuli for the embedded ``synthetic-ventral`` dataset.

64 objects (8 categories x 8 objects) in the spirit of the HvM image set (Majaj, Hong et al. 2015): each
category is a parametric shape family (superellipse, star, polygon, blob, ring, cross, crescent,
spiral), each object a specific member of its family with its own surface texture (stripes, checks or
dots at an object-specific frequency, orientation and pair of colours). Objects are shown at three
variation levels named as HvM's V0/V3/V6 (``variation`` = 0, 3, 6). A level is a point on one continuous
``difficulty`` axis (V0 = 0, V3 = 0.5, V6 = 1 by default) that scales position, scale and rotation
jitter, background clutter and occlusion; any difficulty (also beyond 1, for extrapolation tests) can be
rendered with :func:`render_views`.

Rendering is pure numpy, vectorised over the views of one object, antialiased by supersampling, and
deterministic: every image draws its view parameters, clutter and occluders from its own random stream
``(seed, image index)``, so an image does not depend on which other images are rendered with it.

Coordinates: the image spans ``[-1, 1]`` on both axes (x to the right, y downwards); ``tx``/``ty`` are in
these units, ``scale`` multiplies the object's base radius (0.5), ``rotation`` is in degrees.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CATEGORIES: tuple[str, ...] = (
    "superellipse", "star", "polygon", "blob", "ring", "cross", "crescent", "spiral",
)
OBJECTS_PER_CATEGORY = 8
TEXTURES: tuple[str, ...] = ("stripes", "checks", "dots")
# HvM level name -> difficulty on the continuous axis.
DEFAULT_LEVELS: dict[int, float] = {0: 0.0, 3: 0.5, 6: 1.0}
BASE_RADIUS = 0.5
BACKGROUND_GRAY = 0.5
# Stream ids keep the object catalogue and the per-image draws independent of each other.
_OBJECT_STREAM = 11
_VIEW_STREAM = 12


@dataclass(frozen=True)
class SyntheticObject:
    """One object: a member of a shape family with its own texture and colours.

    Example
    -------
    >>> obj = object_catalog(seed=0)[9]
    >>> obj.name, obj.category
    ('star_1', 'star')
    """

    name: str
    category: str
    shape: dict[str, float] = field(hash=False)
    texture: str
    frequency: float
    orientation: float
    phase: float
    color_base: tuple[float, float, float]
    color_pattern: tuple[float, float, float]


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (float(r), float(g), float(b))


def _shape_params(category: str, k: int, rng: np.random.Generator) -> dict[str, float]:
    """Family parameters of object ``k``: spread over the family's range by ``k``, jittered by ``rng``."""
    f = (k + rng.uniform(0.15, 0.85)) / OBJECTS_PER_CATEGORY  # in (0, 1), increasing with k
    # A second coordinate that visits the range in another order, so no two objects share both.
    g = ((3 * k) % OBJECTS_PER_CATEGORY + rng.uniform(0.15, 0.85)) / OBJECTS_PER_CATEGORY
    if category == "superellipse":
        return {"exponent": float(0.7 * 5.0 ** f), "aspect": float(0.4 + 0.55 * g)}
    if category == "star":
        return {"points": float(4 + k % 5), "depth": float(0.3 + 0.35 * f), "sharp": float(rng.uniform(1, 3))}
    if category == "polygon":
        return {"sides": float(3 + k % 6), "aspect": float(0.55 + 0.45 * f), "round": float(rng.uniform(0, .1))}
    if category == "blob":
        coefs = {f"a{i}": float(rng.uniform(0.04, 0.22) / np.sqrt(i - 1)) for i in range(2, 6)}
        phases = {f"p{i}": float(rng.uniform(0, 2 * np.pi)) for i in range(2, 6)}
        return {**coefs, **phases}
    if category == "ring":
        return {"inner": float(0.35 + 0.35 * f), "gap": float(1.8 * g), "aspect": float(rng.uniform(0.6, 1.0))}
    if category == "cross":
        return {"arms": float(3 + k % 4), "width": float(0.18 + 0.25 * f), "inner": float(rng.uniform(0.0, 0.3))}
    if category == "crescent":
        return {"cut": float(0.6 + 0.35 * g), "offset": float(0.25 + 0.5 * f)}
    if category == "spiral":
        return {"turns": float(1.4 + 1.4 * f), "width": float(rng.uniform(0.09, 0.16))}
    raise ValueError(f"unknown category {category!r}")


def object_catalog(seed: int = 0) -> list[SyntheticObject]:
    """The 64 objects (8 categories x 8 objects) of the synthetic stimulus set for ``seed``.

    Parameters
    ----------
    seed : int
        Seed of the catalogue; the same seed always gives the same objects.

    Returns
    -------
    list of SyntheticObject
        Ordered by category (as in :data:`CATEGORIES`), then object index; names are ``"<category>_<k>"``.

    Example
    -------
    >>> objs = object_catalog(0)
    >>> len(objs), len({o.category for o in objs})
    (64, 8)
    """
    rng = np.random.default_rng([seed, _OBJECT_STREAM])
    objects = []
    for c, category in enumerate(CATEGORIES):
        for k in range(OBJECTS_PER_CATEGORY):
            shape = _shape_params(category, k, rng)
            hue = rng.uniform()
            base = _hsv(hue, rng.uniform(0.35, 0.9), rng.uniform(0.45, 0.95))
            # The pattern colour sits far from the base in hue and value so the texture stays visible.
            pattern = _hsv(hue + rng.uniform(0.25, 0.75), rng.uniform(0.3, 0.9), rng.uniform(0.1, 0.35)
                           if base[0] + base[1] + base[2] > 1.5 else rng.uniform(0.75, 1.0))
            objects.append(SyntheticObject(
                name=f"{category}_{k}", category=category, shape=shape,
                texture=TEXTURES[(k + c) % len(TEXTURES)],
                frequency=float(rng.uniform(1.2, 3.2)), orientation=float(rng.uniform(0, np.pi)),
                phase=float(rng.uniform(0, 2 * np.pi)), color_base=base, color_pattern=pattern,
            ))
    return objects


# ---------------------------------------------------------------------------------------------- shapes
def _shape_mask(obj: SyntheticObject, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of ``obj`` at object-frame coordinates (object radius about 1)."""
    p = obj.shape
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    cat = obj.category
    if cat == "superellipse":
        n = p["exponent"]
        return np.abs(u) ** n + np.abs(v / p["aspect"]) ** n <= 1.0
    if cat == "star":
        lobes = np.abs(np.cos(p["points"] * theta / 2.0)) ** p["sharp"]
        return rho <= 1.0 - p["depth"] * (1.0 - lobes)
    if cat == "polygon":
        k = p["sides"]
        ang = np.mod(np.arctan2(v / p["aspect"], u), 2 * np.pi / k) - np.pi / k
        radius = np.cos(np.pi / k) / np.cos(ang) * (1 - p["round"]) + p["round"]
        return np.hypot(u, v / p["aspect"]) <= radius
    if cat == "blob":
        r = np.full_like(rho, 0.8)
        for i in range(2, 6):
            r = r + 0.8 * p[f"a{i}"] * np.cos(i * theta + p[f"p{i}"])
        return rho <= r
    if cat == "ring":
        re = np.hypot(u, v / p["aspect"])
        in_gap = np.abs(theta) < p["gap"] / 2.0
        return (re <= 1.0) & (re >= p["inner"]) & ~in_gap
    if cat == "cross":
        arms = int(p["arms"])
        mask = rho <= p["inner"] + p["width"] / 2
        for i in range(arms):
            a = 2 * np.pi * i / arms
            along = u * np.cos(a) + v * np.sin(a)
            perp = -u * np.sin(a) + v * np.cos(a)
            mask |= (np.abs(perp) <= p["width"] / 2) & (along >= 0) & (along <= 1.0)
        return mask
    if cat == "crescent":
        off = p["offset"]
        return (rho <= 1.0) & (np.hypot(u - off, v) > p["cut"])
    if cat == "spiral":
        # Archimedean band rho = b * phi, phi in [0, 2 pi turns]; distance measured radially to the
        # nearest turn, which is exact enough for a band much narrower than the turn spacing.
        turns = p["turns"]
        b = 1.0 / (2 * np.pi * turns)
        spacing = 2 * np.pi * b
        phi0 = np.mod(theta, 2 * np.pi)
        k = np.round((rho / b - phi0) / (2 * np.pi))
        k = np.clip(k, 0, np.ceil(turns))
        phi = phi0 + 2 * np.pi * k
        on_band = np.abs(rho - b * phi) <= p["width"] / 2 * (spacing / (spacing + 0.05)) + 0.02
        return on_band & (phi <= 2 * np.pi * turns) | (rho <= p["width"])
    raise ValueError(f"unknown category {cat!r}")


def _texture(obj: SyntheticObject, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pattern membership (0/1 as float) at object-frame coordinates."""
    c, s = np.cos(obj.orientation), np.sin(obj.orientation)
    a = (u * c + v * s) * obj.frequency
    b = (-u * s + v * c) * obj.frequency
    if obj.texture == "stripes":
        return (np.sin(2 * np.pi * a + obj.phase) > 0).astype(np.float64)
    if obj.texture == "checks":
        return (np.sin(np.pi * a + obj.phase) * np.sin(np.pi * b) > 0).astype(np.float64)
    da = np.mod(a + obj.phase / (2 * np.pi), 1.0) - 0.5
    db = np.mod(b, 1.0) - 0.5
    return (da * da + db * db < 0.3**2).astype(np.float64)


# ---------------------------------------------------------------------------------------------- views
def view_ranges(difficulty: float) -> dict[str, float]:
    """Jitter ranges at one point of the continuous difficulty axis.

    ``tx``/``ty`` are uniform in ``+-position``, ``log(scale)`` uniform in ``+-log_scale``, ``rotation``
    uniform in ``+-rotation`` degrees; ``clutter`` and ``occlusion`` are the level means (each image
    draws within +-25% / +-50% of them). Difficulty 0, 0.5, 1 are HvM's V0, V3, V6; larger values
    extrapolate every range linearly.

    Example
    -------
    >>> view_ranges(1.0)["rotation"]
    90.0
    """
    if difficulty < 0:
        raise ValueError(f"difficulty must be >= 0, got {difficulty}")
    d = float(difficulty)
    return {"position": 0.5 * d, "log_scale": 0.4 * d, "rotation": 90.0 * d, "clutter": d,
            "occlusion": 0.3 * d}


def sample_views(
    views_per_level: Mapping[int, int],
    *,
    seed: int = 0,
    levels: Mapping[int, float] | None = None,
    clutter: float | None = None,
    occlusion: float | None = None,
    objects: Sequence[SyntheticObject] | None = None,
) -> pd.DataFrame:
    """The stimulus table: one row per image with its object, level and continuous view parameters.

    Parameters
    ----------
    views_per_level : mapping of int to int
        Images per object at each variation level, e.g. ``{0: 4, 3: 4, 6: 4}``.
    seed : int
        Seed of the catalogue and of every per-image draw.
    levels : mapping of int to float, optional
        Variation level -> difficulty (default :data:`DEFAULT_LEVELS`); any level name and any
        difficulty >= 0 is allowed, e.g. ``{9: 1.5}`` to extrapolate beyond V6.
    clutter, occlusion : float, optional
        Fix the clutter / occlusion of every image instead of deriving them from the difficulty.
    objects : sequence of SyntheticObject, optional
        The catalogue (default ``object_catalog(seed)``).

    Returns
    -------
    pandas.DataFrame
        Columns ``stimulus_id, filename, object_name, category_name, variation, difficulty, tx, ty,
        scale, rotation, clutter, occlusion, image_seed``; rows ordered by level, object, view.

    Example
    -------
    >>> table = sample_views({0: 1, 6: 1})
    >>> len(table), sorted(table["variation"].unique().tolist())
    (128, [0, 6])
    """
    levels = dict(DEFAULT_LEVELS if levels is None else levels)
    objects = object_catalog(seed) if objects is None else objects
    rows = []
    index = 0
    for level, n_views in views_per_level.items():
        if level not in levels:
            raise ValueError(f"variation level {level} has no difficulty; known levels: {sorted(levels)}")
        if n_views < 0:
            raise ValueError(f"views_per_level[{level}] must be >= 0, got {n_views}")
        difficulty = float(levels[level])
        ranges = view_ranges(difficulty)
        for obj in objects:
            for _ in range(n_views):
                rng = np.random.default_rng([seed, _VIEW_STREAM, index])
                pos = ranges["position"]
                c = ranges["clutter"] if clutter is None else clutter
                o = ranges["occlusion"] if occlusion is None else occlusion
                rows.append({
                    "stimulus_id": f"sv_{seed}_{index:05d}",
                    "filename": f"sv_{seed}_{index:05d}.png",
                    "object_name": obj.name,
                    "category_name": obj.category,
                    "variation": int(level),
                    "difficulty": difficulty,
                    "tx": float(rng.uniform(-pos, pos)) if pos else 0.0,
                    "ty": float(rng.uniform(-pos, pos)) if pos else 0.0,
                    "scale": float(np.exp(rng.uniform(-ranges["log_scale"], ranges["log_scale"]))),
                    "rotation": float(rng.uniform(-ranges["rotation"], ranges["rotation"])),
                    "clutter": float(c * rng.uniform(0.75, 1.25)) if clutter is None else float(c),
                    "occlusion": float(o * rng.uniform(0.5, 1.5)) if occlusion is None else float(o),
                    "image_seed": int(rng.integers(2**31)),
                })
                index += 1
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- render
def _grid(size: int, supersample: int) -> tuple[np.ndarray, np.ndarray]:
    n = size * supersample
    coords = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    y, x = np.meshgrid(coords, coords, indexing="ij")
    return x, y


def _background(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, clutter: float) -> np.ndarray:
    """Gray background with smooth noise and distractor fragments whose contrast grows with clutter."""
    img = np.full((*x.shape, 3), BACKGROUND_GRAY)
    if clutter <= 0:
        return img
    xs, ys = x[0], y[:, 0]
    for _ in range(4):
        fx, fy = rng.normal(0, 2.5, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        # sin(a + b) split into outer products of 1-d waves: the same plaid, without a full-grid sin
        wave = (np.outer(np.cos(np.pi * fy * ys + phase), np.sin(np.pi * fx * xs))
                + np.outer(np.sin(np.pi * fy * ys + phase), np.cos(np.pi * fx * xs)))
        img += 0.04 * min(clutter, 2.0) * wave[..., None] * rng.uniform(0.5, 1.0, size=3)
    n_fragments = int(rng.poisson(8 * clutter))
    contrast = min(0.35 * clutter, 0.8)
    for _ in range(n_fragments):
        cx, cy = rng.uniform(-1.1, 1.1, size=2)
        a = rng.uniform(0, np.pi)
        ellipse = rng.uniform() < 0.5
        half_u, half_v = (rng.uniform(0.05, 0.25), rng.uniform(0.03, 0.15)) if ellipse else (
            rng.uniform(0.1, 0.5), rng.uniform(0.01, 0.05))
        color = BACKGROUND_GRAY + contrast * rng.uniform(-1, 1, size=3)
        # Only the fragment's bounding box is evaluated.
        extent = np.hypot(half_u, half_v)
        c0, c1 = np.searchsorted(xs, [cx - extent, cx + extent])
        r0, r1 = np.searchsorted(ys, [cy - extent, cy + extent])
        if c0 >= c1 or r0 >= r1:
            continue
        bx, by = x[r0:r1, c0:c1] - cx, y[r0:r1, c0:c1] - cy
        du = bx * np.cos(a) + by * np.sin(a)
        dv = -bx * np.sin(a) + by * np.cos(a)
        if ellipse:
            mask = (du / half_u) ** 2 + (dv / half_v) ** 2 <= 1
        else:
            mask = (np.abs(du) <= half_u) & (np.abs(dv) <= half_v)
        img[r0:r1, c0:c1][mask] = color
    return img


def _occluders(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, row: pd.Series
) -> np.ndarray | None:
    """Mask of bars in front of the object, sized so they cover about ``occlusion`` of its disc."""
    occ = float(row["occlusion"])
    if occ <= 0:
        return None
    radius = BASE_RADIUS * float(row["scale"])
    n_bars = 1 + int(rng.uniform() < min(occ, 1.0))
    # A bar of width w through a disc of radius R covers about 2wR / (pi R^2) of it.
    width = min(occ, 1.0) * np.pi * radius / (2 * n_bars)
    mask = np.zeros(x.shape, dtype=bool)
    for _ in range(n_bars):
        a = rng.uniform(0, np.pi)
        off = rng.uniform(-0.5, 0.5) * radius
        d = (x - row["tx"]) * np.cos(a) + (y - row["ty"]) * np.sin(a) - off
        along = -(x - row["tx"]) * np.sin(a) + (y - row["ty"]) * np.cos(a)
        # Finite bars (about three object radii long) read as objects in front, not as a frame.
        mask |= (np.abs(d) <= width / 2) & (np.abs(along) <= 1.5 * radius * rng.uniform(0.8, 1.2))
    return mask


def render_views(
    table: pd.DataFrame,
    *,
    seed: int = 0,
    image_size: int = 64,
    supersample: int = 2,
    objects: Sequence[SyntheticObject] | None = None,
) -> np.ndarray:
    """Render the images of a stimulus table (from :func:`sample_views`).

    Parameters
    ----------
    table : pandas.DataFrame
        Needs ``object_name, tx, ty, scale, rotation, clutter, occlusion, image_seed``.
    seed : int
        Seed of the object catalogue (ignored when ``objects`` is given).
    image_size : int
        Height and width in pixels.
    supersample : int
        Samples per pixel along each axis (antialiasing).
    objects : sequence of SyntheticObject, optional
        The catalogue (default ``object_catalog(seed)``).

    Returns
    -------
    numpy.ndarray
        ``uint8`` images of shape ``(n_images, image_size, image_size, 3)`` (RGB) in table order. The
        table gains no columns; the measured fraction of each object hidden by occluders is returned
        by :func:`render_stimuli`.

    Example
    -------
    >>> images = render_views(sample_views({0: 1}).head(2), image_size=32)
    >>> images.shape, images.dtype
    ((2, 32, 32, 3), dtype('uint8'))
    """
    images, _ = _render(table, seed=seed, image_size=image_size, supersample=supersample, objects=objects)
    return images


def _render(
    table: pd.DataFrame,
    *,
    seed: int,
    image_size: int,
    supersample: int,
    objects: Sequence[SyntheticObject] | None,
) -> tuple[np.ndarray, np.ndarray]:
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    objects = object_catalog(seed) if objects is None else objects
    by_name = {o.name: o for o in objects}
    x, y = _grid(image_size, supersample)
    out = np.empty((len(table), image_size, image_size, 3), dtype=np.uint8)
    occluded = np.zeros(len(table))
    for i, row in enumerate(table.itertuples(index=False)):
        row = pd.Series(row._asdict())
        obj = by_name.get(row["object_name"])
        if obj is None:
            raise ValueError(f"object_name {row['object_name']!r} is not in the catalogue")
        rng = np.random.default_rng(int(row["image_seed"]))
        img = _background(rng, x, y, float(row["clutter"]))
        a = np.deg2rad(row["rotation"])
        r = BASE_RADIUS * row["scale"]
        dx, dy = x - row["tx"], y - row["ty"]
        u = (np.cos(a) * dx + np.sin(a) * dy) / r
        v = (-np.sin(a) * dx + np.cos(a) * dy) / r
        mask = _shape_mask(obj, u, v)
        pattern = _texture(obj, u, v)[..., None]
        # Mild shading from the upper left gives the surface some depth cue that rotates with the object.
        shade = (1.0 - 0.12 * (u + v) / np.sqrt(2))[..., None]
        color = (np.asarray(obj.color_base) * (1 - pattern) + np.asarray(obj.color_pattern) * pattern) * shade
        img[mask] = color[mask]
        occ = _occluders(rng, x, y, row)
        if occ is not None:
            img[occ] = BACKGROUND_GRAY * rng.uniform(0.3, 1.4, size=3)
            occluded[i] = (occ & mask).sum() / max(int(mask.sum()), 1)
        s = supersample
        img = img.reshape(image_size, s, image_size, s, 3).mean(axis=(1, 3))
        out[i] = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return out, occluded


def render_stimuli(
    views_per_level: Mapping[int, int] | None = None,
    *,
    seed: int = 0,
    image_size: int = 64,
    supersample: int = 2,
    levels: Mapping[int, float] | None = None,
    clutter: float | None = None,
    occlusion: float | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Sample and render a synthetic stimulus set.

    Parameters
    ----------
    views_per_level : mapping of int to int, optional
        Images per object at each level (default ``{0: 4, 3: 4, 6: 4}``: 768 images).
    seed, image_size, supersample, levels, clutter, occlusion
        As in :func:`sample_views` and :func:`render_views`.

    Returns
    -------
    images : numpy.ndarray
        ``uint8`` ``(n_images, image_size, image_size, 3)``.
    table : pandas.DataFrame
        The :func:`sample_views` table plus ``occluded_fraction`` (measured share of the object's
        pixels hidden by occluders).

    Example
    -------
    >>> images, table = render_stimuli({0: 1}, image_size=16)
    >>> images.shape, table["category_name"].nunique()
    ((64, 16, 16, 3), 8)
    """
    views_per_level = {0: 4, 3: 4, 6: 4} if views_per_level is None else views_per_level
    objects = object_catalog(seed)
    table = sample_views(views_per_level, seed=seed, levels=levels, clutter=clutter, occlusion=occlusion,
                         objects=objects)
    images, occluded = _render(table, seed=seed, image_size=image_size, supersample=supersample,
                               objects=objects)
    table["occluded_fraction"] = occluded
    return images, table
