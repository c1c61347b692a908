"""How the benchmarks measure: medians and ratios, the CPU time and memory of a
process tree and of the whole machine (from /proc, so Linux only), commands run
to success and timed, and what the machine and a render's packages are."""

# ruff: noqa: S603, S607  (it runs the benchmarks' own commands and wrk)

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from toolkit.render import clean_env


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent on anything but idling, all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_tree(pid: int) -> Iterator[int]:
    pending = [pid]
    while pending:
        current = pending.pop()
        yield current
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants, in MiB."""
    total_kib = 0
    for current in process_tree(pid):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{current}/status").read_text()
            match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            total_kib += int(match.group(1)) if match else 0
    return total_kib / 1024


def tree_cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process and its live descendants."""
    user = system = 0
    for current in process_tree(pid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def run_checked(
    command: Sequence[str | Path], cwd: Path, env: Mapping[str, str] | None = None
) -> tuple[float, str]:
    """Run a command to success; its wall time and output."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(
            f"{command} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return elapsed, result.stdout


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the child processes started inside."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def package_versions(project: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n"
        " in ('fastapi', 'starlette', 'uvicorn', 'pydantic', 'httptools', 'uvloop')}))"
    )
    python = project / ".venv" / "bin" / "python"
    return json.loads(run_checked([python, "-c", code], project)[1])


def machine() -> dict[str, Any]:
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": wrk_version.split(" [")[0],
        "load_average_at_start": load_average(),
    }
