"""How a server is loaded and measured: wrk in its own process, in slices, round
after round, every server of a round running side by side; requests per second
and per CPU-second, latency percentiles, memory, and what the rest of the
machine used meanwhile. ``benchmarks.run``, ``benchmarks.overload`` and
``benchmarks.peers`` load their servers this way."""

# ruff: noqa: S603  (it runs wrk and the servers under test)

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.measure import (
    children_cpu_seconds,
    machine_busy_seconds,
    median,
    ratio,
    tree_cpu_seconds,
    tree_rss_mib,
)
from toolkit.serve import SETOSA, Running, free_port, http, serving

WRK_SCRIPT = Path(__file__).resolve().parent / "post.lua"
READY_TIMEOUT = 30.0
# Seconds between slices: more than a slow model's p99 under load.
SETTLE_SECONDS = 0.3


@dataclass
class Server:
    """How to start one app under test on the port it is given."""

    key: str
    name: str
    command: Callable[[int], list[str]]
    cwd: Path
    env: Callable[[int], dict[str, str]] = field(default=lambda port: {})
    path: str = "/predict"
    batch: int | None = None
    script: Path = WRK_SCRIPT  # the wrk script that writes the body
    # The status of the request sent by hand before the load, which sends no key.
    expect: int = 200


@contextlib.contextmanager
def running(server: Server, log: Path) -> Iterator[Running]:
    port = free_port()
    try:
        # Polled every 5 ms: the time it takes is the cold-start figure.
        with serving(
            server.command(port),
            server.cwd,
            log,
            server.env(port),
            port=port,
            timeout=READY_TIMEOUT,
            interval=0.005,
        ) as live:
            yield live
    except AssertionError as error:
        raise SystemExit(f"{server.name}: {error}") from None


def check_answers(server: Server, url: str) -> None:
    """One request by hand before the load, with no key: the status the server
    expects (a 401 where keys are on), and a 200 has a prediction in it."""
    body: Any = {"instances": [SETOSA] * server.batch} if server.batch else SETOSA
    status, answer = http("POST", url + server.path, body)
    if status != server.expect or (status == 200 and "label" not in json.dumps(answer)):
        raise SystemExit(f"{server.name}: POST {server.path} -> {status} {answer}")


