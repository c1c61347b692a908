"""What load shedding does for the requests let in, at several times capacity.

The service serves the heavy MLP (heavy/build.py, about 1 ms a row alone) with
its defaults, batching and ``APP_MAX_MODEL_REQUESTS`` included, and logs a JSON
line per request. First its capacity: wrk keeps as many requests to ``POST
/predict`` in flight as the service lets in at once (64 at the default; a
closed loop, so none is turned away) and counts the requests a second it
answers. Then requests arrive at a fixed rate, whatever the answers (an open
loop: wrk with ``paced.lua`` over 1,024 connections), at multiples of that
capacity. Per load:

- the requests let in (200): their latency as their clients saw it, from the
  request's start to its answer (wrk, ``paced.lua``), and as the service logged
  it, from the head read to the answer. The two differ in where requests
  wait: at capacity, in a closed loop, a request waits mostly before the
  service reads it, every connection sending its next one at the same moment
  as the others; at several times capacity, the requests let in wait mostly
  inside the service, which reads at once what it then turns away;
- those turned away (503), as wrk counts them, and of them those the app
  turned away, with their logged latency (the HTTP protocol turns most away
  before the app, and no line is logged for those);
- a probe, one client beside the load sending ``POST /predict`` every 5 ms
  and timing each answer as a client sees it, waits for the service to read
  the request included: how long those let in and those turned away took;
- the CPU used, in cores: the service's event loop (its main thread), the
  service in all, wrk, and everything else on the machine.

All of it in rounds (``--rounds``, 3 by default): each round measures capacity
and then each multiple of the capacity it measured, in one server, and the ratio
of a multiple's p99 to capacity's is taken within its round; the machine's
moods, which move such a ratio by several times from one run to the next on a
shared 2-core machine, then weigh on both sides of it. A second pass does the
same with shedding out of the way (a limit above every load), at the rates of
the first pass's median capacity, for comparison::

    python -m benchmarks.overload --project ../iris-classifier

``--project`` is an installed render (its ``.venv``). With
``--refusal-cost``, it measures only what turning a request away costs the
service, twice (``measure_refusals``). Figures go to benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.load import wrk, wrk_summary
from benchmarks.measure import (
    children_cpu_seconds,
    machine_busy_seconds,
    tree_cpu_seconds,
)
from benchmarks.serving import heavy_project
from toolkit.serve import serving

PACED_SCRIPT = Path(__file__).with_name("paced.lua")
DEFAULT_LIMIT = 64  # APP_MAX_MODEL_REQUESTS
# Before each row: the requests that the previous row's wrk left behind are
# answered (without shedding, four times capacity leaves over half a second of
# them), so that they count in neither row.
SETTLE_SECONDS = 1.5


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def durations(log: Path, start: int) -> dict[int, list[float]]:
    """Milliseconds of each /predict request logged after byte ``start``, by status."""
    by_status: dict[int, list[float]] = {}
    with log.open() as lines:
        lines.seek(start)
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("path") == "/predict":
                by_status.setdefault(record["status"], []).append(record["duration_ms"])
    return by_status


def paced_wrk(
    url: str, rate: float | None, connections: int, seconds: int
) -> dict[str, Any]:
    """wrk at ``rate`` requests a second, over at most ``connections``; with
    no rate, each connection's next request as soon as it has its answer."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    command += ["-s", str(PACED_SCRIPT), url]
    summary = wrk_summary(command, seconds, WRK_RATE=f"{rate:.0f}" if rate else "")
    errors = sum(summary[k] for k in ("connect", "read", "write", "timeout"))
    return {
        "rps": summary["requests"] / (summary["duration_us"] / 1e6),
        "http_errors": summary["non_2xx_3xx"],
        "socket_errors": errors,
        # The answers 200 as the client saw them, from the request's start.
        "client_ok_p50_ms": summary["ok_p50_us"] / 1000,
        "client_ok_p99_ms": summary["ok_p99_us"] / 1000,
    }


PREDICT_BODY = json.dumps(
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
)


class Probe(threading.Thread):
    """One client beside the load: ``POST /predict`` every few milliseconds on
    a connection of its own, timing each answer as a client sees it. The
    service logs no line for a request its HTTP protocol turns away, so the
    probe is what times those."""

    def __init__(self, port: int, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.timings: dict[int, list[float]] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"content-type": "application/json"}
        while not self.stopping.wait(self.interval):
            started = time.perf_counter()
            connection.request("POST", "/predict", PREDICT_BODY, headers)
            response = connection.getresponse()
            response.read()
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.timings.setdefault(response.status, []).append(elapsed_ms)
        connection.close()

    def stop(self) -> dict[int, list[float]]:
        self.stopping.set()
        self.join()
        return self.timings


