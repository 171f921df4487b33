"""Bad-input corpus, the dask scheduler address: something that answers but is not dask is a bounded,
one-line error (an HTTP server on the port made the client wait forever).

The address itself is trusted (dask unpickles what a scheduler sends): these are misconfigurations, not
attacks.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time

import pytest

from neurofit.errors import NeurofitError
from neurofit.runners.dask_runner import DaskRunner, check_scheduler


def serve(handler_class) -> tuple[socket.socket, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"tcp://127.0.0.1:{server.server_port}"


class Silent(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def raw_server(respond) -> tuple[socket.socket, str]:
    """A TCP server that runs ``respond(connection)`` on each connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def loop():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=respond, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return listener, f"tcp://127.0.0.1:{listener.getsockname()[1]}"


def test_an_http_server_on_the_port_is_a_bounded_one_line_error(tmp_path):
    server, address = serve(Silent)
    try:
        start = time.monotonic()
        with pytest.raises(NeurofitError, match=rf"no dask scheduler answered at '{address}' within 2 s: .*"
                                                r"\(an HTTP server\?\)"):
            DaskRunner(address, cache_dir=tmp_path, connect_timeout=2)
        assert time.monotonic() - start < 10
    finally:
        server.shutdown()


@pytest.mark.parametrize("respond", [
    lambda conn: conn.close(),  # accepts, then hangs up
    lambda conn: (conn.sendall(b"\xff" * 64 + b"HTTP/1.1 200 OK\r\n\r\n" * 8), time.sleep(5), conn.close()),
    lambda conn: (conn.sendall(bytes(range(256)) * 64), time.sleep(5), conn.close()),
], ids=["hangs-up", "http-noise", "binary-noise"])
def test_a_server_speaking_another_protocol_is_a_bounded_one_line_error(respond):
    listener, address = raw_server(respond)
    try:
        start = time.monotonic()
        with pytest.raises(NeurofitError, match=rf"'{address}'") as caught:
            check_scheduler(address, timeout=2)
        assert time.monotonic() - start < 10 and "\n" not in str(caught.value)
    finally:
        listener.close()


def test_a_real_scheduler_identifies_itself():
    from distributed import Scheduler

    async def run():
        async with Scheduler(dashboard_address=None, port=0) as scheduler:
            return await __import__("asyncio").to_thread(check_scheduler, scheduler.address, 5)

    identity = __import__("asyncio").run(run())
    assert identity["type"] == "Scheduler"


@pytest.mark.slow
def test_score_on_an_http_port_exits_2_in_one_line_within_the_default_timeout(tmp_path):
    server, address = serve(Silent)
    try:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "neurofit.cli", "score", "--model", "cornet_z", "--benchmark",
                               "synthetic-ventral-it-temporal", "--runner", "dask", "--scheduler", address,
                               "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "s.nc")],
                              capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "no dask scheduler answered" in proc.stderr and time.monotonic() - start < 60
    assert not (tmp_path / "s.nc").exists()
