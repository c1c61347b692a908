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

from tests.conftest import SETOSA


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


@pytest.fixture(params=["1", "8"], ids=["unbatched", "batched"])
def server(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port, log = free_port(), tmp_path / "server.log"
    process = start(log, port=str(port), batch_max_size=request.param)
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
    artifact = tmp_path / "model.json"
    artifact.write_text("{not json")
    log = tmp_path / "server.log"
    process = start(log, model_path=str(artifact))
    assert process.wait(timeout=30) == 1
    assert log.read_text().strip().splitlines() == [
        f"ERROR: cannot load model from '{artifact}': not valid JSON"
        " (Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1))"
    ]


def test_sigterm_lets_in_flight_request_finish(
    server: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, port, log = server
    body = json.dumps(SETOSA).encode()
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
    assert json.loads(response.split("\r\n\r\n", 1)[1])["label"] == "setosa"
    # uvicorn re-raises SIGTERM once shutdown is complete, so a supervisor sees
    # the signal as the exit reason.
    assert process.wait(timeout=15) == -signal.SIGTERM
    assert "Finished server process" in log.read_text()
