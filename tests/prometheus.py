"""Prometheus for the tests of a render's rules: promtool, and a real server on a
loopback port with a configuration and storage of its own.

Debian's ``prometheus`` package ships both commands (``apt-get install -y
prometheus``; .ci/run installs it where it is missing). A test that needs one
fails, rather than skips, when it is missing: alerts nobody checked would ship.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from toolkit.render import BakedProject
from toolkit.serve import free_port, serving

INSTALL = "apt-get install -y prometheus"
RULES = "monitoring/prometheus/rules.yml"
RULES_TESTS = "monitoring/prometheus/rules.test.yml"
PROMETHEUS_RULE = "deploy/kubernetes/monitoring/prometheusrule.yaml"


def tool(name: str) -> str:
    """Where ``prometheus`` or ``promtool`` is; fail naming the package if missing."""
    found = shutil.which(name)
    assert found, (
        f"{name} not found: install Debian's prometheus package (`{INSTALL}`,"
        " as .ci/run does), which ships prometheus and promtool"
    )
    return found


def promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *(str(arg) for arg in args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def read_rules(project: BakedProject) -> dict[str, Any]:
    return yaml.safe_load(project.read(RULES))


def rules_of(groups: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Every rule of these groups that is a ``record`` or an ``alert``."""
    return [
        rule for group in groups["groups"] for rule in group["rules"] if kind in rule
    ]


@dataclass(frozen=True)
class Prometheus:
    """A Prometheus server started by ``running_prometheus``."""

    url: str
    log: Path

    def api(self, path: str, **query: str) -> Any:
        """The ``data`` of a successful answer of the HTTP API."""
        url = f"{self.url}/api/v1/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now; fails if it does not parse."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return list(data["result"])


@contextmanager
def running_prometheus(
    workdir: Path, job: str, target: str, rules: Path, interval: str = "1s"
) -> Iterator[Prometheus]:
    """Prometheus on a free loopback port, scraping ``target`` (host:port) as
    ``job`` and evaluating ``rules`` every ``interval``; stopped on the way out."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = workdir / "prometheus.log"
    command = [
        tool("prometheus"),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with serving(command, workdir, log, port=port, ready="/-/ready"):
        yield Prometheus(f"http://127.0.0.1:{port}", log)


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.25,
) -> None:
    """Poll ``condition()`` until it is true; fail at ``timeout`` saying ``what``
    (or what ``what()`` says then) is missing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(
        f"not within {timeout} s: {what if isinstance(what, str) else what()}"
    )