def thread_cpu_seconds(pid: int) -> float:
    """CPU time of a process's main thread: the service's event loop."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_meter(pid: int) -> Callable[[], dict[str, float]]:
    """Start counting CPU; the returned function gives the shares of a core
    since then: the service's event loop, the service in all, wrk, the rest."""
    started = time.monotonic()
    loop, service = thread_cpu_seconds(pid), sum(tree_cpu_seconds(pid))
    machine, children = machine_busy_seconds(), children_cpu_seconds()

    def shares() -> dict[str, float]:
        elapsed = time.monotonic() - started
        used = {
            "loop": thread_cpu_seconds(pid) - loop,
            "service": sum(tree_cpu_seconds(pid)) - service,
            "wrk": children_cpu_seconds() - children,
            "machine": machine_busy_seconds() - machine,
        }
        used["others"] = used["machine"] - used["service"] - used["wrk"]
        return {name: seconds / elapsed for name, seconds in used.items()}

    return shares


def row(
    number: int,
    load: str,
    figures: dict[str, Any],
    by_status: dict[int, list[float]],
    cpu: dict[str, float],
    probed: dict[int, list[float]],
) -> dict[str, Any]:
    let_in, turned_away = by_status.get(200, []), by_status.get(503, [])
    return {
        "round": number,
        "load": load,
        "cpu": cpu,
        "probe_ok_p99_ms": percentile(probed.get(200, []), 0.99),
        "probe_shed": len(probed.get(503, [])),
        "probe_shed_p99_ms": percentile(probed.get(503, []), 0.99),
        "probe_shed_max_ms": max(probed.get(503, []), default=float("nan")),
        "rps": figures["rps"],
        "ok": len(let_in),
        "shed": figures["http_errors"],  # wrk's count: no other status came
        "shed_by_app": len(turned_away),
        "ok_p50_ms": percentile(let_in, 0.5),
        "ok_p99_ms": percentile(let_in, 0.99),
        "client_ok_p50_ms": figures["client_ok_p50_ms"],
        "client_ok_p99_ms": figures["client_ok_p99_ms"],
        "shed_p99_ms": percentile(turned_away, 0.99),
        "shed_max_ms": max(turned_away, default=float("nan")),
        "socket_errors": figures["socket_errors"],
        "other": {k: len(v) for k, v in by_status.items() if k not in (200, 503)},
    }


def measure(
    project: Path,
    workdir: Path,
    multiples: Sequence[float],
    seconds: int,
    limit: int | None,
    connections: int,
    held: int,
    rounds: int,
    capacity: float | None = None,
) -> list[dict[str, Any]]:
    """Each round, in one server: the capacity row, with ``held`` requests in
    flight, then a row per multiple of ``capacity`` (by default, the capacity
    measured in that round)."""
    python = project / ".venv" / "bin" / "python"
    env = {
        "APP_MODEL_PATH": str(project / "mlp.onnx"),
        "APP_LOG_JSON": "true",
        "APP_LIMIT_CONCURRENCY": str(connections * 4),
    }
    if limit is not None:
        env["APP_MAX_MODEL_REQUESTS"] = str(limit)
    log = workdir / f"service-{limit}.log"
    rows = []
    open_files = connections * 8
    with serving(
        [python, "-m", "app"], project, log, env, open_files=open_files
    ) as server:
        url = f"{server.url}/predict"
        options = argparse.Namespace(threads=1, connections=held)
        wrk(url, options, 3, None)  # warm up
        pid = server.process.pid

        def measured(
            number: int, load: str, rate: float | None, count: int, probe: bool
        ) -> dict[str, Any]:
            time.sleep(SETTLE_SECONDS)
            start, cpu = log.stat().st_size, cpu_meter(pid)
            beside = Probe(server.port) if probe else None
            if beside is not None:
                beside.start()
            figures = paced_wrk(url, rate, count, seconds)
            by_status, used = durations(log, start), cpu()
            probed = beside.stop() if beside is not None else {}
            return row(number, load, figures, by_status, used, probed)

        for number in range(1, rounds + 1):
            # No probe here: a request beside those held would be one too many.
            rows.append(measured(number, "capacity", None, held, probe=False))
            rate = capacity or rows[-1]["rps"]
            for multiple in multiples:
                load = f"{multiple:g}x, {multiple * rate:,.0f}/s"
                rows.append(
                    measured(number, load, multiple * rate, connections, probe=True)
                )
    return rows


def ratios(rows: Sequence[dict[str, Any]], key: str) -> dict[str, list[float]]:
    """By multiple (its load's first word), the let-in p99 over the p99 at
    capacity of the same round, one ratio a round."""
    at_capacity = {r["round"]: r[key] for r in rows if r["load"] == "capacity"}
    by_multiple: dict[str, list[float]] = {}
    for r in rows:
        if r["load"] != "capacity":
            multiple = r["load"].split(",")[0]
            by_multiple.setdefault(multiple, []).append(
                r[key] / at_capacity[r["round"]]
            )
    return by_multiple


