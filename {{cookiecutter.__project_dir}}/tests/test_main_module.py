import os
import subprocess
import sys
from pathlib import Path


def test_corrupt_model_stops_service_with_one_clear_line(tmp_path: Path) -> None:
    artifact = tmp_path / "model.json"
    artifact.write_text("{not json")
    env = {**os.environ, "APP_MODEL_PATH": str(artifact), "APP_PORT": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ERROR: cannot load model from '{artifact}': not valid JSON"
        " (Expecting property name enclosed in double quotes:"
        " line 1 column 2 (char 1))"
    ]