def wrk_summary(command: list[str], seconds: float, **env: str) -> dict[str, Any]:
    """Run wrk to its end; the summary its Lua script prints as JSON."""
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=dict(os.environ, **env),
        timeout=seconds + 60,
        check=False,
    )
    match = re.search(r"^WRK_SUMMARY (.*)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or not match:
        raise SystemExit(f"wrk failed:\n{result.stdout}\n{result.stderr}")
    summary: dict[str, Any] = json.loads(match.group(1))
    return summary


def wrk(
    url: str,
    options: argparse.Namespace,
    seconds: float,
    batch: int | None,
    script: Path = WRK_SCRIPT,
):
    command = ["wrk", f"-t{options.threads}", f"-c{options.connections}"]
    command += [f"-d{seconds:g}s", "--timeout", "5s", "-s", str(script), url]
    summary = wrk_summary(command, seconds, WRK_BATCH=str(batch or ""))
    socket_errors = sum(summary[k] for k in ("connect", "read", "write", "timeout"))
    return {
        "rps": summary["requests"] / (summary["duration_us"] / 1e6),
        "requests": summary["requests"],
        "duration_s": summary["duration_us"] / 1e6,
        "http_errors": summary["non_2xx_3xx"],
        "socket_errors": socket_errors,
        "errors": summary["non_2xx_3xx"] + socket_errors,
        **{
            f"{name}_ms": summary[f"{name}_us"] / 1000
            for name in ("p50", "p90", "p99", "p999", "mean", "max")
        },
    }


def measure_slice(
    server: Server, live: Running, options: argparse.Namespace, seconds: float
) -> dict[str, Any]:
    """Load one running server with wrk for ``seconds``; what it and the rest used."""
    # wrk ends by dropping the requests it has in flight, which the server may
    # still be answering (a batch of a slow model runs to its end): let them
    # finish first, so that they neither take the room of this slice's
    # requests (a service that sheds load would turn those away) nor count
    # towards its CPU time.
    time.sleep(SETTLE_SECONDS)
    pid = live.process.pid
    user0, system0 = tree_cpu_seconds(pid)
    busy0, wrk0 = machine_busy_seconds(), children_cpu_seconds()
    result = wrk(live.url + server.path, options, seconds, server.batch, server.script)
    busy1, wrk1 = machine_busy_seconds(), children_cpu_seconds()
    user1, system1 = tree_cpu_seconds(pid)
    server_s = (user1 - user0) + (system1 - system0)
    result.update(
        user_s=user1 - user0,
        system_s=system1 - system0,
        # Cores kept busy by anything but this server and wrk: the noise.
        others_s=max(0.0, busy1 - busy0 - server_s - (wrk1 - wrk0)),
    )
    return result


def combine_slices(slices: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One server's figures over its slices of a round."""
    requests = sum(s["requests"] for s in slices)
    duration = sum(s["duration_s"] for s in slices)
    user = sum(s["user_s"] for s in slices)
    system = sum(s["system_s"] for s in slices)
    return {
        "rps": requests / duration,
        "requests": requests,
        "duration_s": duration,
        # Requests per CPU-second of the server: its throughput per core,
        # which a busy neighbour disturbs far less than the wall-clock rate.
        "rps_per_cpu": ratio(requests, user + system),
        "user_us": user / requests * 1e6,
        "system_us": system / requests * 1e6,
        "others_cores": sum(s["others_s"] for s in slices) / duration,
        **{
            key: sum(s[key] for s in slices)
            for key in ("http_errors", "socket_errors", "errors")
        },
        # wrk reports percentiles per slice: their median stands for the round.
        **{
            f"{name}_ms": median([s[f"{name}_ms"] for s in slices])
            for name in ("p50", "p90", "p99", "p999", "mean")
        },
        "max_ms": max(s["max_ms"] for s in slices),
        "slices_rps": [s["rps"] for s in slices],
    }


def measure_round(
    servers: Sequence[Server], options: argparse.Namespace, logs: Path, number: int
) -> dict[str, dict[str, Any]]:
    """Start every server, then load each in turn, a slice at a time.

    The servers of a round run side by side and wait idle while another is
    loaded, so that a change in the machine's speed during the round (other
    work on the host) falls on every server alike rather than on whichever
    was loaded at the time.
    """
    with contextlib.ExitStack() as stack:
        live: dict[str, Running] = {}
        for server in servers:
            log = logs / f"{server.key}-{number}.log"
            live[server.key] = stack.enter_context(running(server, log))
        idle_mib: dict[str, float] = {}
        for server in servers:
            url = live[server.key].url
            check_answers(server, url)
            idle_mib[server.key] = tree_rss_mib(live[server.key].process.pid)
            wrk(url + server.path, options, options.warmup, server.batch)
        slices: dict[str, list[dict[str, Any]]] = {s.key: [] for s in servers}
        seconds = options.duration / options.slices
        for _ in range(options.slices):
            for server in servers:
                slices[server.key].append(
                    measure_slice(server, live[server.key], options, seconds)
                )
        return {
            server.key: {
                **combine_slices(slices[server.key]),
                "rss_idle_mib": idle_mib[server.key],
                "rss_after_mib": tree_rss_mib(live[server.key].process.pid),
                "ready_s": live[server.key].ready_s,
            }
            for server in servers
        }


SUMMARISED = (
    "rps",
    "rps_per_cpu",
    "user_us",
    "system_us",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "others_cores",
    "rss_idle_mib",
    "rss_after_mib",
)


def measure_serving(
    servers: Sequence[Server], options: argparse.Namespace, logs: Path
) -> dict[str, Any]:
    """``--rounds`` rounds of every server; medians over the rounds."""
    runs: dict[str, list[dict[str, Any]]] = {server.name: [] for server in servers}
    for round_number in range(1, options.rounds + 1):
        measured = measure_round(servers, options, logs, round_number)
        for server in servers:
            r = measured[server.key]
            runs[server.name].append(r)
            print(
                f"  round {round_number}/{options.rounds}  {server.name:<36}"
                f" {r['rps']:7.0f} req/s {r['rps_per_cpu']:7.0f} req/CPU-s"
                f"  p50 {r['p50_ms']:5.1f} p99 {r['p99_ms']:6.1f} ms"
                f"  others {r['others_cores']:.2f} cores",
                file=sys.stderr,
                flush=True,
            )
    summary: dict[str, Any] = {}
    for name, results in runs.items():
        summary[name] = {key: median([r[key] for r in results]) for key in SUMMARISED}
        summary[name]["errors"] = sum(r["errors"] for r in results)
        summary[name]["requests"] = sum(r["requests"] for r in results)
        summary[name]["runs"] = results
    return summary


def compute_ratios(
    serving: dict[str, Any], pairs: Sequence[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """Ratios of the medians of each pair of rows (by name), and the ratio
    within each round (run side by side)."""
    ratios = {}
    for a, b in pairs:
        if a in serving and b in serving:
            first, second = serving[a], serving[b]
            paired = [
                ratio(x["rps"], y["rps"])
                for x, y in zip(first["runs"], second["runs"], strict=True)
            ]
            ratios[f"{a} / {b}"] = {
                "rps": ratio(first["rps"], second["rps"]),
                "rps_per_cpu": ratio(first["rps_per_cpu"], second["rps_per_cpu"]),
                "p50": ratio(first["p50_ms"], second["p50_ms"]),
                "p99": ratio(first["p99_ms"], second["p99_ms"]),
                "rps_per_round": paired,
                "rps_per_round_median": median(paired),
            }
    return ratios
