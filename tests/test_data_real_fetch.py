"""Manifests and fetching: validation, mirror lookup, checksum errors, downloads that never half-land."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from neurofit.cli import main as cli_main
from neurofit.data.fetch import fetch_dataset, list_datasets, load_dataset, verify_dataset
from neurofit.data.manifest import get_manifest, list_manifests, load_manifest
from neurofit.errors import ChecksumError, NeurofitError, ValidationError

MIRROR = Path(os.environ.get("NEUROFIT_DATA_PATH", "").split(os.pathsep)[0] or "/nonexistent")
EXPECTED_IDS = {
    "cowley2023-v4-210325",
    "cowley2023-v4-210322",
    "cowley2023-v4-190923",
    "cowley2023-v4-210224",
    "zhang-desimone-2011-it",
    "cifar10-resnet20",
}


def needs_mirror(relpath: str):
    return pytest.mark.skipif(not (MIRROR / relpath).is_file(), reason=f"mirror lacks {relpath}")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty cache and no mirror, so nothing leaks in from the real environment."""
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NEUROFIT_DATA_PATH", raising=False)
    return tmp_path


def write_manifest(directory: Path, *, dataset_id: str, files: list[dict], loader: str = "files") -> Path:
    lines = [
        f'id = "{dataset_id}"',
        'description = "test"',
        'citation = "test"',
        'license = "CC0"',
        f'[loader]\nname = "{loader}"',
    ]
    for entry in files:
        lines.append("[[files]]")
        for key, value in entry.items():
            lines.append(f"{key} = {value!r}" if isinstance(value, int) else f'{key} = "{value}"')
    path = directory / f"{dataset_id}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_shipped_manifests_cover_the_required_datasets_and_validate():
    manifests = list_manifests()
    assert EXPECTED_IDS <= set(manifests)
    zhang = manifests["zhang-desimone-2011-it"]
    assert len(zhang.files) == 132
    urls = [f.url for m in manifests.values() for f in m.files]
    assert all(url.startswith("https://raw.githubusercontent.com/") for url in urls)


def test_unknown_dataset_id_lists_the_valid_ones():
    with pytest.raises(NeurofitError) as err:
        get_manifest("cowley2099")
    message = str(err.value)
    assert "cowley2099" in message
    for dataset_id in EXPECTED_IDS:
        assert dataset_id in message


@pytest.mark.parametrize(
    ("mutation", "key"),
    [
        ({"sha256": "abc"}, "sha256"),
        ({"size": "12"}, "size"),
        ({"path": "../escape.bin"}, "path"),
        ({"url": "ftp://x/y"}, "url"),
    ],
)
def test_malformed_manifest_names_file_and_key(tmp_path, mutation, key):
    entry = {"path": "d/x.bin", "url": "https://example.org/x.bin", "sha256": "0" * 64, "size": 3}
    entry.update(mutation)
    path = write_manifest(tmp_path, dataset_id="bad", files=[entry])
    with pytest.raises(ValidationError) as err:
        load_manifest(path)
    assert str(path) in str(err.value) and f"'{key}'" in str(err.value)


def test_manifest_missing_key_is_named(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('id = "x"\ndescription = "d"\nlicense = "l"\n[loader]\nname = "files"\n')
    with pytest.raises(ValidationError, match=r"m\.toml: missing key 'citation'"):
        load_manifest(path)


def test_manifest_directory_override(tmp_path, monkeypatch):
    write_manifest(tmp_path, dataset_id="only-one", files=[
        {"path": "d/x.bin", "url": "https://example.org/x.bin", "sha256": "0" * 64, "size": 3}])
    monkeypatch.setenv("NEUROFIT_MANIFESTS", str(tmp_path))
    assert list(list_manifests()) == ["only-one"]


@pytest.mark.realdata
@needs_mirror("cowley2023_v4/images/images_210325.zip")
def test_verify_passes_on_the_mirror(monkeypatch):
    monkeypatch.setenv("NEUROFIT_DATA_PATH", str(MIRROR))
    for dataset_id in sorted(EXPECTED_IDS):
        report = verify_dataset(dataset_id)
        assert report.ok, report.summary()
    assert cli_main(["data", "verify", *sorted(EXPECTED_IDS)]) == 0


def test_cli_lists_datasets_and_rejects_unknown_ids(capsys):
    assert cli_main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert all(dataset_id in out for dataset_id in EXPECTED_IDS)
    assert cli_main(["data", "verify", "no-such-dataset"]) == 2
    assert "valid ids: cifar10-resnet20" in capsys.readouterr().err


@pytest.mark.realdata
@needs_mirror("cowley2023_v4/responses_raw/responses_210325.npy")
def test_verify_and_fetch_fail_on_a_copy_with_one_flipped_byte(isolated, monkeypatch):
    copy_root = isolated / "mirror"
    manifest = get_manifest("cowley2023-v4-210325")
    for entry in manifest.files:
        target = copy_root / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MIRROR / entry.path, target)
    bad = copy_root / "cowley2023_v4/responses_raw/responses_210325.npy"
    data = bytearray(bad.read_bytes())
    data[1000] ^= 0x01
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("NEUROFIT_DATA_PATH", str(copy_root))

    assert cli_main(["data", "verify", "cowley2023-v4-210325"]) == 1
    assert cli_main(["data", "fetch", "cowley2023-v4-210325"]) == 2
    report = verify_dataset("cowley2023-v4-210325")
    assert not report.ok
    [failed] = [c for c in report.files if c.status != "ok"]
    assert failed.path.endswith("responses_210325.npy") and failed.status == "mismatch"
    assert failed.actual_sha256 == hashlib.sha256(bytes(data)).hexdigest()

    with pytest.raises(ChecksumError) as err:
        fetch_dataset("cowley2023-v4-210325")
    message = str(err.value)
    assert str(bad) in message and failed.actual_sha256 in message and failed.expected_sha256 in message
    assert bad.exists(), "a mirror file is never deleted"


