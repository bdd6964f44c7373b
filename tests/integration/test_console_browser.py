"""The console's pages in a real headless chromium, against a real agent, mosquitto and collector.

A technician logs in, sees the live picture change, the latency and the model version, presses
Snapshot and the sample arrives at the collector, and a defect's thumbnail appears. A screenshot
of the live page is kept (``CONSOLE_SCREENSHOT`` or the test's tmp dir) to look at.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_console import PASSWORD, add_user
from tests.integration.test_sampling_collector import CollectorProcess, collectors, wait_until
from tests.support.agentproc import AgentProcess, write_config
from tests.support.browser import wait
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.integration
__all__ = ["collectors"]  # the fixture, used below


def test_a_technician_aims_watches_and_snapshots_in_a_real_browser(
    mosquitto: Mosquitto, unique_prefix: str, collectors: Callable[..., CollectorProcess],
    browser: Callable[[], Any], tmp_path: Path,
) -> None:  # fmt: skip
    from selenium.webdriver.common.by import By

    col = collectors("col", mosquitto.port, unique_prefix, client_id="col-console").start()
    config = write_config(
        tmp_path / "agent", port=mosquitto.port, prefix=unique_prefix, source="synthetic:5",
        camera={"source": "synthetic:5", "fps": 8, "realtime": True},
        sampling={"enabled": True, "quota": {"per_minute": 1000}, "dedup": {"enabled": False},
                  "low_confidence": {"enabled": False}},
        web={"listen": "127.0.0.1:0", "auth": {"users_file": str(tmp_path / "users.yaml")}},
    )  # fmt: skip
    add_user(config, "tech")
    agent = AgentProcess(config)
    base = agent.wait_for_log("console_started", 60)["url"]

    driver = browser()
    driver.get(base + "/")
    assert "/login" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys("tech")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]").click()
    wait(driver, lambda d: d.find_element(By.ID, "live"))

    # the live picture changes between two reads
    live = driver.find_element(By.ID, "live")
    wait(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", live) > 0)
    first = live.screenshot_as_png
    wait(driver, lambda d: live.screenshot_as_png != first, 20)

    # latency and model version are shown
    wait(driver, lambda d: d.find_element(By.ID, "fps").text not in ("", "\u2013"))
    assert driver.find_element(By.ID, "model-version").text == "1.0.0"
    assert driver.find_element(By.ID, "model-name").text == "demo-defects"
    # The table is re-rendered on every poll: read its last row in one script, so that no element
    # goes stale between finding it and reading it (CI caught that race once).
    last_row = (
        "const r = document.querySelectorAll('#latency-rows tr'); if (!r.length) return null;"
        " return [...r[r.length - 1].querySelectorAll('td')].map(c => c.textContent.trim());"
    )
    last = wait(driver, lambda d: d.execute_script(last_row))
    assert last[0] == "total" and float(last[2]) > 0, last
    wait(driver, lambda d: "peak" in d.find_element(By.ID, "focus").text)

    # a defect thumbnail appears (the synthetic line makes about 30 % defective parts)
    thumb = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#defects a.thumb img"), 30)[0]
    wait(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", thumb) > 0)
    time.sleep(1.5)  # let the figures settle before the picture is kept
    shot = Path(os.environ.get("CONSOLE_SCREENSHOT") or tmp_path / "console-live.png")
    driver.save_screenshot(str(shot))

    # Snapshot: the sample reaches the collector over the broker
    driver.find_element(By.CSS_SELECTOR, 'button[data-action="snapshot"]').click()
    result = wait(driver, lambda d: "sample " in d.find_element(By.ID, "action-result").text and
                   d.find_element(By.ID, "action-result").text, 20)  # fmt: skip
    sample_id = result.split("sample ")[1].rstrip(")")
    wait_until(lambda: sample_id in col.ids(), 30, lambda: col.output[-2000:])
    event = agent.wait_for_log("console_action", 5)
    assert event["user"] == "tech" and event["action"] == "snapshot" and event["ok"] is True

    # clicking a defect shows its frame
    driver.find_element(By.CSS_SELECTOR, "#defects a.thumb").click()
    full = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "img.full"))
    wait(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", full) > 0)
    assert agent.stop() == 0


def test_the_console_over_https_works_in_a_real_browser(browser: Callable[..., Any], tmp_path: Path) -> None:
    """``web.tls``: chromium logs in, keeps its Secure, HttpOnly session through the page's own
    polling (the live picture changes), and is told by HSTS to stay on HTTPS."""
    from selenium.webdriver.common.by import By

    from tests.integration.test_console import start_console_agent
    from tests.support.browser import trust_key
    from tests.support.certs import make_pki

    pki = make_pki(tmp_path / "pki")
    agent, url = start_console_agent(
        tmp_path, tls={"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    )
    driver = browser(trust_key(pki.server_cert))  # this server's key and no other
    driver.get(url + "/")
    assert driver.current_url.startswith(url + "/login"), driver.current_url
    driver.find_element(By.NAME, "username").send_keys("tech")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]").click()
    live = wait(driver, lambda d: d.find_element(By.ID, "live"))
    wait(driver, lambda d: d.execute_script("return arguments[0].naturalWidth", live) > 0)
    first = live.screenshot_as_png
    wait(driver, lambda d: live.screenshot_as_png != first, 20)
    wait(driver, lambda d: d.find_element(By.ID, "fps").text not in ("", "\u2013"))
    assert driver.execute_script("return location.protocol") == "https:"
    cookies = driver.get_cookies()
    assert cookies and all(c["secure"] and c["httpOnly"] for c in cookies), cookies
    assert driver.execute_script("return document.cookie") == ""  # the session is out of scripts' reach
    assert agent.stop() == 0
