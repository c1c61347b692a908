"""What hostile clients cost the rendered service: bodies, slow clients, huge heads.

From the repository root, with ``requirements-dev.txt`` installed::

    python -m benchmarks.hostile                      # renders and installs a project
    python -m benchmarks.hostile --project DIR        # an installed render (DIR/.venv)

Each section starts ``python -m app`` afresh, at its defaults unless a row says
otherwise, and prints one Markdown table:

- bodies: the costliest bodies found, at the body limit; per body, the status,
  the size of the answer, the rise of the worker's peak memory above idle
  (VmHWM, reset before each body), and the slowest ``/health/live`` answer while
  it was handled (how long the event loop was busy).
- slow clients: with the server's open-file limit at 1024 (``ulimit -n 1024``),
  attackers open connections and send a request head one byte at a time, every
  few seconds, never finishing it; meanwhile a normal client asks
  ``/health/live`` on a new connection every 50 ms. Its failures and latency
  percentiles, and how many attackers the server had closed by the end.
- slow bodies: the same, but each attacker sends a whole head announcing a
  1,000-byte body, then the body a byte at a time, every few seconds.
- heads in one write: a request head of each size, sent whole in one write;
  the status it gets (431 above the limit, 16 KiB by default).
- pipelined: 500 ``GET /health/live`` and the start of one more in one write,
  the rest of that one in a second write; how many answers of each status.
- unterminated heads: connections send header lines that never end; how much the
  server reads and how much its memory grows, with each HTTP parser.

Linux only: it reads /proc. Figures go to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import itertools
import json
import os
import re
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from toolkit.render import bake, poetry_install
from toolkit.serve import SETOSA, serving

MIB = 1024 * 1024
BODY_LIMIT = MIB  # APP_MAX_BODY_BYTES at its default


# --- the server ---------------------------------------------------------------


# The ways to serve the app that a table compares: the service as it starts,
# with settings; and plain uvicorn with httptools, without app/http_protocol.py.
PLAIN_UVICORN = "plain uvicorn, httptools"
PLAIN_UVICORN_CODE = (
    "import os, uvicorn; uvicorn.run('app.main:create_app', factory=True,"
    " port=int(os.environ['APP_PORT']), http='httptools', log_level='warning')"
)


@contextmanager
def serving_service(
    project: Path,
    log: Path,
    settings: Mapping[str, str] | None = None,
    open_files: int | None = None,
    plain: bool = False,
) -> Iterator[tuple[int, int]]:
    """``python -m app`` (or ``plain`` uvicorn) on a free port; yields (pid, port)."""
    python = str(project / ".venv" / "bin" / "python")
    command = [python, "-c", PLAIN_UVICORN_CODE] if plain else [python, "-m", "app"]
    env = {"APP_LOG_LEVEL": "warning", **(settings or {})}
    with serving(command, project, log, env, open_files=open_files) as server:
        yield server.process.pid, server.port


def memory_mib(pid: int, field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no {field} for process {pid}")


def get_live(port: int, timeout: float = 5) -> float:
    """GET /health/live on a new connection; its latency, or raise."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/health/live")
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise OSError(f"status {response.status}")
    return time.perf_counter() - started


def percentile(values: Sequence[float], share: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(share) - 1]


# --- bodies -------------------------------------------------------------------


def filled(head: str, item: str, tail: str) -> bytes:
    count = (BODY_LIMIT - len(head) - len(tail) + 1) // (len(item) + 1)
    return (head + ",".join([item] * count) + tail).encode()


def many_keys(head: str, tail: str) -> bytes:
    keys: list[str] = []
    size = len(head) + len(tail) + 8
    while size < BODY_LIMIT:
        keys.append(f'"{len(keys):x}":0')
        size += len(keys[-1]) + 1
    return (head + ",".join(keys[:-1]) + tail).encode()


def tensor(rows: int) -> str:
    """The protocol's input tensor of ``rows`` Iris measurements, as JSON."""
    values = list(SETOSA.values())
    tensor = {"name": "features", "shape": [rows, len(values)], "datatype": "FP32"}
    return json.dumps({**tensor, "data": [values] * rows})


