"""Each model_task, rendered, installed with Poetry and served for real.

The regression render passes its own suite (the parity test included), ruff and
mypy as rendered, and serves the diabetes rows within float32 precision of the
pipeline it was trained as; an artifact of the other task is refused in one
line; and the README's curl examples answer as written.
"""

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.harness import assert_generated_suite_passes, assert_lint_and_type_clean
from toolkit.render import TEMPLATE, BakedProject, bake, poetry_install
from toolkit.serve import http, serving

# ONNX Runtime computes in float32: relative to the largest value served.
RELATIVE_TOLERANCE = 1e-5
ROWS = 20
# The pipeline's own predictions for the first rows of its training data.
PIPELINE_PREDICTIONS = """
import json
from app import train
dataset = train.load_data()
fitted = train.fit(dataset)
rows = dataset.data[:{rows}]
print(json.dumps([rows.tolist(), train.predict(fitted, rows).tolist()]))
"""


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> tuple[BakedProject, Path]:
    project = bake(tmp_path_factory.mktemp("regression"), model_task="regression")
    return project, poetry_install(project, "--with", "train")


@pytest.fixture(params=["classification", "regression"])
def each_task(request: pytest.FixtureRequest) -> tuple[str, BakedProject, Path]:
    """Each task's render, installed with its training group: the task, the
    render, its bin directory."""
    task = request.param
    install = request.getfixturevalue(
        "regression" if task == "regression" else "dev_install"
    )
    return task, *install


def test_a_regression_render_passes_its_suite_ruff_and_mypy_as_rendered(
    regression: tuple[BakedProject, Path],
) -> None:
    assert_generated_suite_passes(*regression)
    assert_lint_and_type_clean(*regression)


def test_a_regression_render_serves_what_its_pipeline_predicts(
    regression: tuple[BakedProject, Path], tmp_path: Path
) -> None:
    project, bin_dir = regression
    script = PIPELINE_PREDICTIONS.format(rows=ROWS)
    output = project.run(bin_dir / "python", "-c", script).stdout
    rows, expected = json.loads(output)
    tolerance = RELATIVE_TOLERANCE * max(abs(value) for value in expected)
    command = [bin_dir / "python", "-m", "app"]
    with serving(command, project.path, tmp_path / "server.log") as server:
        status, info = http("GET", f"{server.url}/model")
        assert status == 200, info
        assert (info["task"], info["target"]) == ("regression", "disease_progression")
        assert {"held_out_r2", "held_out_mae"} <= set(info["training"])
        assert "classes" not in info
        instances = [dict(zip(info["feature_names"], row, strict=True)) for row in rows]
        served = [
            http("POST", f"{server.url}/predict", x)[1]["value"] for x in instances
        ]
        status, batch = http(
            "POST", f"{server.url}/predict/batch", {"instances": instances}
        )
        assert status == 200, batch
        tensor = {
            "name": "features",
            "shape": [len(rows), len(rows[0])],
            "datatype": "FP64",
            "data": rows,
        }
        status, v2 = http(
            "POST", f"{server.url}/v2/models/{info['name']}/infer", {"inputs": [tensor]}
        )
        assert status == 200, v2
    (value,) = v2["outputs"]
    assert (value["name"], value["datatype"], value["shape"]) == (
        "value",
        "FP32",
        [ROWS],
    )
    for answers in (
        served,
        [p["value"] for p in batch["predictions"]],
        value["data"],
    ):
        worst = max(abs(a - b) for a, b in zip(answers, expected, strict=True))
        assert worst <= tolerance, (worst, tolerance)


def test_an_artifact_of_the_other_task_stops_the_service_in_one_line(
    each_task: tuple[str, BakedProject, Path],
) -> None:
    task, project, bin_dir = each_task
    (other,) = {"classification", "regression"} - {task}
    artifact = (
        TEMPLATE / "{{cookiecutter.project_slug}}/_tasks" / other / "app/model.onnx"
    )
    result = subprocess.run(
        [bin_dir / "python", "-m", "app"],
        cwd=project.path,
        env={"APP_MODEL_PATH": str(artifact), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result
    assert result.stderr.strip().splitlines() == [
        f"ERROR: cannot load model from '{artifact}': it is a {other!r} model, but"
        f" this service serves {task!r} models: train it with this project's"
        " app.train"
    ]


def readme_curl_commands(project: BakedProject) -> list[str]:
    """Every curl command of the README's bash blocks, lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", project.read("README.md"), re.S)
    commands = []
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip().startswith("curl") and "127.0.0.1:8000" in command:
                commands.append(command.split("#")[0].strip())
    return commands


def test_the_readme_curl_examples_answer_as_written(
    each_task: tuple[str, BakedProject, Path], tmp_path: Path
) -> None:
    _, project, bin_dir = each_task
    commands = readme_curl_commands(project)
    posts = [command for command in commands if "-X POST" in command]
    assert len(posts) >= 3, commands  # /predict, /predict/batch and /v2 infer
    log = tmp_path / "server.log"
    with serving([bin_dir / "python", "-m", "app"], project.path, log) as server:
        for command in commands:
            # The same command, sent to the port this test's server listens on.
            command = command.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
            result = subprocess.run(
                [*shlex.split(command), "-w", "\n%{http_code}"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            body, status = result.stdout.rsplit("\n", 1)
            assert status == "200", (command, body)
            answer = json.loads(body)
            assert not {"error", "detail"} & set(answer), (command, answer)
