"""``python -m app`` as an operator runs it: a real process on a real port."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import model
from tests.conftest import FEATURE_NAMES, FIRST, resigned_artifact


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(log: Path, **settings: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **{f"APP_{k.upper()}": v for k, v in settings.items()}}
    with log.open("wb") as output:  # a file: an unread pipe would stall the server
        return subprocess.Popen(
            [sys.executable, "-m", "app"], env=env, stdout=output, stderr=output
        )


def wait_for_line(log: Path, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text()}"
        time.sleep(0.01)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port, log = free_port(), tmp_path / "server.log"
    process = start(log, port=str(port))
    deadline = time.monotonic() + 15
    while True:
        assert process.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1)
            break
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    yield process, port, log
    if process.poll() is None:
        process.kill()
        process.wait()


def test_corrupt_model_stops_service_with_one_clear_line(tmp_path: Path) -> None:
    data = bytearray(model.DEFAULT_MODEL_PATH.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(data)
    log = tmp_path / "server.log"
    process = start(log, model_path=str(artifact))
    assert process.wait(timeout=30) == 1
    assert log.read_text().strip().splitlines() == [
        f"ERROR: cannot load model from '{artifact}':"
        " checksum mismatch: the file was changed or damaged"
    ]


def test_model_that_does_not_fit_features_stops_service_with_one_line(
    tmp_path: Path,
) -> None:
    name = FEATURE_NAMES[0]
    renamed = name[:-1] + ("x" if name[-1] != "x" else "y")
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(resigned_artifact(name.encode(), renamed.encode()))
    log = tmp_path / "server.log"
    process = start(log, model_path=str(artifact))
    assert process.wait(timeout=30) == 1
    (line,) = log.read_text().strip().splitlines()
    prefix = f"ERROR: cannot load model from '{artifact}': Features has fields"
    assert line.startswith(prefix), line
    assert f"but the model takes ({renamed}," in line, line


def test_sigterm_lets_in_flight_request_finish(
    server: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, port, log = server
    body = json.dumps(FIRST.features).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = (
            b"POST /predict HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        )
        sock.sendall(head % len(body) + body[:10])
        # Once the server has answered a later request, it has read this one,
        # which is now in flight, waiting for the rest of its body.
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5)
        process.send_signal(signal.SIGTERM)
        wait_for_line(log, "Waiting for connections to close")
        assert process.poll() is None, "exited with a request in flight"
        sock.sendall(body[10:])
        # The server closes the connection once the response is out: read to EOF.
        response = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
    assert response.startswith("HTTP/1.1 200 OK"), response
    assert json.loads(response.split("\r\n\r\n", 1)[1])["label"] == FIRST.label
    # uvicorn re-raises SIGTERM once shutdown is complete, so a supervisor sees
    # the signal as the exit reason.
    assert process.wait(timeout=15) == -signal.SIGTERM
    assert "Finished server process" in log.read_text()
