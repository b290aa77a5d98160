"""A real headless Chromium with axe-core (shared by the morning page tests and the hub page's
browser test); the pages are served by :class:`loopback.AppServer`."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "web"
AXE = Path(os.environ.get("STARNODE_AXE_JS")
           or Path(__file__).parent / ".axe" / "node_modules" / "axe-core" / "axe.min.js")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


# ----------------------------------------------------------------------------- in Chromium
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver; .ci/run does)")
    if not AXE.is_file():
        pytest.skip(f"axe-core not found at {AXE} (.ci/run installs it from npm; or set "
                    "STARNODE_AXE_JS)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="starnode-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1280,1000"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _axe(driver: Any) -> list[dict[str, Any]]:
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' '))}))))"
        ".catch(e => done([{id: 'axe-error', help: String(e), nodes: []}]));", AXE_TAGS)
    return list(result)


def _zoom(driver: Any, factor: float) -> None:
    """Browser zoom: the CSS viewport shrinks by ``factor``, pixels grow by it (as Ctrl +)."""
    if factor == 1.0:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    else:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": int(1280 / factor), "height": int(1000 / factor),
            "deviceScaleFactor": factor, "mobile": False})


def _full_screenshot(driver: Any, path: Path) -> None:
    shot = driver.execute_cdp_cmd("Page.captureScreenshot",
                                  {"captureBeyondViewport": True, "format": "png"})
    import base64

    path.write_bytes(base64.b64decode(shot["data"]))


def navigating(browser: Any, act: Callable[[], object], timeout: float = 60.0) -> None:
    """Do ``act`` (a click on a submit button, Enter on a form), then wait until the browser
    has left the page it was on. A click returns before the form's answer is loaded (seen
    with Chromium 156.0.8078.114), so finding an element at once can still search the old
    page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    act()
    WebDriverWait(browser, timeout).until(expected_conditions.staleness_of(old))