@pytest.mark.realdata
@needs_mirror("zhang_desimone_it/bp1001spk_01A_raster_data.mat")
def test_mirror_serves_files_without_network(isolated, monkeypatch):
    monkeypatch.setenv("NEUROFIT_DATA_PATH", f"{isolated / 'empty'}{os.pathsep}{MIRROR}")

    def no_network(*args, **kwargs):
        raise AssertionError("network used although the mirror holds every file")

    monkeypatch.setattr("pooch.retrieve", no_network)
    paths = fetch_dataset("zhang-desimone-2011-it")
    assert len(paths) == 132
    assert all(p.is_relative_to(MIRROR) for p in paths.values())
    rows = {row["id"]: row for row in list_datasets()}
    assert rows["zhang-desimone-2011-it"]["local_files"] == 132


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def web_root(tmp_path):
    root = tmp_path / "web"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_lands_in_cache_only_when_the_hash_matches(isolated, web_root, monkeypatch):
    root, base = web_root
    payload = b"neurofit test payload\n" * 100
    (root / "good.bin").write_bytes(payload)
    (root / "bad.bin").write_bytes(payload[:-1] + b"X")
    digest = hashlib.sha256(payload).hexdigest()
    manifests = isolated / "manifests"
    manifests.mkdir()
    for name in ("good", "bad"):
        write_manifest(manifests, dataset_id=name, files=[
            {"path": f"web/{name}.bin", "url": f"{base}/{name}.bin", "sha256": digest, "size": len(payload)}])
    monkeypatch.setenv("NEUROFIT_MANIFESTS", str(manifests))

    with pytest.raises(ChecksumError, match="bad.bin"):
        fetch_dataset("bad")
    cached = isolated / "cache" / "web"
    assert not (cached / "bad.bin").exists(), "a corrupt download must not become a cache entry"

    paths = fetch_dataset("good")
    assert paths["web/good.bin"] == cached / "good.bin"
    assert paths["web/good.bin"].read_bytes() == payload
    assert verify_dataset("good").ok


def test_unreachable_url_without_mirror_says_how_to_fix(isolated, web_root, monkeypatch):
    _, base = web_root
    manifests = isolated / "manifests"
    manifests.mkdir()
    write_manifest(manifests, dataset_id="gone", files=[
        {"path": "web/gone.bin", "url": f"{base}/gone.bin", "sha256": "0" * 64, "size": 1}])
    monkeypatch.setenv("NEUROFIT_MANIFESTS", str(manifests))
    with pytest.raises(NeurofitError, match="NEUROFIT_DATA_PATH"):
        fetch_dataset("gone")
    assert not verify_dataset("gone").ok


def test_weights_only_dataset_has_no_recording():
    with pytest.raises(NeurofitError, match="files only"):
        load_dataset("cifar10-resnet20")


def test_unknown_loader_option_is_named_with_the_valid_ones():
    with pytest.raises(NeurofitError, match=r"unknown loader option 'bins'.*valid options: .*bin_ms"):
        load_dataset("zhang-desimone-2011-it", bins=5)
    with pytest.raises(NeurofitError, match=r"unknown loader option 'bin_ms'.*window_ms"):
        load_dataset("cowley2023-v4-210325", bin_ms=10)
