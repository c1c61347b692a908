"""``python -m app`` as an operator runs it: a real process on a real port.

The tests that start servers are marked ``slow``: ``pytest -m slow`` runs them.
"""

import contextlib
import http.client
import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from app import __main__ as entry_point
from app import model
from app.deps import BUSY
from tests.conftest import (
    FEATURE_NAMES,
    FIRST,
    MODEL,
    PREDICT,
    post_head,
    predicted,
    resigned_artifact,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(log: Path, **settings: str) -> subprocess.Popen[bytes]:
    return start_with_open_files(log, None, settings)


def start_with_open_files(
    log: Path, open_files: int | None, settings: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """``python -m app`` with these settings, and this many open files at most."""
    env = {**os.environ, **{f"APP_{k.upper()}": v for k, v in settings.items()}}

    def limit_open_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    with log.open("wb") as output:  # a file: an unread pipe would stall the server
        return subprocess.Popen(
            [sys.executable, "-m", "app"],
            env=env,
            stdout=output,
            stderr=output,
            preexec_fn=limit_open_files,
        )


def wait_for_line(log: Path, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text()}"
        time.sleep(0.01)


def wait_until_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1)
            return
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


Server = tuple[subprocess.Popen[bytes], int, Path]


@contextmanager
def serving(directory: Path, **settings: str) -> Iterator[Server]:
    """``python -m app`` on a free port, with these settings."""
    port, log = free_port(), directory / "server.log"
    process = start(log, port=str(port), **settings)
    try:
        wait_until_ready(process, port, log)
        yield process, port, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A server of its own, for a test that stops it; ``request.param``: settings."""
    with serving(tmp_path, **getattr(request, "param", {})) as running:
        yield running


# Shared by the tests that leave it running: short deadlines, and a small
# limit on request heads, so that they can be reached quickly.
HEAD_LIMIT = 4096
SHARED_SETTINGS = {
    "timeout_keep_alive": "1",
    "timeout_body": "1",
    "max_head_bytes": str(HEAD_LIMIT),
}


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("shared"), **SHARED_SETTINGS) as running:
        yield running


def test_one_worker_serves_the_model_it_loaded_to_fail_fast(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    loads: list[Path] = []
    load = model.load

    def counted_load(path: Path, **options: Any) -> model.Model:
        loads.append(path)
        return load(path, **options)

    served: list[tuple[object, dict[str, object]]] = []
    monkeypatch.chdir(tmp_path)  # no developer's .env
    monkeypatch.setattr(model, "load", counted_load)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    entry_point.main()
    [(app, options)] = served
    assert options["factory"] is False
    assert not isinstance(app, str)
    with TestClient(app) as client:  # type: ignore[arg-type]
        response = client.post("/predict", json=FIRST.features)
    assert response.status_code == 200, response.text
    assert len(loads) == 1


def test_several_workers_each_build_the_app_from_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    served: list[tuple[object, dict[str, object]]] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP_WORKERS", "2")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    entry_point.main()
    [(app, options)] = served
    assert app == entry_point.FACTORY
    assert (options["factory"], options["workers"]) == (True, 2)


MIB = 1024 * 1024
BODY_LIMIT = MIB  # APP_MAX_BODY_BYTES at its default


def filled(head: str, item: str, tail: str) -> bytes:
    """``head item,item,...,item tail``, as long as the body limit allows."""
    count = (BODY_LIMIT - len(head) - len(tail) + 1) // (len(item) + 1)
    return (head + ",".join([item] * count) + tail).encode()


def many_keys(head: str, tail: str) -> bytes:
    """An object of distinct short keys, as many as the body limit allows."""
    keys: list[str] = []
    size = len(head) + len(tail) + 8
    while size < BODY_LIMIT:
        keys.append(f'"{len(keys):x}":0')
        size += len(keys[-1]) + 1
    return (head + ",".join(keys[:-1]) + tail).encode()


def tensor(rows: int) -> str:
    """The protocol's input tensor of ``rows`` valid instances, as JSON."""
    values = list(FIRST.features.values())
    return json.dumps(
        {
            "name": "features",
            "shape": [rows, len(values)],
            "datatype": "FP32",
            "data": [values] * rows,
        }
    )


# The bodies, at the body limit, that cost the most to refuse.
INFER = "/v2/models/{model}/infer"
ONE_ROW = '{"inputs":[' + tensor(1) + "]"  # a valid request, less its closing brace
OUTPUT = json.dumps({"name": next(iter(MODEL.outputs))})
HOSTILE_BODIES = {
    "batch of numbers": ("/predict/batch", filled('{"instances":[', "0", "]}")),
    "batch of empty objects": ("/predict/batch", filled('{"instances":[', "{}", "]}")),
    "batch of empty arrays": ("/predict/batch", filled('{"instances":[', "[]", "]}")),
    "batch of valid instances": (
        "/predict/batch",
        filled('{"instances":[', json.dumps(FIRST.features), "]}"),
    ),
    "instances of a few unknown keys": (
        "/predict/batch",
        filled('{"instances":[', json.dumps({f"k{i}": 0 for i in range(14)}), "]}"),
    ),
    "unknown keys": ("/predict", many_keys("{", "}")),
    "unknown keys in an instance": (
        "/predict/batch",
        many_keys('{"instances":[{', "}]}"),
    ),
    "unknown keys beside the instances": (
        "/predict/batch",
        many_keys('{"instances":[],', "}"),
    ),
    "one long unknown key": ("/predict", b'{"' + b"k" * (BODY_LIMIT - 8) + b'":0}'),
    "deep nesting": ("/predict", b"[" * BODY_LIMIT),
    "tensors": (INFER, filled('{"inputs":[', "{}", "]}")),
    "unknown keys for the inference protocol": (INFER, many_keys("{", "}")),
    "parameters": (INFER, many_keys('{"inputs":[],"parameters":{', "}}")),
    "a tensor of many dimensions": (
        INFER,
        filled(
            '{"inputs":[{"name":"features","datatype":"FP32","data":[1],"shape":[',
            "1",
            "]}]}",
        ),
    ),
    "a tensor of empty rows": (
        INFER,
        filled(
            '{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[',
            "[]",
            "]}]}",
        ),
    ),
    "a tensor of long text": (
        INFER,
        b'{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":["'
        + b"a" * (BODY_LIMIT - 100)
        + b'",0,0,0]}]}',
    ),
    # Each output asked for again would repeat its tensor in the answer.
    "a thousand rows, an output asked for 10,000 times": (
        INFER,
        json.dumps(
            {
                "inputs": [json.loads(tensor(1000))],
                "outputs": [json.loads(OUTPUT)] * 10_000,
            }
        ).encode(),
    ),
    "an output asked for again and again": (
        INFER,
        filled(f'{ONE_ROW},"outputs":[', OUTPUT, "]}"),
    ),
    "a long id": (
        INFER,
        f'{ONE_ROW},"id":"'.encode() + b"i" * (BODY_LIMIT - 300) + b'"}',
    ),
    "valid tensors": (INFER, filled('{"inputs":[', tensor(1), "]}")),
    # Answered: parameters the model does not use are left alone.
    "parameters of a tensor": (
        INFER,
        many_keys('{"inputs":[' + tensor(1)[:-1] + ',"parameters":{', "}}]}"),
    ),
    "parameters of an output": (
        INFER,
        many_keys(ONE_ROW + ',"outputs":[' + OUTPUT[:-1] + ',"parameters":{', "}}]}"),
    ),
}
ANSWERED = {"parameters of a tensor", "parameters of an output"}


def memory_mib(pid: int, field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for process {pid}")


def slowest_answer_while(port: int, action: threading.Thread) -> float:
    """The slowest /health/live answer, in seconds, while ``action`` runs."""
    slowest = 0.0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    action.start()
    while action.is_alive():
        started = time.monotonic()
        connection.request("GET", "/health/live")
        connection.getresponse().read()
        slowest = max(slowest, time.monotonic() - started)
    connection.close()
    return slowest


def post(port: int, path: str, body: bytes, answer: list[tuple[int, bytes]]) -> None:
    """POST a JSON body; append the status and content of the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json"}
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    answer.append((response.status, response.read()))
    connection.close()


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="reads peak memory from /proc"
)
def test_hostile_bodies_cost_little_memory_time_and_answer(
    shared_server: Server,
) -> None:
    process, port, _ = shared_server
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/model") as response:
        served = json.load(response)["name"]
    costs: dict[str, tuple[int, int, int, float]] = {}
    for name, (route, body) in HOSTILE_BODIES.items():
        assert len(body) <= BODY_LIMIT, name
        path = route.format(model=served)
        # Start the peak afresh from what the worker holds now, when idle.
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")
        idle = memory_mib(process.pid, "VmRSS")
        answer: list[tuple[int, bytes]] = []
        sending = threading.Thread(target=post, args=(port, path, body, answer))
        blocked = slowest_answer_while(port, sending)
        [(status, content)] = answer
        growth = memory_mib(process.pid, "VmHWM") - idle
        costs[name] = (status, len(content), round(growth), round(blocked, 2))
    # Each: a 422 (400 from the inference protocol) or, for a valid request of
    # one instance, a 200; at most 64 KiB of answer, 64 MiB of memory above
    # idle, and half a second with the event loop busy.
    too_costly = {
        name: f"{status}, {size} bytes, +{growth} MiB, loop blocked {blocked} s"
        for name, (status, size, growth, blocked) in costs.items()
        if not (
            status in ((200,) if name in ANSWERED else (400, 422))
            and size <= 64 * 1024
            and growth <= 64
            and blocked <= 0.5
        )
    }
    assert too_costly == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    "sent", [b"", b"GET /health/live HTTP/1.1\r\nHost: te"], ids=["idle", "slow-head"]
)
def test_connection_without_a_whole_head_in_time_gets_408(
    shared_server: Server, sent: bytes
) -> None:
    _, port, _ = shared_server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        response = read_to_end(sock)
    assert response.startswith("HTTP/1.1 408 "), response
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_connection_sending_only_empty_lines_after_a_request_gets_408(
    shared_server: Server,
) -> None:
    _, port, _ = shared_server
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/health/live")
    response = connection.getresponse()
    response.read()
    assert response.status == 200
    assert connection.sock is not None
    with connection.sock as sock:
        # The parser skips empty lines before a request: they start its head.
        started = time.monotonic()
        with contextlib.suppress(OSError):
            while time.monotonic() - started < 5 and not readable(sock):
                sock.sendall(b"\r\n")
                time.sleep(0.1)
        answer = read_to_end(sock)
    assert answer.startswith("HTTP/1.1 408 "), answer


HEAD_OVER_4_KIB = b"GET /health/live HTTP/1.1\r\n" + b"X-Header: value\r\n" * 512


def head_of(size: int) -> bytes:
    """A whole request head of ``size`` bytes that asks for /health/live."""
    start = b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Padding: "
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


# What comes before a head in the same write, and the answers it gets.
BEFORE_THE_HEAD = {
    "alone": (b"", []),
    "after-a-request": (head_of(100), ["200"]),
    "after-a-body": (post_head("/predict", len(PREDICT)) + PREDICT, ["200"]),
}
# Ways to cut the bytes into writes: the server reads each on its own.
SPLITS: dict[str, Callable[[bytes], list[bytes]]] = {
    "one-write": lambda data: [data],
    "halves": lambda data: [data[: len(data) // 2], data[len(data) // 2 :]],
    # The empty line that ends it, split between two reads.
    "last-byte-apart": lambda data: [data[:-1], data[-1:]],
    "last-2-bytes-apart": lambda data: [data[:-2], data[-2:]],
    "last-3-bytes-apart": lambda data: [data[:-3], data[-3:]],
    "lines": lambda data: [line + b"\n" for line in data.split(b"\n")[:-1]],
    "500-byte-chunks": lambda data: [
        data[at : at + 500] for at in range(0, len(data), 500)
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("before", BEFORE_THE_HEAD)
@pytest.mark.parametrize(
    ("size", "status"), [(HEAD_LIMIT, "200"), (HEAD_LIMIT + 1, "431")]
)
def test_request_head_is_refused_only_over_the_limit_however_it_is_sent(
    shared_server: Server, size: int, status: str, before: str, split: str
) -> None:
    _, port, _ = shared_server
    earlier, earlier_answers = BEFORE_THE_HEAD[before]
    writes = SPLITS[split](earlier + head_of(size))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for data in writes:
            sock.sendall(data)
            time.sleep(0.005)  # one read each
        if status == "200":
            sock.sendall(b"GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n")
        response = read_to_end(sock)
    answers = re.findall(r"HTTP/1\.1 (\d{3}) ", response)
    expected = [*earlier_answers, status, *(["200"] if status == "200" else [])]
    assert answers == expected, response


@pytest.mark.slow
def test_request_head_that_never_ends_is_refused(shared_server: Server) -> None:
    _, port, _ = shared_server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(HEAD_OVER_4_KIB)
        response = read_to_end(sock)
    assert response.startswith("HTTP/1.1 431 "), response


@pytest.mark.slow
def test_pipelined_requests_are_each_answered(shared_server: Server) -> None:
    _, port, _ = shared_server
    request = b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n"
    last = b"GET /health/live HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Far more than the head limit in one write, with the start of a head.
        sock.sendall(request * 200 + last[:20])
        time.sleep(0.005)
        sock.sendall(last[20:])
        response = read_to_end(sock)
    answers = re.findall(r"HTTP/1\.1 (\d{3}) ", response)
    assert answers == ["200"] * 201, response[:300]


@pytest.mark.slow
@pytest.mark.parametrize("server", [{**SHARED_SETTINGS, "http": "h11"}], indirect=True)
def test_request_head_that_never_ends_is_refused_by_h11(server: Server) -> None:
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(HEAD_OVER_4_KIB)
        response = read_to_end(sock)
    assert response.startswith("HTTP/1.1 400 "), response  # uvicorn's h11 answer


def start_of_a_body(port: int) -> socket.socket:
    """A connection whose POST /predict has sent its head and one body byte."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(post_head("/predict", len(PREDICT)) + b"{")
    return sock


@pytest.mark.slow
@pytest.mark.parametrize(
    "server",
    [{"timeout_body": "1", "limit_concurrency": "4"}],
    indirect=True,
)
def test_body_not_sent_in_time_gets_408_and_frees_its_request_slot(
    server: Server,
) -> None:
    _, port, log = server
    live = f"http://127.0.0.1:{port}/health/live"
    # Connections count towards the limit too: with these, it is reached.
    slow = [start_of_a_body(port) for _ in range(3)]
    with pytest.raises(urllib.error.HTTPError, match="503") as refused:
        urllib.request.urlopen(live)
    # uvicorn's own 503, beyond APP_LIMIT_CONCURRENCY, says when to come back.
    assert refused.value.headers["retry-after"] == "1"
    started = time.monotonic()
    responses = [read_to_end(sock) for sock in slow]
    assert time.monotonic() - started < 5
    for sock in slow:
        sock.close()
    assert all(r.startswith("HTTP/1.1 408 ") for r in responses), responses
    with urllib.request.urlopen(live) as response:
        assert response.status == 200
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.mark.slow
def test_slow_bodies_beyond_the_open_file_limit_leave_room_for_new_clients(
    tmp_path: Path,
) -> None:
    # More slow bodies than the process may open files, with a deadline that
    # comes after the test: only the room kept for new connections lets the
    # normal requests in.
    port, log = free_port(), tmp_path / "server.log"
    settings = {"port": str(port), "timeout_body": "60"}
    process = start_with_open_files(log, 256, settings)
    slow: list[socket.socket] = []
    try:
        wait_until_ready(process, port, log)
        slow += [start_of_a_body(port) for _ in range(400)]
        for _ in range(20):
            started = time.monotonic()
            live = f"http://127.0.0.1:{port}/health/live"
            with urllib.request.urlopen(live, timeout=5) as response:
                assert response.status == 200
            assert time.monotonic() - started < 1
        # Those that waited longest were ended, as at their deadline; the
        # last ones are still waiting.
        assert read_to_end(slow[0]).startswith("HTTP/1.1 408 ")
        assert not readable(slow[-1])
    finally:
        for sock in slow:
            sock.close()
        process.kill()
        process.wait()
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    "server", [{"max_model_requests": "1", "timeout_body": "30"}], indirect=True
)
def test_a_full_service_turns_requests_away_before_the_app(server: Server) -> None:
    _, port, log = server
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/model") as response:
        infer = f"/v2/models/{json.load(response)['name']}/infer"
    # The only place, taken by a request whose body does not come.
    with stalled_upload(port, b"{", len(PREDICT)):
        answers = {}
        for path in ("/predict", infer):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request(
                "POST", path, PREDICT, {"Content-Type": "application/json"}
            )
            refused = connection.getresponse()
            answers[path] = (
                refused.status,
                refused.headers["retry-after"],
                json.load(refused),
            )
            connection.close()
        live = f"http://127.0.0.1:{port}/health/live"
        with urllib.request.urlopen(live) as response:
            assert response.status == 200
    assert answers == {
        "/predict": (503, "1", {"detail": BUSY}),
        infer: (503, "1", {"error": BUSY}),
    }
    # Answered by the HTTP protocol, before the app: it wrote no line for them
    # (the app logs each request it answers, such as the probe after them).
    wait_for_line(log, " GET /health/live 200 ")
    logged = log.read_text()
    assert " 503 " not in logged, logged


@pytest.mark.slow
@pytest.mark.parametrize(
    "server", [{"max_model_requests": "1", "timeout_body": "30"}], indirect=True
)
def test_a_full_service_answers_in_order_and_keeps_the_connection(
    server: Server,
) -> None:
    """Refused by the HTTP protocol, a request is answered in its turn among
    those pipelined with it, its body is dropped however it comes, and the
    connection serves the client's next request; unless the client closes it."""
    _, port, _ = server
    infer = f"/v2/models/{MODEL.name}/infer"
    live = b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n"
    last = b"GET /health/live HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    with stalled_upload(port, b"{", len(PREDICT)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                live
                + post_head("/predict", len(PREDICT))
                + PREDICT
                + post_head(infer, len(PREDICT))
                + PREDICT[:5]  # the rest of this body comes later
            )
            time.sleep(0.2)
            sock.sendall(PREDICT[5:] + last)
            answers = read_to_end(sock)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(post_head("/predict", len(PREDICT), "1.0") + PREDICT)
            closed_after = read_to_end(sock)  # HTTP/1.0: closed after the answer
    statuses = re.findall(r"HTTP/1\.1 (\d{3}) ", answers)
    assert statuses == ["200", "503", "503", "200"], answers
    parts = answers.split("HTTP/1.1 ")
    assert parts[2].endswith(json.dumps({"detail": BUSY}, separators=(",", ":")))
    assert "retry-after: 1\r\n" in parts[2]
    assert parts[3].endswith(json.dumps({"error": BUSY}, separators=(",", ":")))
    assert closed_after.startswith("HTTP/1.1 503 "), closed_after
    assert "connection: close\r\n" in closed_after


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_invalid_settings_stop_service_with_one_line_each(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = start(log, port="abc", workers="0", max_body_bytes="-1")
    assert process.wait(timeout=30) == 2
    assert log.read_text().splitlines() == [
        "ERROR: 'abc' is not a valid APP_PORT: input should be a valid integer,"
        " unable to parse string as an integer",
        "ERROR: '0' is not a valid APP_WORKERS: input should be greater than or"
        " equal to 1",
        "ERROR: '-1' is not a valid APP_MAX_BODY_BYTES: input should be greater"
        " than or equal to 1",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "server",
    [
        {"workers": "1", "max_rows_per_run": "1"},
        {"workers": "1", "max_rows_per_run": "8"},
        {"workers": "2"},
    ],
    ids=["1-worker-unbatched", "1-worker-batched", "2-workers"],
    indirect=True,
)
def test_sigterm_lets_in_flight_request_finish_then_exits_0(server: Server) -> None:
    process, port, log = server
    with stalled_upload(port, PREDICT[:10], len(PREDICT)) as sock:
        process.send_signal(signal.SIGTERM)
        wait_for_line(log, "Waiting for connections to close")
        assert process.poll() is None, "exited with a request in flight"
        sock.sendall(PREDICT[10:])
        response = read_to_end(sock)
    assert response.startswith("HTTP/1.1 200 OK"), response
    assert json.loads(response.split("\r\n\r\n", 1)[1]) == predicted(FIRST.features)
    assert process.wait(timeout=15) == 0
    assert "Finished server process" in log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("server", [{"timeout_graceful_shutdown": "1"}], indirect=True)
def test_stalled_request_is_answered_503_at_the_shutdown_deadline(
    server: Server,
) -> None:
    process, port, log = server
    with stalled_upload(port, b'{"', 100) as sock:
        process.send_signal(signal.SIGTERM)
        response = read_to_end(sock)
    assert response.startswith("HTTP/1.1 503 Service Unavailable"), response
    assert process.wait(timeout=15) == 0
    output = log.read_text()
    assert "Traceback" not in output, output
    assert " POST /predict 503 " in output, output


@contextmanager
def stalled_upload(port: int, sent: bytes, length: int) -> Iterator[socket.socket]:
    """A connection whose POST /predict is in flight: ``sent`` of ``length`` bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(post_head("/predict", length) + sent)
        # Once the server has answered a later request, it has read this one,
        # which is now in flight, waiting for the rest of its body. With several
        # workers another one may answer, so give this one a moment too.
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5)
        time.sleep(0.2)
        yield sock


def readable(sock: socket.socket) -> bool:
    """Whether the server has sent something, or closed the connection."""
    return bool(select.select([sock], [], [], 0)[0])


def read_to_end(sock: socket.socket) -> str:
    """What the server sends until it closes the connection."""
    return b"".join(iter(lambda: sock.recv(65536), b"")).decode()
