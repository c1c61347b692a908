"""Serve a render (or any server) on a loopback port until it is ready, and call it."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.render import clean_env

# One flower of each end of the Iris data, as the API takes them: what a
# default render must classify as setosa and virginica.
SETOSA = {
    "sepal_length": 5.1,
    "sepal_width": 3.5,
    "petal_length": 1.4,
    "petal_width": 0.2,
}
VIRGINICA = {
    "sepal_length": 6.7,
    "sepal_width": 3.0,
    "petal_length": 5.2,
    "petal_width": 2.3,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, body: Any = None, timeout: float = 5
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@dataclass(frozen=True)
class Running:
    """A server started by ``serving``."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    ready_s: float  # from spawn to the first 200 on its readiness path


@contextmanager
def serving(
    command: Sequence[str | Path],
    cwd: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    ready: str = "/health/ready",
    open_files: int | None = None,
    timeout: float = 30,
    interval: float = 0.1,
) -> Iterator[Running]:
    """Run a server until ``ready`` answers 200; stop it on the way out.

    ``port`` is where the command listens; by default a free one, passed to the
    app as ``APP_PORT``. ``open_files`` caps the server's open files. The output
    goes to ``log``: a file, not a pipe a chatty access log could fill.
    """
    if port is None:
        port = free_port()
        env = {"APP_PORT": str(port), **(env or {})}

    def limit_open_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    with log.open("w") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=clean_env(env),
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_open_files,  # only sets the open-file limit
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(url + ready, process, log, timeout, interval)
            yield Running(url, port, process, time.perf_counter() - started)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def serving_app(
    python: Path, cwd: Path, log: Path, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Run ``python -m app`` on a free loopback port until ready; yield its URL."""
    with serving([python, "-m", "app"], cwd, log, env) as server:
        yield server.url


def wait_until_ready(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 30,
    interval: float = 0.1,
) -> None:
    """Poll ``url`` until it answers 200, whatever the body; fail with the
    server's log if the server exits or the answer never comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"{' '.join(process.args)} exited {process.returncode}:\n"
                + log.read_text()
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError(f"{url} not ready within {timeout} s:\n{log.read_text()}")
