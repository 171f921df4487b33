"""Stimulus sets: a table (``stimulus_id`` + metadata) plus images in a folder, a zip, or memory.

Images are placed on screen the way Brain-Score does it: a stimulus set shown at ``degrees`` of visual
angle to a model that sees ``target_degrees`` is pasted in the centre of a gray canvas when the model's
field is larger, and centre-cropped when it is smaller (:meth:`StimulusSet.place_on_screen`).

Stimulus files are untrusted input, read within fixed bounds: an image file (a file in the folder or a
zip member, decompressed) may hold at most :data:`MAX_IMAGE_BYTES`, an image at most
:data:`MAX_IMAGE_PIXELS` pixels (checked from its header, before it is decoded); zips are hashed and read
member by member in 1 MiB chunks, never whole. A member name that would leave the zip (absolute, ``..``),
a folder image outside its folder, a file that is not a zip, a sidecar that is not a JSON object, and
``degrees`` that is not a finite positive number each fail with one line naming the file and the key.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from neurofit.atomic import atomic_path
from neurofit.errors import NeurofitError, ValidationError

GRAY = 0.5  # the screen's gray level, in [0, 1]
#: the most bytes one image file may hold (decompressed, for a zip member)
MAX_IMAGE_BYTES = 256 * 2**20
#: the most pixels one image may have (40 megapixels: an 8000 x 5000 photograph)
MAX_IMAGE_PIXELS = 40_000_000
_CHUNK = 1 << 20
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
               OSError, ValueError)


def check_degrees(value: Any, where: str) -> float:
    """``value`` as a visual angle in degrees (a finite number > 0), or a one-line error naming ``where``.

    Example
    -------
    >>> check_degrees(8, "stimuli.json")
    8.0
    >>> check_degrees(float("inf"), "stimuli.json")
    Traceback (most recent call last):
    ...
    neurofit.errors.ValidationError: stimuli.json: degrees must be a finite number > 0, got inf
    """
    try:
        degrees = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        degrees = math.nan
    if not (math.isfinite(degrees) and degrees > 0):
        raise ValidationError(f"{where}: degrees must be a finite number > 0, got {value!r}")
    return degrees


@contextmanager
def _open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    try:
        with zipfile.ZipFile(path) as zf:
            yield zf
    except ValidationError:
        raise
    except _ZIP_ERRORS as err:
        raise ValidationError(f"{path} is not a readable zip file ({err}); re-download or re-create it") from err


def _member_size(info: zipfile.ZipInfo, source: Path) -> int:
    if info.file_size > MAX_IMAGE_BYTES:
        raise ValidationError(
            f"zip {source} member {info.filename!r} unpacks to {info.file_size / 2**20:.0f} MiB; an image may hold at "
            f"most {MAX_IMAGE_BYTES // 2**20} MiB (neurofit.data.stimuli.MAX_IMAGE_BYTES)")
    return info.file_size


def _stream_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: Path) -> Iterator[bytes]:
    """A zip member's bytes in 1 MiB chunks, refusing more than its bound even if its header lies."""
    _member_size(info, source)
    total = 0
    with zf.open(info) as handle:
        while chunk := handle.read(_CHUNK):
            total += len(chunk)
            if total > MAX_IMAGE_BYTES:
                raise ValidationError(f"zip {source} member {info.filename!r} unpacks to more than "
                                      f"{MAX_IMAGE_BYTES // 2**20} MiB")
            yield chunk


def _read_member(zf: zipfile.ZipFile, name: str, source: Path) -> bytes:
    return b"".join(_stream_member(zf, zf.getinfo(name), source))


def _check_file_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise ValidationError(f"image file {path} holds {size / 2**20:.0f} MiB; an image may hold at most "
                              f"{MAX_IMAGE_BYTES // 2**20} MiB (neurofit.data.stimuli.MAX_IMAGE_BYTES)")


def _read_file(path: Path) -> bytes:
    _check_file_size(path)
    return path.read_bytes()


