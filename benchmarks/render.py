"""Render time alone: ``cookiecutter --no-input`` of each template given, and of
the one-file floor, in turn, so that all see the same machine.

    python -m benchmarks.render [--runs N] [TEMPLATE ...]

With no template, this repository's. Give a second checkout (``git worktree
add``) to compare two versions of the template side by side. ``benchmarks.run``
measures the same, this template against the floor, as its render section.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.measure import median, ratio, run_checked
from toolkit.render import TEMPLATE

FLOOR = "one-file template"


def write_trivial_template(path: Path) -> Path:
    """The render floor: one question, one file, no hooks."""
    (path / "{{cookiecutter.project_slug}}").mkdir(parents=True)
    (path / "cookiecutter.json").write_text('{"project_slug": "trivial"}\n')
    (path / "{{cookiecutter.project_slug}}" / "README.md").write_text(
        "# {{ cookiecutter.project_slug }}\n"
    )
    return path


def render_samples(
    workdir: Path, templates: Mapping[str, Path], runs: int
) -> dict[str, list[float]]:
    """Seconds of each render, by name: the one-file floor and these templates,
    in turn, ``runs`` times."""
    templates = {FLOOR: write_trivial_template(workdir / "trivial-template")} | dict(
        templates
    )
    # Cookiecutter leaves each rendered hook script in the temporary directory,
    # and a hook lists that directory on its first import: a /tmp that earlier
    # runs filled would slow the hooks. All templates share a fresh one.
    temporary = workdir / "render-tmp"
    temporary.mkdir()
    samples: dict[str, list[float]] = {name: [] for name in templates}
    for run in range(runs):
        for index, (name, template) in enumerate(templates.items()):
            output = workdir / f"render-{index}-{run}"
            command = [sys.executable, "-m", "cookiecutter", "--no-input"]
            command += ["--default-config", "--output-dir", str(output), str(template)]
            env = {"TMPDIR": str(temporary)}
            samples[name].append(run_checked(command, workdir, env)[0])
            shutil.rmtree(output)
    return samples


def measure_render(workdir: Path, runs: int) -> dict[str, Any]:
    """This template against the one-file floor: ``benchmarks.run``'s section."""
    samples = render_samples(workdir, {"template": TEMPLATE}, runs)
    template_s, trivial_s = median(samples["template"]), median(samples[FLOOR])
    return {
        "runs": runs,
        "template_s": template_s,
        "trivial_s": trivial_s,
        "ratio": ratio(template_s, trivial_s),
        "samples_s": {"template": samples["template"], "trivial": samples[FLOOR]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("templates", nargs="*", type=Path, default=[TEMPLATE])
    parser.add_argument("--runs", type=int, default=9)
    options = parser.parse_args()
    templates = {str(path.resolve()): path.resolve() for path in options.templates}
    with tempfile.TemporaryDirectory(prefix="render-benchmark-") as tmp:
        samples = render_samples(Path(tmp), templates, options.runs)
    floor = median(samples[FLOOR])
    print(f"| template | median of {options.runs} | / one-file template |")
    print("| --- | ---: | ---: |")
    for name, values in samples.items():
        seconds = median(values)
        print(f"| {name} | {seconds:.3f} s | {ratio(seconds, floor):.2f}x |")


if __name__ == "__main__":
    main()