INFER = "/v2/models/{model}/infer"  # the Open Inference Protocol
ONE_ROW = f'{{"inputs":[{tensor(1)}]'  # a valid request, less its closing brace
OUTPUT = {"name": "probabilities"}  # an output of the Iris model
BODIES = {
    "batch of 524,000 numbers": ("/predict/batch", filled('{"instances":[', "0", "]}")),
    "batch of 350,000 empty objects": (
        "/predict/batch",
        filled('{"instances":[', "{}", "]}"),
    ),
    "batch of 350,000 empty arrays": (
        "/predict/batch",
        filled('{"instances":[', "[]", "]}"),
    ),
    "batch of 12,000 valid instances": (
        "/predict/batch",
        filled('{"instances":[', json.dumps(SETOSA), "]}"),
    ),
    "instances of 14 unknown keys": (
        "/predict/batch",
        filled('{"instances":[', json.dumps({f"k{i}": 0 for i in range(14)}), "]}"),
    ),
    "/predict, 110,000 unknown keys": ("/predict", many_keys("{", "}")),
    "an instance of 110,000 unknown keys": (
        "/predict/batch",
        many_keys('{"instances":[{', "}]}"),
    ),
    "110,000 unknown keys beside the instances": (
        "/predict/batch",
        many_keys('{"instances":[],', "}"),
    ),
    "one unknown key of 1 MiB": (
        "/predict",
        b'{"' + b"k" * (BODY_LIMIT - 8) + b'":0}',
    ),
    "1 MiB of nested [": ("/predict", b"[" * BODY_LIMIT),
    "v2: 350,000 empty tensors": (INFER, filled('{"inputs":[', "{}", "]}")),
    "v2: 110,000 unknown keys": (INFER, many_keys("{", "}")),
    "v2: 110,000 parameters": (INFER, many_keys('{"inputs":[],"parameters":{', "}}")),
    "v2: a shape of 524,000 dimensions": (
        INFER,
        filled(
            '{"inputs":[{"name":"features","datatype":"FP32","data":[1],"shape":[',
            "1",
            "]}]}",
        ),
    ),
    "v2: a value of 1 MiB of text": (
        INFER,
        b'{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":["'
        + b"a" * (BODY_LIMIT - 100)
        + b'",0,0,0]}]}',
    ),
    "v2: 350,000 empty rows": (
        INFER,
        filled(
            '{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[',
            "[]",
            "]}]}",
        ),
    ),
    # The rows below are valid requests of the Iris model (the default render)
    # but for what each row names.
    "v2: 1,000 rows, an output 10,000 times": (
        INFER,
        json.dumps(
            {"inputs": [json.loads(tensor(1000))], "outputs": [OUTPUT] * 10_000}
        ).encode(),
    ),
    "v2: an output 40,000 times": (
        INFER,
        filled(f'{ONE_ROW},"outputs":[', json.dumps(OUTPUT), "]}"),
    ),
    "v2: an id of 1 MiB": (
        INFER,
        f'{ONE_ROW},"id":"'.encode() + b"i" * (BODY_LIMIT - 300) + b'"}',
    ),
    "v2: 11,650 valid tensors": (INFER, filled('{"inputs":[', tensor(1), "]}")),
    "v2: 110,000 parameters of a tensor": (
        INFER,
        many_keys(f'{{"inputs":[{tensor(1)[:-1]},"parameters":{{', "}}]}"),
    ),
    "v2: 110,000 parameters of an output": (
        INFER,
        many_keys(f'{ONE_ROW},"outputs":[{{"name":"label","parameters":{{', "}}]}"),
    ),
}


def post(port: int, path: str, body: bytes, answer: list[tuple[int, int]]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"content-type": "application/json"}
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    answer.append((response.status, len(response.read())))
    connection.close()


def measure_bodies(project: Path, logs: Path) -> list[list[str]]:
    rows = []
    with serving_service(project, logs / "bodies.log") as (pid, port):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/model")
        served = json.load(connection.getresponse())["name"]
        connection.close()
        for name, (route, body) in BODIES.items():
            path = route.format(model=served)
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak := now
            idle = memory_mib(pid, "VmRSS")
            answer: list[tuple[int, int]] = []
            sending = threading.Thread(target=post, args=(port, path, body, answer))
            slowest = 0.0
            sending.start()
            while sending.is_alive():
                slowest = max(slowest, get_live(port, timeout=60))
            sending.join()
            [(status, size)] = answer
            growth = memory_mib(pid, "VmHWM") - idle
            rows.append(
                [
                    name,
                    f"{len(body):,}",
                    str(status),
                    f"{size:,}",
                    f"{max(growth, 0):.0f}",
                    f"{slowest:.2f}",
                ]
            )
    return rows


# --- slow clients -------------------------------------------------------------


# What each attacker sends at once; it then sends a byte every few seconds.
SLOW_HEAD = b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Slow: "
SLOW_BODY = (
    b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    b"Content-Length: 1000\r\n\r\n{"
)


def slow_loris(port: int, count: int, start: bytes = SLOW_HEAD) -> list[socket.socket]:
    """``count`` connections, each with the ``start`` of a request."""
    attackers = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(start)
        sock.setblocking(False)
        attackers.append(sock)
    return attackers


