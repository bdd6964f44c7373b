"""The review JSON API against a real uvicorn: queue order, votes, consensus, and every refusal."""

from __future__ import annotations

from tests.unit.collector.review.conftest import ReviewApp


def test_queue_is_most_uncertain_first_and_hides_what_i_voted(review: ReviewApp) -> None:
    alice = review.client("alice")
    page = alice.get("/api/samples?state=unreviewed&order=uncertainty&limit=50").json()
    prios = [it["priority"] for it in page["items"]]
    assert prios == sorted(prios) and len(prios) == 20 and page["remaining"] == 20
    first = page["items"][0]["id"]
    assert alice.post(f"/api/samples/{first}/votes", {"label": "scratch"}).status == 201
    page = alice.get("/api/samples?state=unreviewed").json()
    assert first not in [it["id"] for it in page["items"]] and page["remaining"] == 19
    bob = review.client("bob")
    assert first == bob.get("/api/samples?state=unreviewed").json()["items"][0]["id"]
