"""Schemathesis against a running generated service: no 5xx, answers as documented.

The service runs with API keys on, and schemathesis sends one: its checks then
also show that every route the document says takes a key refuses a request
without one, or with a wrong one.
"""

import subprocess
import sys
from pathlib import Path

from toolkit.render import BakedProject
from toolkit.serve import serving_app

KEY = "fuzz-0123456789abcdef"

# The inference protocol ties an input's shape to the length of its data: no
# JSON Schema can say so, so a body the schema allows can still be malformed,
# and the protocol answers it 400.
CONFIG = """
[[operations]]
include-path-regex = "^/v2/models/.+/infer$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404"]
"""


def test_api_survives_schema_driven_fuzzing(
    dev_install: tuple[BakedProject, Path], tmp_path: Path
) -> None:
    project, bin_dir = dev_install
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    keys = {"APP_API_KEYS": f"fuzzer:{KEY}"}
    log = tmp_path / "server.log"
    with serving_app(bin_dir / "python", project.path, log, keys) as url:
        result = subprocess.run(
            [
                Path(sys.executable).parent / "schemathesis",  # it has no __main__
                "--config-file",
                config,
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",  # not_a_server_error, response_schema_conformance, ...
                "--header",
                f"Authorization: Bearer {KEY}",
                "--seed",
                "1",
                "--max-examples",
                "100",
            ],
            cwd=tmp_path,  # its cache and reports stay out of the repository
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert result.returncode == 0, result.stdout[-6000:]
    assert "No issues found" in result.stdout, result.stdout[-6000:]
