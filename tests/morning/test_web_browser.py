"""The morning-after page in a real browser: a real uvicorn server on loopback over a night
measured by ``starnode process``, headless Chromium (Debian's, through selenium), axe-core at
WCAG 2.2 AA on every page, keyboard-only navigation, 200 % zoom and forced colours.

Screenshots go to ``test-artifacts/web/`` (git-ignored). axe-core comes from npm (installed by
.ci/run into tests/.axe/, git-ignored) or ``$STARNODE_AXE_JS``."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest

from browser_helpers import (
    ARTIFACTS,
    _axe,
    _full_screenshot,
    _zoom,
)
from browser_helpers import browser as browser
from loopback import AppServer
from morning_night import night, server  # noqa: F401
from starnode.config import Config

pytestmark = pytest.mark.slow

PAGES = {"tonight": "/", "frames": "/frames", "target": "/target/SS%20Cyg",
         "not-found": "/target/Nobody"}


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET"
         ) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


# ----------------------------------------------------------------------------- over HTTP
def test_pages_files_and_read_only(server: AppServer, night: Config) -> None:  # noqa: F811
    for path in ("/", "/frames", "/target/SS%20Cyg", "/summary.txt"):
        status, body, _ = _get(server.url(path))
        assert status == 200, path
    _, page, _ = _get(server.url("/"))
    assert b"The night of 2025-09-14" in page and b"Download 2025-09-14_SS_Cyg_DEMO.txt" in page
    report = night.data_dir / "outbox" / "2025-09-14" / "2025-09-14_SS_Cyg_DEMO.txt"
    assert report.is_file() or list(night.data_dir.glob("outbox/**/*DEMO.txt"))
    listed = next(night.data_dir.glob("outbox/**/2025-09-14_SS_Cyg_DEMO.txt"))
    status, body, _ = _get(server.url("/outbox/2025-09-14/2025-09-14_SS_Cyg_DEMO.txt"))
    assert status == 200 and body == listed.read_bytes()
    assert _get(server.url("/outbox/2025-09-14/..%2F..%2Fstarnode.sqlite3"))[0] == 404
    status, png, headers = _get(server.url("/target/SS%20Cyg/lightcurve.png"))
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"
    status, wav, headers = _get(server.url("/target/SS%20Cyg/sound.wav"))
    assert status == 200 and wav[:4] == b"RIFF" and headers["content-type"] == "audio/wav"
    assert _get(server.url("/"), method="POST")[0] == 405
    assert _get(server.url("/?night=1999-01-01"))[0] == 404
    _, text, _ = _get(server.url("/summary.txt"))
    assert b"Six frames of SS Cyg were taken" in text


def test_a_token_is_needed_when_one_is_set(night: Config) -> None:  # noqa: F811
    from starnode.morning.web import create_app, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")
    with AppServer(create_app(night, token="s3cret")) as s:
        assert _get(s.url("/"))[0] == 401
        assert _get(s.url("/?token=wrong"))[0] == 401
        status, _, headers = _get(s.url("/?token=s3cret"))
        assert status == 200 and "starnode_token=s3cret" in headers["set-cookie"]
        assert _get(s.url("/frames"), {"Cookie": "starnode_token=s3cret"})[0] == 200
        assert _get(s.url("/frames"), {"Authorization": "Bearer s3cret"})[0] == 200


@pytest.mark.parametrize("name", list(PAGES))
def test_axe_finds_no_wcag22_aa_violation(browser: Any, server: AppServer, name: str) -> None:  # noqa: F811
    report = []
    for label, setup in (("", lambda: _zoom(browser, 1.0)),
                         ("-zoom200", lambda: _zoom(browser, 2.0)),
                         ("-forced-colors", lambda: (_zoom(browser, 1.0), browser.execute_cdp_cmd(
                             "Emulation.setEmulatedMedia",
                             {"features": [{"name": "forced-colors", "value": "active"}]})))):
        setup()
        browser.get(server.url(PAGES[name]))
        violations = _axe(browser)
        report.append((label or "normal", violations))
        _full_screenshot(browser, ARTIFACTS / f"{name}{label}.png")
        if label == "-zoom200":  # reflow: no page-wide horizontal scrolling at 200 %
            wide = browser.execute_script(
                "return document.documentElement.scrollWidth - "
                "document.documentElement.clientWidth")
            assert wide <= 1, f"{name}: {wide}px of horizontal scrolling at 200 %"
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    _zoom(browser, 1.0)
    (ARTIFACTS / f"{name}-axe.txt").write_text(
        "\n".join(f"{mode}: {len(v)} violation(s) {v}" for mode, v in report) + "\n")
    assert all(not v for _, v in report), report


FOCUSABLE = ("a[href], button, select, input, textarea, audio[controls], "
             "[tabindex]:not([tabindex='-1'])")


@pytest.mark.parametrize("name", ["tonight", "frames", "target"])
def test_keyboard_reaches_every_control_with_a_visible_focus(browser: Any, server: AppServer,  # noqa: F811
                                                            name: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    browser.get(server.url(PAGES[name]))
    controls = browser.execute_script(
        f"return Array.from(document.querySelectorAll(\"{FOCUSABLE}\"))"
        ".filter(e => !e.disabled && (e.tagName === 'AUDIO' || !e.closest('audio')));")
    assert controls
    seen: list[Any] = []
    styles: dict[str, dict[str, str]] = {}
    for _ in range(len(controls) + 12):  # an audio player takes a few Tabs (its buttons)
        ActionChains(browser).send_keys(Keys.TAB).perform()
        el = browser.switch_to.active_element
        if (seen and el == seen[0]) or el.tag_name == "body":  # wrapped around
            break
        if el in seen:
            continue
        seen.append(el)
        styles[el.id or el.tag_name + str(len(seen))] = browser.execute_script(
            "const s = getComputedStyle(arguments[0]);"
            "return {outline: s.outlineStyle, width: s.outlineWidth, shadow: s.boxShadow,"
            " text: (arguments[0].innerText || arguments[0].tagName).slice(0, 40)};", el)
    missing = [c.get_attribute("outerHTML")[:80] for c in controls if c not in seen]
    assert not missing, f"not reachable with Tab: {missing}"
    invisible = {k: s for k, s in styles.items()
                 if (s["outline"] == "none" or s["width"] in ("0px", ""))
                 and s["shadow"] in ("none", "")}
    assert not invisible, f"focus not visible on: {invisible}"
    # the first Tab reaches the skip link, and it works
    browser.get(server.url(PAGES[name]))
    ActionChains(browser).send_keys(Keys.TAB).perform()
    skip = browser.switch_to.active_element
    assert skip.text == "Skip to the content" and skip.is_displayed()
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    assert browser.switch_to.active_element.get_attribute("id") == "main"


def test_quality_is_written_not_coloured(browser: Any, server: AppServer) -> None:  # noqa: F811
    browser.get(server.url("/target/SS%20Cyg"))
    cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('tbody tr td:nth-of-type(3)'))"
        ".map(td => td.innerText.trim());")
    assert cells and all(c.split()[-1] in ("good", "acceptable", "poor") for c in cells)
    img = browser.find_element("css selector", "figure img")
    alt = img.get_attribute("alt")
    assert "Light curve of SS Cyg" in alt and "table below" in alt
    assert browser.execute_script("return arguments[0].naturalWidth;", img) > 100
