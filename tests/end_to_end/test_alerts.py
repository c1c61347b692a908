"""The render's alerting and recording rules, loaded by a real Prometheus that
scrapes a real server: every metric and label they read is one the service
exposes, every rule evaluates without error, and the alerts of what went wrong
(a model that fails, then a server that stops) start while the others stay quiet.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.prometheus import (
    RULES,
    Prometheus,
    read_rules,
    rules_of,
    running_prometheus,
    wait_for,
)
from toolkit.render import BakedProject
from toolkit.serve import SETOSA, http, serving

# The service, its sample model failing on one valid input: as a model that
# raises on some rows would, it answers that row 500 on /predict (through the
# batcher) and on /predict/batch.
FAILING_MODEL = """
from app import model
from app.__main__ import main

predict_batch = model.Model.predict_batch


def failing(self, instances):
    if any(instance.sepal_length == 99.0 for instance in instances):
        raise RuntimeError("the model failed")
    return predict_batch(self, instances)


model.Model.predict_batch = failing
main()
"""
FAILING_ROW = {**SETOSA, "sepal_length": 99.0}
LIMIT = 64  # APP_LIMIT_CONCURRENCY
# What the service's failures set off; the other alerts stay quiet.
MODEL_FAILURE_ALERTS = {"ModelServiceHighErrorRatio", "ModelServiceModelRunsFailing"}
SERVER_GONE_ALERTS = {"ModelServiceInstanceDown", "ModelServiceUnavailable"}
TIMEOUT = 30


def drive(url: str) -> None:
    """Good and bad requests on every kind of route, and three model failures."""
    for _ in range(20):
        assert http("POST", f"{url}/predict", SETOSA)[0] == 200
    assert http("POST", f"{url}/predict/batch", {"instances": [SETOSA] * 3})[0] == 200
    assert http("POST", f"{url}/predict", {})[0] == 422
    assert http("GET", f"{url}/model")[0] == 200
    for _ in range(2):
        assert http("POST", f"{url}/predict", FAILING_ROW)[0] == 500
    body = {"instances": [SETOSA, FAILING_ROW]}
    assert status_of("POST", f"{url}/predict/batch", body) == 500


def status_of(method: str, url: str, body: Any) -> int:
    """The status of a call whose answer may not be JSON (uvicorn's own 500)."""
    request = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def alert_expressions(project: BakedProject) -> dict[str, str]:
    return {
        rule["alert"]: rule["expr"] for rule in rules_of(read_rules(project), "alert")
    }


def firing_or_pending(prometheus: Prometheus) -> set[str]:
    return {
        alert["labels"]["alertname"] for alert in prometheus.api("alerts")["alerts"]
    }


def rule_health(prometheus: Prometheus) -> dict[str, tuple[str, str]]:
    return {
        rule["name"]: (rule["health"], rule.get("lastError", ""))
        for group in prometheus.api("rules")["groups"]
        for rule in group["rules"]
    }


def test_prometheus_evaluates_the_rules_against_a_real_server(
    dev_install: tuple[BakedProject, Path], tmp_path: Path
) -> None:
    project, bin_dir = dev_install
    job = project.path.name
    records = [rule["record"] for rule in rules_of(read_rules(project), "record")]
    alerts = alert_expressions(project)
    command = [bin_dir / "python", "-c", FAILING_MODEL]
    env = {"APP_LIMIT_CONCURRENCY": str(LIMIT), "APP_LOG_LEVEL": "warning"}
    with serving(command, project.path, tmp_path / "server.log", env) as server:
        target = f"127.0.0.1:{server.port}"
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        with running_prometheus(
            workdir, job, target, project.path / RULES
        ) as prometheus:
            drive(server.url)

            # Each recording rule has a value: the names, labels and label
            # values it reads are the ones the service exposes.
            def unrecorded() -> str:
                empty = [record for record in records if not prometheus.query(record)]
                return f"a value for each recording rule; none for {empty}"

            wait_for(
                lambda: all(prometheus.query(record) for record in records),
                TIMEOUT,
                unrecorded,
            )
            # A rate needs an increase between two scrapes: the series exist
            # now, and the first scrape of each is in.
            drive(server.url)
            health = rule_health(prometheus)
            assert sorted(health) == sorted([*records, *alerts])
            assert {name: h for name, h in health.items() if h[0] != "ok"} == {}
            [limit] = prometheus.query(f'http_requests_in_flight_limit{{job="{job}"}}')
            assert float(limit["value"][1]) == LIMIT

            # The model failed on 3 of every 26 requests: those two alerts start.
            wait_for(
                lambda: firing_or_pending(prometheus) >= MODEL_FAILURE_ALERTS,
                TIMEOUT,
                f"{MODEL_FAILURE_ALERTS} pending",
            )
            started = {name for name, expr in alerts.items() if prometheus.query(expr)}
            assert started == MODEL_FAILURE_ALERTS

            # The server stops: the scrapes fail, and those two start as well.
            server.process.terminate()
            server.process.wait(timeout=TIMEOUT)

            def gone() -> bool:
                return all(
                    prometheus.query(alerts[name]) for name in SERVER_GONE_ALERTS
                )

            wait_for(gone, TIMEOUT, f"{SERVER_GONE_ALERTS} true")
            health = rule_health(prometheus)
            assert {name: h for name, h in health.items() if h[0] != "ok"} == {}
