"""Render time alone: ``cookiecutter --no-input`` of each template given, and of
the one-file floor, in turn, so that all see the same machine.

    python -m benchmarks.render [--runs N] [TEMPLATE ...]

With no template, this repository's. Give a second checkout (``git worktree
add``) to compare two versions of the template side by side.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.run import run_checked, write_trivial_template
from toolkit.render import TEMPLATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("templates", nargs="*", type=Path, default=[TEMPLATE])
    parser.add_argument("--runs", type=int, default=9)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="render-benchmark-") as tmp:
        workdir = Path(tmp)
        trivial = write_trivial_template(workdir / "trivial-template")
        # Each render leaves its hook scripts in the temporary directory; all
        # templates share one fresh directory.
        temporary = workdir / "tmp"
        temporary.mkdir()
        templates = {"one-file template": trivial}
        templates |= {str(path.resolve()): path.resolve() for path in options.templates}
        samples: dict[str, list[float]] = {name: [] for name in templates}
        for run in range(options.runs):
            for index, (name, template) in enumerate(templates.items()):
                output = workdir / f"render-{index}-{run}"
                command = [sys.executable, "-m", "cookiecutter", "--no-input"]
                command += ["--default-config", "--output-dir", str(output)]
                command.append(str(template))
                seconds, _ = run_checked(command, workdir, {"TMPDIR": str(temporary)})
                samples[name].append(seconds)
                shutil.rmtree(output)
    floor = statistics.median(samples["one-file template"])
    print(f"| template | median of {options.runs} | / one-file template |")
    print("| --- | ---: | ---: |")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} s | {median / floor:.2f}x |")


if __name__ == "__main__":
    main()
