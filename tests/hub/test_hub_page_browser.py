"""The hub's request page in a real browser: headless Chromium (Debian's, through selenium),
axe-core at WCAG 2.2 AA (the same checks as the node's local page,
tests/morning/test_web_browser.py) on the empty form, the refused request and the answered
one; and a request made with the keyboard alone. Screenshots go to
``test-artifacts/hub-page/`` (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the hub extra is not installed")

from browser_helpers import (
    ROOT,
    _axe,
    _full_screenshot,
    _zoom,
    browser,  # noqa: F401
    navigating,
)
from hub_helpers import hub_config, serve
from starnode.hub.nightplans import add_wanted, plan_night
from starnode.hub.simnet import heartbeat
from starnode.hub.store import HubStore
from starnode.hub.wire import Heartbeat

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "test-artifacts" / "hub-page"


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    tmp = tmp_path_factory.mktemp("hubpage")
    store = HubStore(hub_config(tmp, f"sqlite:///{tmp / 'hub.sqlite3'}", plan_interval=0))
    token = store.add_node("hka-1", "HKA")
    store.heartbeat(store.authenticate(token), Heartbeat.model_validate(
        heartbeat("hka-1", 48.85, 2.35, 35.0, 1)))
    add_wanted(store, "SS Cyg", ra=325.6785, dec=43.5862)
    plan_night(store, "2025-09-14")
    admin = store.add_admin("ops")
    with serve(store) as url:
        yield url, token, admin
    store.close()


def _fill(driver: Any, star: str, member: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    for field, value in (("star", star), ("member", member), ("token", token)):
        el = driver.find_element(By.ID, field)
        el.clear()
        el.send_keys(value)


def test_axe_finds_no_violation_on_the_request_page(browser: Any,  # noqa: F811
                                                     hub_url: tuple[str, str, str]) -> None:
    from selenium.webdriver.common.by import By

    url, token, admin = hub_url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = []
    for label, zoom in (("form", 1.0), ("form-zoom200", 2.0)):
        _zoom(browser, zoom)
        browser.get(url + "/")
        report.append((label, _axe(browser)))
        _full_screenshot(browser, ARTIFACTS / f"{label}.png")
        if zoom == 2.0:
            wide = browser.execute_script(
                "return document.documentElement.scrollWidth - "
                "document.documentElement.clientWidth")
            assert wide <= 1, f"{wide}px of horizontal scrolling at 200 %"
    _zoom(browser, 1.0)
    browser.get(url + "/")
    _fill(browser, "SS Cyg", "HKA", "not-a-token")
    navigating(browser, browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click)
    assert browser.find_element(By.CSS_SELECTOR, "[role=alert]").is_displayed()
    report.append(("refused", _axe(browser)))
    _full_screenshot(browser, ARTIFACTS / "refused.png")
    _fill(browser, "SS Cyg", "HKA", token)
    navigating(browser, browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click)
    status = browser.find_element(By.CSS_SELECTOR, "[role=status]")
    assert "SS Cyg is on the network's list for you, HKA" in status.text
    report.append(("answered", _axe(browser)))
    _full_screenshot(browser, ARTIFACTS / "answered.png")
    browser.get(url + "/network")
    report.append(("network-form", _axe(browser)))
    browser.find_element(By.ID, "token").send_keys(admin)
    navigating(browser, browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click)
    assert browser.find_element(By.CSS_SELECTOR, "th[scope=row]").text == "hka-1"
    report.append(("network", _axe(browser)))
    _full_screenshot(browser, ARTIFACTS / "network.png")
    (ARTIFACTS / "axe.txt").write_text(
        "\n".join(f"{mode}: {len(v)} violation(s) {v}" for mode, v in report) + "\n")
    assert all(not v for _, v in report), report


def test_a_request_with_the_keyboard_alone(browser: Any,  # noqa: F811
                                           hub_url: tuple[str, str, str], tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    url, token, _admin = hub_url
    browser.get(url + "/")
    actions = ActionChains(browser)
    order = []
    for value in ("RS Oph", "HKA", None, token):
        actions.send_keys(Keys.TAB).perform()
        for _ in range(3):  # a date field's day, month and year take a Tab each
            if browser.switch_to.active_element.get_attribute("id") not in order[-1:]:
                break
            actions.send_keys(Keys.TAB).perform()
        active = browser.switch_to.active_element
        order.append(active.get_attribute("id"))
        outline = browser.execute_script(
            "const s = getComputedStyle(arguments[0]); return s.outlineStyle + ' ' + "
            "s.outlineWidth;", active)
        assert not outline.startswith("none"), (order[-1], outline)
        if value is not None:
            active.send_keys(value)
    assert order == ["star", "member", "until", "token"]
    actions.send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.tag_name == "button"
    navigating(browser, actions.send_keys(Keys.ENTER).perform)
    status = browser.find_element("css selector", "[role=status]")
    assert "RS Oph is on the network's list for you, HKA" in status.text