def measure_refusals(project: Path, workdir: Path, seconds: int) -> dict[str, float]:
    """What a refusal costs the service: with one request holding the only
    place (``APP_MAX_MODEL_REQUESTS=1``, its body never sent), wrk's 64
    connections get only 503s; the service's CPU time per refusal."""
    python = project / ".venv" / "bin" / "python"
    env = {"APP_MAX_MODEL_REQUESTS": "1", "APP_TIMEOUT_BODY": str(seconds * 10)}
    log = workdir / "refusals.log"
    with serving([python, "-m", "app"], project, log, env) as server:
        holder = socket.create_connection(("127.0.0.1", server.port))
        holder.sendall(
            b"POST /predict HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        time.sleep(0.5)  # let in: it holds the place
        url = f"{server.url}/predict"
        options = argparse.Namespace(threads=1, connections=64)
        wrk(url, options, 2, None)  # warm up
        user, system = tree_cpu_seconds(server.process.pid)
        figures = wrk(url, options, seconds, None)
        user_after, system_after = tree_cpu_seconds(server.process.pid)
        holder.close()
    cpu = user_after - user + system_after - system
    return {
        "rps": figures["rps"],
        "refused": figures["http_errors"] / figures["requests"],
        "cpu_us": cpu / figures["requests"] * 1e6,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument(
        "--multiples", default="1,2,4", help="loads, as multiples of capacity"
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="capacity and each multiple in turn, this many times",
    )
    parser.add_argument(
        "--connections", type=int, default=1024, help="wrk's, at a fixed rate"
    )
    parser.add_argument(
        "--limit", type=int, help="APP_MAX_MODEL_REQUESTS (default: the service's)"
    )
    parser.add_argument(
        "--refusal-cost",
        action="store_true",
        help="measure only what a refusal costs (the render as it is, Iris)",
    )
    parser.add_argument(
        "--without-unlimited",
        action="store_true",
        help="leave out the pass with shedding out of the way",
    )
    options = parser.parse_args(argv)
    multiples = [float(n) for n in options.multiples.split(",")]
    # wrk's connections are open files of this process's children.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if options.refusal_cost:
        with tempfile.TemporaryDirectory() as directory:
            for run in (1, 2):
                cost = measure_refusals(
                    options.project.resolve(), Path(directory), options.seconds
                )
                print(
                    f"run {run}: {cost['rps']:,.0f} answers/s,"
                    f" {cost['refused']:.1%} of them 503,"
                    f" {cost['cpu_us']:.0f} us of the service's CPU each"
                )
        return
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        project = heavy_project(options.project.resolve(), workdir)
        (project / ".venv").symlink_to((options.project / ".venv").resolve())
        shedding = measure(
            project,
            workdir,
            multiples,
            options.seconds,
            options.limit,
            options.connections,
            held=options.limit or DEFAULT_LIMIT,
            rounds=options.rounds,
        )
        results = {f"shedding at {options.limit or 'its default'}": shedding}
        if not options.without_unlimited:
            results["no shedding"] = measure(
                project,
                workdir,
                multiples,
                options.seconds,
                100_000,
                options.connections,
                held=options.limit or DEFAULT_LIMIT,
                rounds=options.rounds,
                capacity=percentile(
                    [r["rps"] for r in shedding if r["load"] == "capacity"], 0.5
                ),
            )
    print(
        "| service | round | load | req/s | let in | turned away (by the app)"
        " | let in, clients saw: p50 / p99 ms | let in, service logged: p50 / p99 ms"
        " | turned away by the app: p99 / max ms"
        " | probe: let in p99 ms | probe: turned away, p99 / max ms"
        " | CPU: loop / service / wrk / others |"
    )
    print("| --- | ---: | --- |" + " ---: |" * 9)
    for name, rows in results.items():
        for r in rows:
            print(
                f"| {name} | {r['round']} | {r['load']} | {r['rps']:,.0f} | {r['ok']:,}"
                f" | {r['shed']:,} ({r['shed_by_app']:,})"
                f" | {r['client_ok_p50_ms']:.1f} / {r['client_ok_p99_ms']:.1f}"
                f" | {r['ok_p50_ms']:.1f} / {r['ok_p99_ms']:.1f}"
                f" | {r['shed_p99_ms']:.2f} / {r['shed_max_ms']:.2f}"
                f" | {r['probe_ok_p99_ms']:.1f}"
                f" | {r['probe_shed']}: {r['probe_shed_p99_ms']:.2f}"
                f" / {r['probe_shed_max_ms']:.2f}"
                f" | {r['cpu']['loop']:.2f} / {r['cpu']['service']:.2f}"
                f" / {r['cpu']['wrk']:.2f} / {r['cpu']['others']:.2f} |"
                + (f" socket errors {r['socket_errors']}" if r["socket_errors"] else "")
                + (f" other {r['other']}" if r["other"] else "")
            )
    client, logged = ratios(shedding, "client_ok_p99_ms"), ratios(shedding, "ok_p99_ms")
    for multiple, by_round in client.items():
        print(
            f"at {multiple}, the let-in p99 over the p99 at capacity of its round:"
            f" median {percentile(by_round, 0.5):.2f}x as clients saw them"
            f" (by round {', '.join(f'{x:.2f}x' for x in by_round)}),"
            f" {percentile(logged[multiple], 0.5):.2f}x as the service logged them"
            f" (by round {', '.join(f'{x:.2f}x' for x in logged[multiple])})"
        )


if __name__ == "__main__":
    main()