def dribble(attackers: list[socket.socket]) -> int:
    """Send one more byte on each attacker; how many the server has closed."""
    closed = 0
    for sock in attackers:
        try:
            if sock.recv(1024) == b"":  # the server closed it
                closed += 1
                continue
        except BlockingIOError:
            pass  # open, nothing to read
        except OSError:
            closed += 1
            continue
        try:
            sock.send(b"a")
        except OSError:
            closed += 1
    return closed


def measure_slow_clients(
    project: Path,
    logs: Path,
    counts: Sequence[int],
    seconds: float,
    start: bytes = SLOW_HEAD,
    open_files: int = 1024,
    servers: Sequence[str] = ("defaults", PLAIN_UVICORN),
) -> list[list[str]]:
    rows = []
    for server, count in itertools.product(servers, counts):
        method = start.split()[0].decode().lower()
        log = logs / f"slow-{method}-{count}-{server.split()[0]}.log"
        plain = server == PLAIN_UVICORN
        service = serving_service(project, log, open_files=open_files, plain=plain)
        with service as (pid, port):
            attackers = slow_loris(port, count, start)
            latencies: list[float] = []
            failures = 0
            closed = 0
            started = last_dribble = time.monotonic()
            while time.monotonic() - started < seconds:
                try:
                    latencies.append(get_live(port))
                except OSError:
                    failures += 1
                if time.monotonic() - last_dribble > 5:
                    closed = dribble(attackers)
                    last_dribble = time.monotonic()
                time.sleep(0.05)
            closed = dribble(attackers)
            server_fds = len(os.listdir(f"/proc/{pid}/fd"))
            rss = memory_mib(pid, "VmRSS")
            for sock in attackers:
                sock.close()
        rows.append(
            [
                server,
                f"{count:,}",
                f"{len(latencies) + failures}",
                f"{failures}",
                f"{percentile(latencies, 50) * 1000:.1f}",
                f"{percentile(latencies, 99) * 1000:.1f}",
                f"{closed:,}",
                f"{server_fds:,}",
                f"{rss:.0f}",
            ]
        )
    return rows


# --- unterminated heads -------------------------------------------------------