def _leaves_its_folder(name: str) -> bool:
    """A relative name that is absolute, climbs with ``..`` or names a drive (judged by name, not on disk)."""
    pure = PurePosixPath(name.replace("\\", "/"))
    return pure.is_absolute() or ".." in pure.parts or bool(pure.parts and pure.parts[0].endswith(":"))


def _check_member_name(name: str, source: Path) -> None:
    if _leaves_its_folder(name):
        raise ValidationError(f"zip {source} has an unsafe member name {name!r} (absolute or containing '..')")


def zip_members(path: str | os.PathLike[str]) -> list[str]:
    """The file members of a zip, sorted by name; unsafe names (absolute, ``..``) are rejected.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.zip"
    >>> with zipfile.ZipFile(p, "w") as z:
    ...     z.writestr("b.png", b""); z.writestr("a.png", b"")
    >>> zip_members(p)
    ['a.png', 'b.png']
    """
    path = Path(path)
    with _open_zip(path) as zf:
        names = [info.filename for info in zf.infolist() if not info.is_dir()]
    for name in names:
        _check_member_name(name, path)
    return sorted(names)


def safe_extract(zip_path: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[Path]:
    """Extract a zip into ``target``, refusing any member that would land outside it.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "evil.zip"
    >>> with zipfile.ZipFile(p, "w") as z:
    ...     z.writestr("../escape.txt", b"x")
    >>> safe_extract(p, p.parent / "out")
    Traceback (most recent call last):
    ...
    neurofit.errors.ValidationError: zip ... has an unsafe member name '../escape.txt' (absolute or containing '..')
    """
    target = Path(target).resolve()
    members = zip_members(zip_path)
    out = []
    with _open_zip(Path(zip_path)) as zf:
        for name in members:
            dest = (target / name).resolve()
            if target not in dest.parents:
                raise ValidationError(f"zip {zip_path} member {name!r} would be written outside {target}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dest) as tmp, open(tmp, "wb") as handle:
                for chunk in _stream_member(zf, zf.getinfo(name), Path(zip_path)):
                    handle.write(chunk)
            out.append(dest)
    return out


@dataclass
class StimulusSet:
    """A table of stimuli (``stimulus_id`` + metadata, ``filename`` per image) and where the images are.

    ``images`` is a folder, a zip file, or ``None`` with ``arrays`` holding uint8 images ``[N, H, W, 3]`` in
    table order. ``degrees`` is the visual angle the images subtended in the experiment.

    Example
    -------
    >>> imgs = np.zeros((2, 8, 8, 3), dtype=np.uint8); imgs[1] = 255
    >>> table = pd.DataFrame({"stimulus_id": ["black", "white"], "object_name": ["a", "b"]})
    >>> ss = StimulusSet.from_arrays(imgs, table, degrees=8.0, identifier="toy")
    >>> ss.load_images(4).shape, float(ss.load_images(4)[1].min())
    (torch.Size([2, 3, 4, 4]), 1.0)
    """

    table: pd.DataFrame
    images: Path | None
    degrees: float
    identifier: str
    arrays: np.ndarray | None = None
    screen_degrees: float | None = None  # set by place_on_screen
    _sha256: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if "stimulus_id" not in self.table.columns:
            raise ValidationError(f"stimulus set {self.identifier!r} has no 'stimulus_id' column")
        self.table = self.table.reset_index(drop=True)
        self.table["stimulus_id"] = self.table["stimulus_id"].astype(str)
        dup = self.table["stimulus_id"].duplicated()
        if dup.any():
            first = self.table["stimulus_id"][dup].iloc[0]
            raise ValidationError(f"stimulus set {self.identifier!r} lists stimulus_id {first!r} twice")
        self.degrees = check_degrees(self.degrees, f"stimulus set {self.identifier!r}")
        if self.images is not None:
            self.images = Path(self.images)
            if "filename" not in self.table.columns:
                raise ValidationError(f"stimulus set {self.identifier!r} has images but no 'filename' column")
        elif self.arrays is None:
            raise ValidationError(f"stimulus set {self.identifier!r} has neither image files nor arrays")
        elif len(self.arrays) != len(self.table):
            raise ValidationError(
                f"stimulus set {self.identifier!r}: {len(self.arrays)} images for {len(self.table)} table rows"
            )

    @classmethod
    def from_arrays(cls, images: np.ndarray, table: pd.DataFrame, degrees: float, identifier: str) -> StimulusSet:
        """An in-memory stimulus set from uint8 images ``[N, H, W, 3]`` (or ``[N, H, W]``) in table order."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValidationError(f"stimulus images must be uint8, got {images.dtype}")
        if images.ndim == 3:
            images = np.repeat(images[..., None], 3, axis=-1)
        return cls(table=table.copy(), images=None, degrees=float(degrees), identifier=identifier, arrays=images)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def stimulus_ids(self) -> list[str]:
        return self.table["stimulus_id"].tolist()

    def place_on_screen(self, target_degrees: float) -> StimulusSet:
        """The same stimuli as seen by a model whose input spans ``target_degrees`` of visual angle."""
        target = check_degrees(target_degrees, "the model's visual angle (target_degrees)")
        return replace(self, screen_degrees=target, _sha256=None)

    def subset(self, ids: Sequence[str]) -> StimulusSet:
        """The stimuli ``ids`` in the given order."""
        index = self._index_of(ids)
        arrays = None if self.arrays is None else self.arrays[index]
        return replace(self, table=self.table.iloc[index].reset_index(drop=True), arrays=arrays, _sha256=None)

    def _index_of(self, ids: Sequence[str]) -> np.ndarray:
        lookup = pd.Index(self.table["stimulus_id"])
        index = lookup.get_indexer(list(ids))
        if (index < 0).any():
            missing = list(ids)[int(np.flatnonzero(index < 0)[0])]
            raise ValidationError(f"stimulus_id {missing!r} is not in the stimulus set {self.identifier!r}")
        return index

    def _member_map(self) -> dict[str, str]:
        members = zip_members(self.images)  # type: ignore[arg-type]
        by_name = {m: m for m in members}
        by_base: dict[str, str] = {}
        for m in members:
            by_base.setdefault(PurePosixPath(m).name, m)
        out = {}
        for fname in self.table["filename"].astype(str):
            member = by_name.get(fname) or by_base.get(PurePosixPath(fname).name)
            if member is None:
                sid = self.table.loc[self.table["filename"].astype(str) == fname, "stimulus_id"].iloc[0]
                raise ValidationError(
                    f"image {fname!r} of stimulus_id {sid!r} is missing from the zip {self.images}"
                )
            out[fname] = member
        return out

    def read_raw(self, ids: Sequence[str] | None = None) -> list[np.ndarray]:
        """The stored images as uint8 RGB arrays ``[H, W, 3]``, in the order of ``ids``."""
        index = np.arange(len(self)) if ids is None else self._index_of(ids)
        if self.arrays is not None:
            return [self.arrays[i] for i in index]
        assert self.images is not None
        filenames = self.table["filename"].astype(str).to_numpy()[index]
        out = []
        if self.images.is_dir():
            for fname in filenames:
                path = self._folder_file(fname)
                if not path.is_file():
                    raise ValidationError(f"image file {path} of stimulus set {self.identifier!r} is missing")
                out.append(_decode(_read_file(path), path))
            return out
        members = self._member_map()
        with _open_zip(self.images) as zf:
            for fname in filenames:
                out.append(_decode(_read_member(zf, members[fname], self.images),
                                   Path(f"{self.images}:{members[fname]}")))
        return out

    def _folder_file(self, fname: str) -> Path:
        """The image file ``fname`` of a folder stimulus set; a name leading out of the folder is refused."""
        assert self.images is not None
        # by name, not by resolving: a folder of symlinks to images elsewhere is legitimate
        if _leaves_its_folder(fname):
            raise ValidationError(f"stimulus set {self.identifier!r}: filename {fname!r} leads outside its image "
                                  f"folder {self.images}")
        return self.images / fname

    def load_images(self, size: int, ids: Sequence[str] | None = None) -> torch.Tensor:
        """Images as float32 ``[B, 3, size, size]`` in ``[0, 1]``, placed on screen if asked.

        Non-square images are centre-cropped to a square first; resizing is bilinear with antialiasing.
        """
        frames = [torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1) for img in self.read_raw(ids)]
        out = torch.empty(len(frames), 3, size, size)
        for i, frame in enumerate(frames):
            out[i] = self._render(frame.float().div_(255.0), size)
        return out

    def _render(self, image: torch.Tensor, size: int) -> torch.Tensor:
        image = _center_square(image)
        ratio = 1.0 if self.screen_degrees is None else self.degrees / self.screen_degrees
        if ratio >= 1.0:
            # the model sees less than the image: centre-crop the part it sees
            side = max(1, round(image.shape[-1] / ratio))
            image = _center_crop(image, side)
            return _resize(image, size)
        inner = max(1, round(size * ratio))
        canvas = torch.full((3, size, size), GRAY)
        top = (size - inner) // 2
        canvas[:, top : top + inner, top : top + inner] = _resize(image, inner)
        return canvas

    def sha256(self) -> str:
        """Content hash: table, image bytes, degrees and screen placement (changes whenever any does)."""
        if self._sha256 is None:
            h = hashlib.sha256()
            h.update(self.table.to_csv(index=False).encode())
            h.update(json.dumps([self.degrees, self.screen_degrees]).encode())
            if self.arrays is not None:
                h.update(np.ascontiguousarray(self.arrays).data)
            elif self.images is not None and self.images.is_dir():
                for fname in self.table["filename"].astype(str):
                    path = self._folder_file(fname)
                    if not path.is_file():
                        raise ValidationError(f"image file {path} of stimulus set {self.identifier!r} is missing")
                    _check_file_size(path)
                    with open(path, "rb") as handle:
                        while chunk := handle.read(_CHUNK):
                            h.update(chunk)
            elif self.images is not None:
                members = zip_members(self.images)
                with _open_zip(self.images) as zf:
                    for name in members:
                        h.update(name.encode())
                        for chunk in _stream_member(zf, zf.getinfo(name), self.images):
                            h.update(chunk)
            self._sha256 = h.hexdigest()
        return self._sha256


def _decode(data: bytes, source: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            # PIL's own bomb check only warns below twice its limit; ours below refuses first
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ValidationError(
                        f"image {source} has {width} x {height} = {width * height / 1e6:.0f} megapixels; an image "
                        f"may have at most {MAX_IMAGE_PIXELS / 1e6:.0f} (neurofit.data.stimuli.MAX_IMAGE_PIXELS)")
                return np.asarray(img.convert("RGB"))
    except ValidationError:
        raise
    except Exception as err:  # PIL raises many types for corrupt data
        raise ValidationError(f"cannot decode image {source}: {err}") from err


def _center_square(image: torch.Tensor) -> torch.Tensor:
    h, w = image.shape[-2:]
    return _center_crop(image, min(h, w)) if h != w else image


def _center_crop(image: torch.Tensor, side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    top, left = (h - side) // 2, (w - side) // 2
    return image[..., top : top + side, left : left + side]


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    if image.shape[-1] == size and image.shape[-2] == size:
        return image
    return F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)[0].clamp_(0.0, 1.0)


def write_stimulus_set(stimulus_set: StimulusSet, csv_path: str | os.PathLike[str]) -> Path:
    """Write the table as CSV, the images as a zip of PNGs beside it, and a JSON sidecar (degrees, id).

    ``stimuli.csv`` gets ``stimuli.zip`` and ``stimuli.json``; each is written atomically.

    Example
    -------
    >>> import tempfile, pathlib
    >>> ss = StimulusSet.from_arrays(np.zeros((1, 4, 4, 3), np.uint8), pd.DataFrame({"stimulus_id": ["s0"]}),
    ...                              degrees=8, identifier="toy")
    >>> path = write_stimulus_set(ss, pathlib.Path(tempfile.mkdtemp()) / "toy.csv")
    >>> read_stimulus_set(path).stimulus_ids
    ['s0']
    """
    csv_path = Path(csv_path)
    table = stimulus_set.table.copy()
    if "filename" not in table.columns:
        table["filename"] = [f"{sid}.png" for sid in table["stimulus_id"]]
    images = stimulus_set.read_raw()
    zip_path = csv_path.with_suffix(".zip")
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for fname, img in zip(table["filename"].astype(str), images):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            # a fixed timestamp keeps the zip byte-identical across runs
            zf.writestr(zipfile.ZipInfo(fname, date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    sidecar = {"identifier": stimulus_set.identifier, "degrees": stimulus_set.degrees, "images": zip_path.name}
    with atomic_path(csv_path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(sidecar, indent=2))
    return csv_path


def read_stimulus_set(
    csv_path: str | os.PathLike[str],
    images: str | os.PathLike[str] | None = None,
    degrees: float | None = None,
    identifier: str | None = None,
) -> StimulusSet:
    """Read a stimulus set: the CSV, its JSON sidecar if any, and the zip or folder of images.

    Without a sidecar, ``images`` defaults to ``<stem>.zip`` or the folder ``<stem>/`` and ``degrees``
    must be given.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise NeurofitError(f"stimulus table not found: {csv_path}")
    sidecar_path = csv_path.with_suffix(".json")
    sidecar = _read_sidecar(sidecar_path) if sidecar_path.exists() else {}
    with open(csv_path, "rb") as handle:
        head = handle.read(65536)
    if not head.strip():
        raise ValidationError(f"{csv_path} is not a readable CSV table: the file is empty (a stimulus table needs a "
                              "header row and one row per stimulus)")
    try:
        table = pd.read_csv(csv_path, dtype={"stimulus_id": str, "filename": str}, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValidationError(f"{csv_path} is not a readable CSV table: {str(err).strip().splitlines()[0]}") from err
    if "stimulus_id" not in table.columns:
        raise ValidationError(f"{csv_path} has no 'stimulus_id' column")
    if table.empty:
        raise ValidationError(f"{csv_path} has a header but no stimulus rows")
    if images is None:
        candidates = [csv_path.parent / sidecar["images"]] if "images" in sidecar else []
        candidates += [csv_path.with_suffix(".zip"), csv_path.with_suffix("")]
        images = next((c for c in candidates if c.exists()), None)
        if images is None:
            raise NeurofitError(f"no images found for {csv_path}: expected {candidates[0]}")
    if degrees is None:
        if "degrees" not in sidecar:
            raise ValidationError(f"stimulus set {csv_path} does not say its visual angle; pass degrees=...")
        degrees = check_degrees(sidecar["degrees"], f"{sidecar_path}: key 'degrees'")
    identifier = identifier or sidecar.get("identifier") or csv_path.stem
    return StimulusSet(table=table, images=Path(images), degrees=check_degrees(degrees, str(csv_path)),
                       identifier=identifier)


def _read_sidecar(path: Path) -> dict[str, Any]:
    """The JSON sidecar of a stimulus table: an object with optional ``identifier``, ``degrees``, ``images``."""
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValidationError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(sidecar, dict):
        raise ValidationError(f"{path} must hold a JSON object, got {type(sidecar).__name__}")
    for key in ("identifier", "images"):
        if key in sidecar and not (isinstance(sidecar[key], str) and sidecar[key]):
            raise ValidationError(f"{path}: key {key!r} must be a non-empty string, got {sidecar[key]!r}")
    return sidecar
