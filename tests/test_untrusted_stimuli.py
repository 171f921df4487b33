"""Bad-input corpus, stimulus sets: bounded reading and hashing, one-line errors for malformed files.

The audit's cases: a 2 MB zip holding a 1.5 GB zero-filled member (hashing read it whole: 3.4 GB peak), a
144-megapixel PNG (2.5 GB), ``degrees = inf`` (the model saw a 1-pixel crop), ``degrees: "abc"``, a sidecar
that does not parse, and an images file that is not a zip.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurofit.data.stimuli import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    StimulusSet,
    read_stimulus_set,
    write_stimulus_set,
)
from neurofit.errors import ValidationError


def zip_of_zeros(path: Path, name: str, size: int, declared: int | None = None) -> Path:
    """A zip whose one deflated member unpacks to ``size`` zero bytes, built without compressing them.

    A deflate segment of 1 MiB of zeros from a fresh compressor refers to nothing before itself, so
    repeating its bytes is a valid stream of any multiple of 1 MiB. ``declared`` makes the header lie.
    """
    chunk = 1 << 20
    assert size % chunk == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    data = segment * (size // chunk) + b"\x03\x00"  # an empty final block ends the stream
    crc = 0
    zeros = bytes(chunk)
    for _ in range(size // chunk):
        crc = zlib.crc32(zeros, crc)
    usize = size if declared is None else declared
    encoded = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), usize, len(encoded), 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), usize,
                          len(encoded), 0, 0, 0, 0, 0, 0)
    offset = len(local) + len(encoded) + len(data)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(encoded), offset, 0)
    path.write_bytes(local + encoded + data + central + encoded + end)
    return path


def png_of_zeros(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit grayscale PNG of ``width x height`` black pixels (small on disk, huge decoded)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = zlib.compress(bytes(height * (1 + (width + 7) // 8)), 9)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def peak_mib(action) -> tuple[BaseException | None, float]:
    """Run ``action()``; return the exception it raised (if any) and the peak of memory it allocated (MiB).

    tracemalloc sees Python and numpy buffers: the whole-member ``zf.read`` and the decoded image array
    that the audit measured at 3.4 and 2.5 GB.
    """
    tracemalloc.start()
    try:
        action()
        raised = None
    except Exception as err:
        raised = err
    finally:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return raised, peak


def test_the_zip_helper_builds_a_member_that_really_unpacks_to_zeros(tmp_path):
    path = zip_of_zeros(tmp_path / "z.zip", "a.bin", 3 << 20)
    with zipfile.ZipFile(path) as zf:
        assert zf.read("a.bin") == bytes(3 << 20) and zf.testzip() is None


def test_a_zip_member_of_1_5_gb_of_zeros_is_refused_within_a_small_memory_bound(tmp_path):
    path = zip_of_zeros(tmp_path / "bomb.zip", "zeros.png", 1536 << 20)
    assert path.stat().st_size < 3 << 20
    ss = StimulusSet(pd.DataFrame({"stimulus_id": ["a"], "filename": ["zeros.png"]}), path, 8.0, "bomb")
    for action in (ss.sha256, ss.read_raw):
        err, peak = peak_mib(action)
        assert isinstance(err, ValidationError) and peak < 16
        assert "member 'zeros.png' unpacks to 1536 MiB" in str(err)
        assert f"at most {MAX_IMAGE_BYTES // 2**20} MiB" in str(err)


def test_a_zip_member_whose_header_understates_its_size_is_never_read_past_it(tmp_path):
    path = zip_of_zeros(tmp_path / "liar.zip", "zeros.png", 64 << 20, declared=1000)
    ss = StimulusSet(pd.DataFrame({"stimulus_id": ["a"], "filename": ["zeros.png"]}), path, 8.0, "liar")
    err, peak = peak_mib(ss.sha256)
    assert isinstance(err, ValidationError) and "is not a readable zip file" in str(err) and peak < 16


def test_a_144_megapixel_png_is_refused_before_it_is_decoded(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    png_of_zeros(folder / "big.png", 12000, 12000)
    ss = StimulusSet(pd.DataFrame({"stimulus_id": ["a"], "filename": ["big.png"]}), folder, 8.0, "big")
    assert peak_mib(ss.sha256) == (None, pytest.approx(0, abs=16))
    err, peak = peak_mib(lambda: ss.load_images(32))
    assert isinstance(err, ValidationError) and peak < 64
    assert "has 12000 x 12000 = 144 megapixels" in str(err) and f"at most {MAX_IMAGE_PIXELS / 1e6:.0f}" in str(err)


def test_an_image_at_the_pixel_bound_decodes(tmp_path, monkeypatch):
    import neurofit.data.stimuli as stimuli_mod

    folder = tmp_path / "images"
    folder.mkdir()
    png_of_zeros(folder / "ok.png", 40, 30)
    monkeypatch.setattr(stimuli_mod, "MAX_IMAGE_PIXELS", 1200)
    ss = StimulusSet(pd.DataFrame({"stimulus_id": ["a"], "filename": ["ok.png"]}), folder, 8.0, "ok")
    assert ss.read_raw()[0].shape == (30, 40, 3)
    monkeypatch.setattr(stimuli_mod, "MAX_IMAGE_PIXELS", 1199)
    with pytest.raises(ValidationError, match="has 40 x 30"):
        ss.read_raw()


@pytest.fixture
def written(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    ss = StimulusSet.from_arrays(images, pd.DataFrame({"stimulus_id": ["a", "b", "c"]}), 8.0, "toy")
    return write_stimulus_set(ss, tmp_path / "toy.csv")


@pytest.mark.parametrize(("degrees", "shown"), [
    (float("inf"), "inf"), (float("nan"), "nan"), (-8, "-8"), (0, "0"), ("abc", "'abc'"), (True, "True"),
    ([8], r"\[8\]"), (None, "None"),
])
def test_sidecar_degrees_that_are_not_a_finite_positive_number_are_one_line(written, degrees, shown):
    sidecar = written.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["degrees"] = degrees
    sidecar.write_text(json.dumps(meta))  # json writes inf/nan as Infinity/NaN, which it also reads
    with pytest.raises(ValidationError, match=rf"toy\.json: key 'degrees': degrees must be a finite number > 0, "
                                              rf"got {shown}"):
        read_stimulus_set(written)


def test_degrees_inf_in_python_is_refused_too():
    with pytest.raises(ValidationError, match="degrees must be a finite number > 0, got inf"):
        StimulusSet.from_arrays(np.zeros((1, 4, 4, 3), np.uint8), pd.DataFrame({"stimulus_id": ["a"]}),
                                float("inf"), "toy")
    ss = StimulusSet.from_arrays(np.zeros((1, 4, 4, 3), np.uint8), pd.DataFrame({"stimulus_id": ["a"]}), 8, "t")
    with pytest.raises(ValidationError, match="target_degrees.*got inf"):
        ss.place_on_screen(float("inf"))


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", r"toy\.json is not valid JSON"),
    ("[1, 2]", r"toy\.json must hold a JSON object, got list"),
    ('{"degrees": 8, "images": 3}', r"toy\.json: key 'images' must be a non-empty string, got 3"),
    ('{"degrees": 8, "identifier": ""}', r"toy\.json: key 'identifier' must be a non-empty string"),
    (b"\xff\xfe\x00garbage", r"toy\.json is not valid JSON"),
])
def test_a_sidecar_that_is_not_a_json_object_is_one_line(written, text, message):
    sidecar = written.with_suffix(".json")
    sidecar.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValidationError, match=message):
        read_stimulus_set(written)


def test_an_images_file_that_is_not_a_zip_is_one_line(written):
    written.with_suffix(".zip").write_bytes(b"this is not a zip file")
    ss = read_stimulus_set(written)
    for action in (ss.sha256, ss.read_raw):
        with pytest.raises(ValidationError, match=r"toy\.zip is not a readable zip file"):
            action()


def test_a_zip_with_a_damaged_member_is_one_line(written):
    path = written.with_suffix(".zip")
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF  # inside the first member's stored bytes: its CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ValidationError, match=r"toy\.zip is not a readable zip file \(Bad CRC-32"):
        read_stimulus_set(written).sha256()


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\xfa\x00\x01", b'a,"b\n1,"2\n'])
def test_a_table_that_is_not_a_csv_is_one_line(written, content):
    written.write_bytes(content)
    with pytest.raises(ValidationError, match=r"toy\.csv is not a readable CSV table|has no 'stimulus_id'"):
        read_stimulus_set(written)


def test_a_folder_filename_that_leaves_the_folder_is_refused(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    ss = StimulusSet(pd.DataFrame({"stimulus_id": ["a"], "filename": ["../secret.png"]}), folder, 8.0, "f")
    for action in (ss.sha256, ss.read_raw):
        with pytest.raises(ValidationError, match=r"filename '\.\./secret\.png' leads outside its image folder"):
            action()


def test_hashing_a_stimulus_zip_is_unchanged_by_streaming(written):
    # the content hash (cache keys, provenance) is the same as reading each member whole
    import hashlib

    ss = read_stimulus_set(written)
    h = hashlib.sha256()
    h.update(ss.table.to_csv(index=False).encode())
    h.update(json.dumps([ss.degrees, ss.screen_degrees]).encode())
    with zipfile.ZipFile(written.with_suffix(".zip")) as zf:
        for name in sorted(zf.namelist()):
            h.update(name.encode())
            h.update(zf.read(name))
    assert ss.sha256() == h.hexdigest()