def measure_unterminated_heads(
    project: Path, logs: Path, connections: int, mib_each: int
) -> list[list[str]]:
    rows = []
    chunk = b"X-Header: value\r\n" * 4096  # 68 KiB of header lines
    servers = {"APP_HTTP=httptools": "httptools", "APP_HTTP=h11": "h11"}
    for server in (*servers, PLAIN_UVICORN):
        log = logs / f"heads-{server.split()[0]}.log"
        plain = server == PLAIN_UVICORN
        settings = {} if plain else {"APP_HTTP": servers[server]}
        with serving_service(project, log, settings, plain=plain) as (pid, port):
            idle = memory_mib(pid, "VmRSS")
            sent = refused = 0
            for _ in range(connections):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: test\r\n")
                try:
                    for _ in range(mib_each * MIB // len(chunk)):
                        sock.sendall(chunk)
                        sent += len(chunk)
                except OSError:
                    refused += 1
                sock.close()
            time.sleep(0.5)
            growth = memory_mib(pid, "VmHWM") - idle
        rows.append(
            [
                server,
                f"{connections} x {mib_each} MiB",
                f"{sent / MIB:.1f}",
                f"{refused}",
                f"{growth:.0f}",
            ]
        )
    return rows


# --- heads in one write, pipelined requests ----------------------------------


# The servers these tables compare: the service with each parser, plain uvicorn.
PARSERS = {"APP_HTTP=httptools": "httptools", "APP_HTTP=h11": "h11"}


def exchange(port: int, *writes: bytes) -> list[str]:
    """Send each write on one connection; the statuses of the answers, in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for data in writes:
            sock.sendall(data)
            time.sleep(0.01)  # a read of its own
        sock.settimeout(2)  # once answered, a kept-alive connection goes quiet
        received = b""
        reset = False
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pass
        except ConnectionResetError:  # closed with bytes of ours still unread
            reset = True
    statuses = re.findall(r"HTTP/1\.1 (\d{3}) ", received.decode(errors="replace"))
    return statuses + ["reset"] * (reset and not statuses)


def head_of(size: int) -> bytes:
    start = b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Padding: "
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


def measure_heads_in_one_write(
    project: Path, logs: Path, sizes: Sequence[int]
) -> list[list[str]]:
    rows = []
    for server in (*PARSERS, PLAIN_UVICORN):
        log = logs / f"one-write-{server.split()[0]}.log"
        plain = server == PLAIN_UVICORN
        settings = {} if plain else {"APP_HTTP": PARSERS[server]}
        with serving_service(project, log, settings, plain=plain) as (_, port):
            statuses = [",".join(exchange(port, head_of(size))) for size in sizes]
        rows.append([server, *statuses])
    return rows


def measure_pipelined(project: Path, logs: Path, count: int) -> list[list[str]]:
    rows = []
    request = b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n"
    last = request[:-2] + b"Connection: close\r\n\r\n"
    for server in (*PARSERS, PLAIN_UVICORN):
        log = logs / f"pipelined-{server.split()[0]}.log"
        plain = server == PLAIN_UVICORN
        settings = {} if plain else {"APP_HTTP": PARSERS[server]}
        with serving_service(project, log, settings, plain=plain) as (_, port):
            statuses = exchange(port, request * count + last[:20], last[20:])
        counted = sorted(collections.Counter(statuses).items())
        answers = ", ".join(f"{n:,} x {status}" for status, n in counted)
        rows.append([server, f"{count:,} + 1", answers or "none"])
    return rows


# --- report -------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


SECTIONS = ("bodies", "slow", "slow-bodies", "heads", "one-write", "pipelined")
HEAD_SIZES = (16 * 1024, 16 * 1024 + 1, 17_000, 65_536, 131_072)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--project", type=Path, help="an installed render (with its .venv)"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated: {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--slow-clients",
        default="1000,1100",
        help="attacking connections per row (default: 1000,1100)",
    )
    parser.add_argument(
        "--slow-bodies",
        default="1000,2047",
        help="attacking connections per slow-body row (default: 1000,2047)",
    )
    parser.add_argument(
        "--seconds", type=float, default=30, help="length of each slow-client row"
    )
    parser.add_argument(
        "--open-files",
        type=int,
        default=1024,
        help="the server's open-file limit in the slow-body rows (default: 1024)",
    )
    parser.add_argument(
        "--without-plain",
        action="store_true",
        help="leave plain uvicorn out of the slow-client rows",
    )
    parser.add_argument(
        "--head-connections", type=int, default=2, help="unterminated heads at once"
    )
    parser.add_argument(
        "--head-mib", type=int, default=8, help="MiB each unterminated head sends"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    sections = set(options.sections.split(","))
    # The attackers need more open files than the server is allowed.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workdir = Path(tempfile.mkdtemp(prefix="template-hostile-"))
    if options.project:
        project = options.project.resolve()
    else:
        print("render and install a project to measure", file=sys.stderr)
        baked = bake(workdir / "project")
        poetry_install(baked)
        project = baked.path
    logs = workdir / "logs"
    logs.mkdir()
    slow_servers = (
        ["defaults"] if options.without_plain else ["defaults", PLAIN_UVICORN]
    )
    if "bodies" in sections:
        print("\n## Hostile bodies, at the body limit\n")
        header = ["body", "bytes", "status", "answer bytes", "peak RSS +MiB",
                  "loop busy s"]  # fmt: skip
        print(table(header, measure_bodies(project, logs)), flush=True)
    if "slow" in sections:
        print("\n## Slow clients, server at ulimit -n 1024\n")
        counts = [int(count) for count in options.slow_clients.split(",")]
        header = ["server", "attackers", "normal requests", "failed", "p50 ms",
                  "p99 ms", "attackers closed", "server fds", "RSS MiB"]  # fmt: skip
        rows = measure_slow_clients(
            project, logs, counts, options.seconds, servers=slow_servers
        )
        print(table(header, rows), flush=True)
    if "slow-bodies" in sections:
        print(f"\n## Slow bodies, server at ulimit -n {options.open_files}\n")
        counts = [int(count) for count in options.slow_bodies.split(",")]
        header = ["server", "attackers", "normal requests", "failed", "p50 ms",
                  "p99 ms", "attackers closed", "server fds", "RSS MiB"]  # fmt: skip
        rows = measure_slow_clients(
            project,
            logs,
            counts,
            options.seconds,
            SLOW_BODY,
            options.open_files,
            slow_servers,
        )
        print(table(header, rows), flush=True)
    if "heads" in sections:
        print("\n## Unterminated request heads\n")
        header = ["server", "heads", "MiB sent", "closed by server",
                  "peak RSS +MiB"]  # fmt: skip
        rows = measure_unterminated_heads(
            project, logs, options.head_connections, options.head_mib
        )
        print(table(header, rows), flush=True)
    if "one-write" in sections:
        print("\n## Request heads sent whole in one write\n")
        header = ["server", *(f"{size:,} bytes" for size in HEAD_SIZES)]
        print(table(header, measure_heads_in_one_write(project, logs, HEAD_SIZES)))
    if "pipelined" in sections:
        print("\n## Pipelined requests, the last split over two writes\n")
        header = ["server", "requests", "answers"]
        print(table(header, measure_pipelined(project, logs, 500)), flush=True)
    print(f"\nlogs: {logs}", file=sys.stderr)


if __name__ == "__main__":
    main()
