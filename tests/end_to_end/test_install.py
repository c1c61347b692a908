"""Render, install and run the generated project for real: nothing mocked."""

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.harness import (
    assert_classifies_the_samples,
    assert_generated_suite_passes,
    assert_lint_and_type_clean,
)
from toolkit.render import BakedProject, bake, pip_install, poetry_install
from toolkit.serve import SETOSA, http, serving_app


def assert_serves_predictions(python: Path, cwd: Path, log: Path) -> None:
    with serving_app(python, cwd, log) as url:
        assert_classifies_the_samples(url)
        status, body = http("POST", f"{url}/predict", {**SETOSA, "sepal_length": "x"})
        assert status == 422, body


def assert_cannot_import(python: Path, *modules: str) -> None:
    """None of these is installed: the model is served without them."""
    for module in modules:
        missing = subprocess.run(
            [python, "-c", f"import {module}"], capture_output=True, check=False
        )
        assert missing.returncode != 0, f"{module} importable in production"


def test_generated_tests_all_pass_under_poetry(
    dev_install: tuple[BakedProject, Path],
) -> None:
    # Every test, the real-server ones and the training test included.
    assert_generated_suite_passes(*dev_install, at_least=15)


def test_generated_project_is_lint_and_type_clean(
    dev_install: tuple[BakedProject, Path],
) -> None:
    assert_lint_and_type_clean(*dev_install)


def test_pre_commit_hooks_pass_on_a_fresh_repository(
    dev_install: tuple[BakedProject, Path],
) -> None:
    project, bin_dir = dev_install
    project.run("git", "init", "-q")
    project.run("git", "add", "--all")
    # The hooks call `poetry run`; make the Poetry running these tests findable.
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    result = project.run(
        bin_dir / "pre-commit",
        "run",
        "--all-files",
        "--color=never",
        env={"PATH": path},
    )
    assert "Passed" in result.stdout
    assert "Failed" not in result.stdout


def test_retraining_writes_a_loadable_artifact(
    dev_install: tuple[BakedProject, Path], tmp_path: Path
) -> None:
    project, bin_dir = dev_install
    output = tmp_path / "retrained.onnx"
    project.run(bin_dir / "python", "-m", "app.train", "--output", output)
    with serving_app(
        bin_dir / "python",
        project.path,
        tmp_path / "server.log",
        env={"APP_MODEL_PATH": str(output)},
    ) as url:
        assert http("POST", f"{url}/predict", SETOSA)[1]["label"] == "setosa"


def test_service_answers_over_http(
    dev_install: tuple[BakedProject, Path], tmp_path: Path
) -> None:
    project, bin_dir = dev_install
    assert_serves_predictions(bin_dir / "python", project.path, tmp_path / "server.log")


def test_workers_each_load_the_model_and_log_json(
    dev_install: tuple[BakedProject, Path], tmp_path: Path
) -> None:
    project, bin_dir = dev_install
    log = tmp_path / "server.log"
    env = {"APP_WORKERS": "2", "APP_LOG_JSON": "true"}
    with serving_app(bin_dir / "python", project.path, log, env=env) as url:
        deadline = time.monotonic() + 30
        while log.read_text().count("loaded model") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        status, _ = http("POST", f"{url}/predict", SETOSA)
        assert status == 200
    records = [json.loads(line) for line in log.read_text().splitlines()]
    loads = [r for r in records if r["message"].startswith("loaded model")]
    assert len({r["process"] for r in loads}) == 2, loads
    (request,) = [r for r in records if r.get("path") == "/predict"]
    assert (request["method"], request["status"]) == ("POST", 200)
    assert request["request_id"] != "-"


def test_production_install_serves_without_dev_tools(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    project = bake(tmp_path_factory.mktemp("prod"))
    bin_dir = poetry_install(project, "--only", "main")
    for tool in ("pytest", "ruff", "mypy", "pre-commit"):
        assert not (bin_dir / tool).exists(), f"{tool} installed in production"
    assert_cannot_import(
        bin_dir / "python", "pytest", "httpx2", "sklearn", "onnx", "opentelemetry.sdk"
    )
    log = tmp_path_factory.mktemp("prod-log") / "server.log"
    assert_serves_predictions(bin_dir / "python", project.path, log)


def test_pip_installed_wheel_packages_the_model(tmp_path: Path) -> None:
    project = bake(tmp_path / "render")
    dist = tmp_path / "dist"
    project.run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dist, ".")
    (wheel,) = dist.glob("*.whl")
    assert "app/model.onnx" in zipfile.ZipFile(wheel).namelist()
    python = pip_install(project, tmp_path / "venv", wheel)
    assert_cannot_import(python, "sklearn", "skl2onnx", "onnx")
    # No app/ here: the model artifact must come from the wheel.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert_serves_predictions(python, elsewhere, tmp_path / "server.log")


def test_docs_are_titled_with_the_hostile_project_name(
    output_dir: Path, dev_install: tuple[BakedProject, Path]
) -> None:
    name = 'Bob "B" O\'Brien \\ {x} *_'
    project = bake(output_dir, project_name=name, project_slug="bob")
    _, bin_dir = dev_install  # FastAPI and the rest, installed for the defaults
    result = project.run(  # from the render's directory, so its own app/ is imported
        bin_dir / "python",
        "-c",
        "import json; from app.main import create_app;"
        " print(json.dumps(create_app().openapi()['info']['title']))",
    )
    assert json.loads(result.stdout) == name
