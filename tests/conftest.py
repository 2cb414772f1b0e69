"""Fixtures shared by every test tree.

``shared_data``: the real public data bundle (../shared/data next to the repository, or the folder named by
APPLECIDER_SHARED_DATA). Tests that need it skip with a clear reason when it is absent, so a fresh clone
without the bundle still passes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("APPLECIDER_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "README.md").is_file():
        pytest.skip(f"real data bundle not found at {path} (set APPLECIDER_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never reach the network: any socket connection to a non-loopback address fails loudly."""
    import socket

    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
            raise RuntimeError(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def error_line(capsys):
    """``error_line()`` after a failed ``cider`` call: asserts no traceback was printed and exactly one
    ``error:`` line went to stderr, and returns that line."""

    def read() -> str:
        captured = capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err
        lines = [line for line in captured.err.splitlines() if "error:" in line]
        assert len(lines) == 1, captured.err
        return lines[0]

    return read


@pytest.fixture
def recorded_server(tmp_path):
    """Start ``recorded_server.py`` (a separate process on 127.0.0.1) with given routes; yields (url, log)."""
    import json
    import subprocess
    import sys
    import time
    from pathlib import Path

    processes = []

    def start(routes: dict) -> tuple[str, Path]:
        routes_path, port_file, log = tmp_path / "routes.json", tmp_path / "port", tmp_path / "requests.log"
        routes_path.write_text(json.dumps(routes))
        script = Path(__file__).parent / "data" / "recorded_server.py"
        proc = subprocess.Popen([sys.executable, str(script), str(routes_path), str(port_file), str(log)])
        processes.append(proc)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("recorded server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{port_file.read_text()}", log

    yield start
    for proc in processes:
        proc.terminate()
        proc.wait(timeout=10)
