"""Bad-input corpus, files on disk: full disks, directories named as outputs, umask, stale temporaries, hashes.

A full disk is reported as such (netCDF says only ``RuntimeError('NetCDF: HDF error')``); an output that
is a directory is refused before any work; finished files get the user's umask; temporaries left by a
``kill -9`` are swept; the hash memo never returns a stale sha256.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from neurofit import atomic, hashing
from neurofit.atomic import atomic_path, check_writable_target, remove_stale_temporaries
from neurofit.data.io import write_netcdf
from neurofit.errors import DiskFullError, NeurofitError


def run_on_a_full_disk(tmp_path: Path, code: str, size: str = "256k") -> subprocess.CompletedProcess:
    """Run ``code`` (python; the mount point is ``sys.argv[1]``) with a tiny tmpfs mounted in a private mount
    namespace, so that writes there really fail with ENOSPC; skip where namespaces are not allowed."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1)")
    mount = tmp_path / "full"
    mount.mkdir()
    script = (f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(mount))} || exit 77; "
              f"exec {shlex.quote(sys.executable)} -c {shlex.quote(textwrap.dedent(code))} {shlex.quote(str(mount))}")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    if proc.returncode == 77 or "unshare failed" in proc.stderr or "Operation not permitted" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {proc.stderr.strip()[:200]}")
    return proc


def test_a_netcdf_write_to_a_really_full_disk_is_reported_as_a_full_disk(tmp_path):
    proc = run_on_a_full_disk(tmp_path, """
        import sys, os, numpy as np, xarray as xr
        from neurofit.data.io import write_netcdf
        from neurofit.errors import DiskFullError
        try:
            write_netcdf(xr.Dataset({"v": (("a", "b"), np.random.rand(400, 400))}), sys.argv[1] + "/x.nc")
        except DiskFullError as err:
            print("DISKFULL", err, os.listdir(sys.argv[1]))
        """)
    assert "DISKFULL no space left on the device for" in proc.stdout, proc.stderr
    assert "NetCDF: HDF error" in proc.stdout and proc.stdout.rstrip().endswith("[]"), "no temporary is left"


def test_a_cache_write_to_a_really_full_disk_is_logged_and_the_extraction_returns(tmp_path):
    proc = run_on_a_full_disk(tmp_path, """
        import sys, logging
        logging.basicConfig(level=logging.WARNING)
        from neurofit.extract import RandomProjection, extract_activations
        sys.path.insert(0, "tests")
        from test_extract_activations import TinyBiological, make_stimuli
        acts = extract_activations(TinyBiological(), make_stimuli(n=64), cache_dir=sys.argv[1],
                                   reduction=RandomProjection(dim=256), progress=False)
        print("RETURNED", acts.layers)
        """, size="64k")
    assert "RETURNED ['A', 'B', 'C']" in proc.stdout, proc.stderr
    assert "could not write activation cache entry" in proc.stderr and "no space left" in proc.stderr


def test_a_runtime_error_on_a_nearly_full_disk_becomes_disk_full(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**9, 10**9, 1024))

    def hdf_error(*args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", hdf_error)
    with pytest.raises(DiskFullError, match=r"no space left on the device for .*x\.nc.*0\.0 MiB free"):
        write_netcdf(xr.Dataset({"v": ("d", [1.0])}), tmp_path / "x.nc")
    assert list(tmp_path.iterdir()) == []
    # with room on the disk, the same error is not blamed on it
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**12, 0, 10**12))
    with pytest.raises(RuntimeError, match="HDF error"):
        write_netcdf(xr.Dataset({"v": ("d", [1.0])}), tmp_path / "x.nc")


def test_a_directory_as_output_is_refused_in_one_line(tmp_path):
    with pytest.raises(NeurofitError, match=r"cannot write .*: it is a directory; name a file in it instead"):
        check_writable_target(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NeurofitError, match=r"is a file, not a directory"):
        check_writable_target(tmp_path / "file" / "out.nc")


def test_finished_files_get_the_users_umask_not_0600(tmp_path):
    from neurofit.models.checkpoint import load_model, save_checkpoint

    old = os.umask(0o022)
    try:
        checkpoint = save_checkpoint(load_model("cornet_z", width=4), tmp_path / "z.safetensors")
        with atomic_path(tmp_path / "plain.txt") as tmp:
            tmp.write_text("x")
        os.umask(0o077)
        with atomic_path(tmp_path / "private.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert oct(checkpoint.stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "plain.txt").stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "private.txt").stat().st_mode & 0o777) == "0o600"


def test_a_download_gets_the_users_umask(tmp_path, monkeypatch):
    from neurofit.data.fetch import fetch_file
    from neurofit.data.manifest import Manifest, ManifestFile

    payload = b"weights" * 100
    served = tmp_path / "served"
    served.mkdir()
    (served / "w.bin").write_bytes(payload)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NEUROFIT_DATA_PATH", raising=False)
    entry = ManifestFile(path="d/w.bin", url=f"http://127.0.0.1:{server.server_port}/w.bin",
                         sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
    manifest = Manifest(id="d", description="", citation="", license="", loader="files", loader_options={},
                        files=(entry,), source=tmp_path / "d.toml")
    old = os.umask(0o022)
    try:
        path = fetch_file(entry, manifest)
    finally:
        os.umask(old)
        server.shutdown()
    assert path.read_bytes() == payload and oct(path.stat().st_mode & 0o777) == "0o644"


def test_temporaries_of_a_killed_writer_are_swept_by_the_next_write(tmp_path):
    # a writer killed with SIGKILL in the middle of an atomic write leaves its hidden temporary behind
    code = textwrap.dedent(f"""
        import time
        from neurofit.atomic import atomic_path
        with atomic_path({str(tmp_path / "synthetic-x.nc")!r}) as tmp:
            tmp.write_bytes(b"half")
            print("writing", flush=True)
            time.sleep(60)
        """)
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".synthetic-x.nc.") and left[0].endswith(".tmp")
    # a temporary of a live writer and one of an older neurofit (no pid) that is recent are kept
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live_tmp = tmp_path / f".other.nc.nf-{atomic._HOST}-{live.pid}.abcd1234.tmp"
        live_tmp.write_text("busy")
        legacy_recent = tmp_path / ".old.nc.abcd_123.tmp"
        legacy_recent.write_text("?")
        legacy_stale = tmp_path / ".old2.nc.efgh_456.tmp"
        legacy_stale.write_text("?")
        day_ago = time.time() - atomic.STALE_TMP_SECONDS - 60
        os.utime(legacy_stale, (day_ago, day_ago))
        atomic._swept.discard(str(tmp_path.resolve()))
        with atomic_path(tmp_path / "next.nc") as tmp:
            tmp.write_text("done")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [live_tmp.name, legacy_recent.name, "next.nc"])
    finally:
        live.kill()
        live.wait()
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [live_tmp.name]


def test_the_hash_memo_sees_a_same_size_same_mtime_edit(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"A" * 1000)
    stat = path.stat()
    first = hashing.file_sha256(path)
    path.write_bytes(b"B" * 1000)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert hashing.file_sha256(path) == hashlib.sha256(b"B" * 1000).hexdigest() != first


def test_the_hash_memo_is_used_for_files_that_have_not_changed(tmp_path, monkeypatch):
    path = tmp_path / "old.bin"
    path.write_bytes(np.arange(1000).tobytes())
    monkeypatch.setattr(hashing, "RACY_SECONDS", -60.0)  # pretend the file is old
    expected = hashing.file_sha256(path)
    opened = []
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or open(self, *a, **k))
    assert hashing.file_sha256(path) == expected and opened == []
