"""The generated service's API docs, as headless Chromium shows them with no network
but loopback: the way a user on an air-gapped network sees them.

Regenerate the README's screenshot with ``python -m tests.end_to_end.test_browser``.
"""

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from toolkit.render import TEMPLATE, bake, pip_install
from toolkit.serve import http, serving_app

SCREENSHOT = TEMPLATE / "docs" / "swagger-ui.png"
WINDOW = (1280, 900)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--virtual-time-budget=10000",  # let scripts fetch and render before the dump
)
# Only 127.0.0.1 resolves: every other host name or IP literal (other loopback
# addresses included) fails as if it did not exist, and no proxy is used.
NO_NETWORK_BUT_LOOPBACK = (
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--no-proxy-server",
)


def chromium_executable() -> str:
    found = (
        os.environ.get("CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not found:
        pytest.fail(
            "Chromium is not installed: the browser tests need it. Install it with"
            " `apt-get install -y chromium` (as .ci/run does), or set CHROMIUM to"
            " the path of a Chromium or Chrome executable.",
            pytrace=False,
        )
    return found


def run_chromium(url: str, *action: str, offline: bool = True) -> str:
    """Load the page in a fresh headless profile; return Chromium's stdout."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        # Chromium keeps crash-report settings and a dconf cache under HOME.
        home = {"HOME": profile, "XDG_CONFIG_HOME": profile, "XDG_CACHE_HOME": profile}
        result = subprocess.run(
            [
                chromium_executable(),
                *CHROMIUM_FLAGS,
                *(NO_NETWORK_BUT_LOOPBACK if offline else ()),
                f"--user-data-dir={profile}/profile",
                *action,
                url,
            ],
            env={**os.environ, **home},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, (
        f"Chromium exited {result.returncode} on {url}:\n{result.stderr}"
    )
    return result.stdout


class RenderedDocs(HTMLParser):
    """What Swagger UI and ReDoc drew, read from a DOM dumped after scripts ran."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.swagger_operations: set[tuple[str, str]] = set()
        self.redoc_sections: set[str] = set()
        self._method = ""
        self._in_method = False
        self.feed(dom)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        # Swagger UI: each operation's summary is a method label, then its path.
        self._in_method = "opblock-summary-method" in classes
        if "opblock-summary-path" in classes:
            path = attributes.get("data-path") or ""
            self.swagger_operations.add((self._method, path))
        if section := attributes.get("data-section-id"):
            self.redoc_sections.add(section)

    def handle_data(self, data: str) -> None:
        if self._in_method:
            self._method = data.strip()
            self._in_method = False


def render(url: str, *, offline: bool = True) -> RenderedDocs:
    return RenderedDocs(run_chromium(url, "--dump-dom", offline=offline))


def take_screenshot(url: str, output: Path) -> None:
    """Write a PNG of the page in a 1280x900 window, with no network but loopback."""
    width, height = WINDOW
    run_chromium(
        url,
        f"--screenshot={output}",
        f"--window-size={width},{height}",
        "--hide-scrollbars",
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The defaults, installed with pip and serving on loopback; yields its URL."""
    chromium_executable()  # fail before the slow part when it is missing
    root = tmp_path_factory.mktemp("browser")
    project = bake(root / "render")
    python = pip_install(project, root / "venv", ".")
    with serving_app(python, project.path, root / "server.log") as url:
        yield url


@pytest.fixture
def page_with_assets_on_another_host(service: str, tmp_path: Path) -> str:
    """The service's own Swagger UI, but loaded from a host name, as from a CDN.

    ``localhost`` reaches the same service as 127.0.0.1, so only the blocking
    flags stand between this page and its script.
    """
    port = service.rsplit(":", 1)[1]
    assets = f"http://localhost:{port}/static-offline-docs"
    status, spec = http("GET", f"{service}/openapi.json")
    assert status == 200, spec
    page = tmp_path / "docs-from-another-host.html"
    page.write_text(
        f"""<!DOCTYPE html>
<html>
<head><link rel="stylesheet" href="{assets}/swagger-ui.css"></head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{spec: {json.dumps(spec)}, dom_id: "#swagger-ui"}});</script>
</body>
</html>
""",
        encoding="utf-8",
    )
    return page.as_uri()


def test_swagger_ui_renders_predict_with_no_network_but_loopback(service: str) -> None:
    docs = render(f"{service}/docs")
    assert ("POST", "/predict") in docs.swagger_operations, docs.swagger_operations


def test_redoc_renders_predict_with_no_network_but_loopback(service: str) -> None:
    _, spec = http("GET", f"{service}/openapi.json")
    operation_id = spec["paths"]["/predict"]["post"]["operationId"]
    docs = render(f"{service}/redoc")
    assert f"operation/{operation_id}" in docs.redoc_sections, docs.redoc_sections


def test_swagger_ui_from_another_host_is_not_rendered_offline(
    page_with_assets_on_another_host: str,
) -> None:
    docs = render(page_with_assets_on_another_host)
    assert ("POST", "/predict") not in docs.swagger_operations


def test_swagger_ui_from_another_host_is_rendered_online(
    page_with_assets_on_another_host: str,
) -> None:
    # The control for the test above: the same page renders once the blocking
    # flags are off, so the flags are what kept it blank.
    docs = render(page_with_assets_on_another_host, offline=False)
    assert ("POST", "/predict") in docs.swagger_operations, docs.swagger_operations


def main() -> None:
    """Regenerate docs/swagger-ui.png from a fresh render of the defaults."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = bake(root / "render")
        python = pip_install(project, root / "venv", ".")
        with serving_app(python, project.path, root / "server.log") as url:
            SCREENSHOT.parent.mkdir(exist_ok=True)
            take_screenshot(f"{url}/docs", SCREENSHOT)
    print(f"wrote {SCREENSHOT}")


if __name__ == "__main__":
    main()
