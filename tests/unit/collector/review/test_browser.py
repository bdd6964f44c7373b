"""The review app in a real headless chromium: two reviewers label 20 samples with the keyboard,
an admin adjudicates their disagreements, the export holds exactly the consensus labels, and the
audit trail shows every step."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.collector.dataset import Split, export
from tests.support.browser import wait
from tests.unit.collector.review.conftest import LABELS, PASSWORDS, ReviewApp

pytestmark = pytest.mark.slow


def login(driver: Any, app: ReviewApp, user: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(app.url + "/review")
    wait(driver, lambda d: d.find_elements(By.ID, "username"))
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[user] + "\n")
    wait(driver, lambda d: d.find_elements(By.ID, "review"))


def current(driver: Any) -> str:
    """The sample the page is ready to label ('' when the queue is empty)."""
    from selenium.webdriver.common.by import By

    return str(
        wait(
            driver,
            lambda d: (s := d.find_element(By.ID, "review").get_attribute("data-sample")) != "…" and s + "|",
        )[:-1]
    )


def press(driver: Any, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    before = current(driver)
    ActionChains(driver).send_keys(key).perform()
    wait(driver, lambda d: current(d) != before)


def label_all(driver: Any, plan: dict[str, str], predicted: str) -> list[str]:
    """Label whatever the page shows, by digit (or Enter for the prediction), until the queue is empty."""
    from selenium.webdriver.common.keys import Keys

    done = []
    while sid := current(driver):
        label = plan[sid]
        press(driver, Keys.ENTER if label == predicted else str(LABELS.index(label) + 1))
        done.append(sid)
    return done


def test_two_reviewers_an_admin_and_the_export(
    review_factory: Callable[..., ReviewApp], browser: Callable[[], Any], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    app = review_factory(20, votes_required=2)
    alice_plan = {sid: LABELS[i % 3] for i, sid in enumerate(app.ids)}
    disputed = set(app.ids[14:])
    bob_plan = {
        sid: LABELS[(i + 1) % 3] if sid in disputed else alice_plan[sid] for i, sid in enumerate(app.ids)
    }

    alice = browser()
    login(alice, app, "alice")
    first = current(alice)
    press(alice, Keys.ARROW_RIGHT)  # look at the next one first ...
    press(alice, "s")  # ... and skip it too
    second_skipped = current(alice)
    press(alice, Keys.ARROW_LEFT)
    assert current(alice) != second_skipped
    press(alice, "u")  # unsure, then undo: the sample comes back
    press(alice, "z")
    undone = current(alice)
    labeled = label_all(alice, alice_plan, "ok")
    assert undone in labeled and first in labeled and len(labeled) == 20
    counter = alice.find_element(By.ID, "counter")
    assert counter.get_attribute("aria-live") == "polite" and "0 left" in counter.text
    assert "20 labeled this session" in counter.text

    bob = browser()
    login(bob, app, "bob")
    wait(bob, lambda d: d.find_element(By.ID, "image").get_property("complete"))
    bob.save_screenshot(str(tmp_path / "review.png"))
    assert len(label_all(bob, bob_plan, "ok")) == 20

    boss = browser()
    login(boss, app, "boss")
    boss.get(app.url + "/adjudicate")
    decisions = {}
    for _ in range(len(disputed)):
        form = boss.find_element(By.CSS_SELECTOR, "form[action^='/adjudicate/']")
        sid = form.get_attribute("action").rsplit("/", 1)[-1]
        decisions[sid] = "dent"
        Select(form.find_element(By.TAG_NAME, "select")).select_by_visible_text("dent")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait(boss, lambda d, sid=sid: sid not in d.page_source)
    assert set(decisions) == disputed and "Nothing to adjudicate." in boss.page_source

    expected = {sid: alice_plan[sid] for sid in app.ids if sid not in disputed} | decisions
    from agent.collector.review.service import ReviewService
    from agent.collector.storage import make_storage

    service = ReviewService.open(app.cfg.index_location, make_storage("local", app.cfg.root), app.cfg.review)
    try:
        out = tmp_path / "export"
        summary = export(service, out, fmt="imagefolder", split=Split.parse("70/15/15"), seed=0)
    finally:
        service.close()
    got = {p.stem: p.parent.name for p in out.glob("*/*/*.jpg")}
    assert got == expected and summary["samples"] == 20 and summary["missing"] == []
    prov = {d["id"]: d for d in map(json.loads, (out / "provenance.jsonl").read_text().splitlines())}
    some = next(iter(disputed))
    assert prov[some]["how"] == "adjudicated" and prov[some]["decided_by"] == "boss"
    assert {v["reviewer"] for v in prov[some]["votes"]} == {"alice", "bob"}
    agreed = app.ids[0]
    assert prov[agreed]["how"] == "consensus" and len(prov[agreed]["votes"]) == 2

    boss.get(f"{app.url}/samples/{some}")
    rows = [r.text for r in boss.find_elements(By.CSS_SELECTOR, "#audit tbody tr")]
    actions = [" ".join(r.split()[2:4]) for r in rows]
    assert any("alice vote" in a for a in actions) and any("bob vote" in a for a in actions), rows
    assert any("consensus disputed" in a for a in actions) and any("boss adjudicated" in a for a in actions)
    boss.get(f"{app.url}/samples/{undone}")
    trail = " | ".join(r.text for r in boss.find_elements(By.CSS_SELECTOR, "#audit tbody tr"))
    assert "alice unsure" in trail and "alice retract" in trail and "alice vote" in trail, trail

    boss.get(f"{app.url}/samples/{agreed}")  # the admin sends a consensus back for a new round
    reason = boss.find_element(By.ID, "reason")
    assert boss.find_element(By.CSS_SELECTOR, "label[for=reason]").text.startswith("Reopen")
    reason.send_keys("the guide changed" + Keys.ENTER)  # the keyboard alone submits it
    wait(boss, lambda d: d.find_element(By.ID, "state").text == "open")
    trail = " | ".join(r.text for r in boss.find_elements(By.CSS_SELECTOR, "#audit tbody tr"))
    assert "boss reopened" in trail and not boss.find_elements(By.ID, "reason"), trail
