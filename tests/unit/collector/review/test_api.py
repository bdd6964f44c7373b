"""The review JSON API against a real uvicorn: queue order, votes, consensus, and every refusal."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.unit.collector.review.conftest import ReviewApp
from tests.unit.collector.samples import jpeg


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


def test_queue_pages_by_cursor_and_filters(review: ReviewApp) -> None:
    alice = review.client("alice")
    first = alice.get("/api/samples?limit=7").json()
    second = alice.get(f"/api/samples?limit=7&after={first['next']}").json()
    ids = [it["id"] for it in first["items"] + second["items"]]
    assert len(set(ids)) == 14
    assert alice.get("/api/samples?line=line-3").json()["remaining"] == 20
    assert alice.get("/api/samples?line=line-9").json()["items"] == []
    assert alice.get("/api/samples?reason=low_confidence&date_from=2026-01-01").json()["remaining"] == 20
    assert alice.get("/api/samples?reason=drift").json()["remaining"] == 0
    bad = alice.get("/api/samples?date_from=yesterday")
    assert bad.status == 400 and "YYYY-MM-DD" in bad.json()["error"]
    assert alice.get("/api/samples?state=whatever").status == 400


def test_agreement_labels_and_disagreement_waits_for_an_admin(review: ReviewApp) -> None:
    alice, bob, boss = review.client("alice"), review.client("bob"), review.client("boss")
    a, b = review.ids[:2]
    assert alice.post(f"/api/samples/{a}/votes", {"label": "scratch"}).json()["state"] == "open"
    assert bob.post(f"/api/samples/{a}/votes", {"label": "scratch"}).json() == {
        "id": a, "state": "labeled", "label": "scratch"
    }  # fmt: skip
    assert (review.cfg.root / f"demo-defects/1.0.0/labeled/scratch/{a}.jpg").is_file()
    alice.post(f"/api/samples/{b}/votes", {"label": "ok"})
    assert bob.post(f"/api/samples/{b}/votes", {"label": "dent"}).json()["state"] == "disputed"
    assert alice.post(f"/api/samples/{b}/votes/undo").status == 409  # decided: only an admin now
    listed = boss.get("/api/adjudication").json()["items"]
    assert [it["id"] for it in listed] == [b]
    assert {(v["reviewer"], v["label"]) for v in listed[0]["votes"]} == {("alice", "ok"), ("bob", "dent")}
    assert boss.post(f"/api/samples/{b}/adjudication", {"label": "dent"}).json()["state"] == "labeled"
    trail = [(x["actor"], x["action"], x["label"]) for x in boss.get(f"/api/samples/{b}").json()["audit"]]
    assert trail == [("alice", "vote", "ok"), ("bob", "vote", "dent"), ("consensus", "disputed", None),
                     ("boss", "adjudicated", "dent")]  # fmt: skip
    stats = boss.get("/api/stats").json()
    assert stats["labeled"] == {"dent": 1, "scratch": 1}
    assert stats["reviewer_agreement"]["rate"] == 0.5 and stats["model_agreement"]["rate"] == 0.0


def test_bad_votes_are_refused_with_a_clear_error(review: ReviewApp) -> None:
    alice, bob = review.client("alice"), review.client("bob")
    sid = review.ids[0]
    bad = alice.post(f"/api/samples/{sid}/votes", {"label": "crack"})
    assert (
        bad.status == 422
        and "'crack' is not a label of demo-defects (ok, scratch, dent)" in bad.json()["error"]
    )
    assert alice.post(f"/api/samples/{sid}/votes", {"nothing": 1}).status == 400
    assert alice.post("/api/samples/NOPE/votes", {"label": "ok"}).status == 404
    assert alice.post(f"/api/samples/{sid}/votes", {"label": "ok"}).status == 201
    twice = alice.post(f"/api/samples/{sid}/votes", {"label": "dent"})
    assert twice.status == 409 and "already voted ok" in twice.json()["error"]
    bob.post(f"/api/samples/{sid}/votes", {"label": "ok"})
    late = review.client("boss").post(f"/api/samples/{sid}/votes", {"label": "ok"})
    assert late.status == 409 and "already labeled ok" in late.json()["error"]


def test_undo_and_unsure_keep_every_step(review: ReviewApp) -> None:
    alice, boss = review.client("alice"), review.client("boss")
    sid = review.ids[3]
    assert alice.post(f"/api/samples/{sid}/votes", {"label": "dent"}).status == 201
    assert alice.post(f"/api/samples/{sid}/votes/undo").json()["state"] == "open"
    assert alice.post(f"/api/samples/{sid}/votes/undo").status == 409
    assert alice.post(f"/api/samples/{sid}/votes", {"unsure": True}).status == 201
    assert [it["id"] for it in boss.get("/api/adjudication").json()["items"]] == [sid]
    detail = boss.get(f"/api/samples/{sid}").json()
    assert [(x["action"], x["label"], x["previous"]) for x in detail["audit"]] == [
        ("vote", "dent", None), ("retract", None, "dent"), ("unsure", None, "retracted")
    ]  # fmt: skip
    assert detail["votes"] == [{**detail["votes"][0], "reviewer": "alice", "kind": "unsure", "label": None}]


def test_a_reviewer_sees_no_other_votes_before_voting(review: ReviewApp) -> None:
    alice, bob = review.client("alice"), review.client("bob")
    sid = review.ids[5]
    alice.post(f"/api/samples/{sid}/votes", {"label": "dent"})
    before = bob.get(f"/api/samples/{sid}").json()
    assert before["votes"] is None and before["audit"] is None and before["my_vote"] is None
    assert "alice" not in bob.get(f"/samples/{sid}").text.replace('class="who"', "")
    bob.post(f"/api/samples/{sid}/votes", {"label": "ok"})
    assert {v["reviewer"] for v in bob.get(f"/api/samples/{sid}").json()["votes"]} == {"alice", "bob"}


def _at_once(calls: list[Callable[[], int]]) -> list[int]:
    barrier = threading.Barrier(len(calls))
    results: list[int] = [0] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_two_reviewers_voting_at_the_same_instant(review: ReviewApp) -> None:
    alice, bob = review.client("alice"), review.client("bob")
    for sid in review.ids[:8]:
        url = f"/api/samples/{sid}/votes"
        codes = _at_once([lambda url=url: alice.post(url, {"label": "dent"}).status,
                          lambda url=url: bob.post(url, {"label": "dent"}).status])  # fmt: skip
        assert codes == [201, 201]
        detail = alice.get(f"/api/samples/{sid}").json()
        assert detail["state"] == "labeled" and detail["label"] == "dent"
        assert [x["action"] for x in detail["audit"]].count("labeled") == 1


def test_one_reviewer_voting_twice_at_once_counts_once(review: ReviewApp) -> None:
    alice, again = review.client("alice"), review.client("alice")
    sid = review.ids[9]
    url = f"/api/samples/{sid}/votes"
    codes = _at_once([lambda: alice.post(url, {"label": "ok"}).status,
                      lambda: again.post(url, {"label": "scratch"}).status])  # fmt: skip
    assert sorted(codes) == [201, 409]
    detail = review.client("boss").get(f"/api/samples/{sid}").json()
    assert len(detail["votes"]) == 1 and detail["state"] == "open"


def test_forged_requests_are_refused(review: ReviewApp) -> None:
    alice, bob = review.client("alice"), review.client("bob")
    sid = review.ids[0]
    url = f"/api/samples/{sid}/votes"
    assert review.client().post(url, {"label": "ok"}).status == 401
    assert alice.post(url, {"label": "ok"}, csrf=False).status == 403
    stolen = alice.post(url, {"label": "ok"}, headers={"X-CSRF-Token": bob.csrf})
    assert stolen.status == 403 and "CSRF" in stolen.json()["error"]
    form = alice.request("POST", f"/adjudicate/{sid}", data={"label": "ok"})
    assert form.status == 403
    assert review.client("boss").get(f"/api/samples/{sid}").json()["votes"] == []


def test_only_admins_adjudicate(review: ReviewApp) -> None:
    alice = review.client("alice")
    sid = review.ids[0]
    assert alice.get("/adjudicate").status == 403
    assert alice.get("/api/adjudication").status == 403
    refused = alice.post(f"/api/samples/{sid}/adjudication", {"label": "ok"})
    assert refused.status == 403 and "admin" in refused.json()["error"]
    page = alice.request("POST", f"/adjudicate/{sid}", data={"label": "ok", "csrf": alice.csrf})
    assert page.status == 403
    assert review.client("boss").get("/adjudicate").status == 200


def test_a_missing_image_is_shown_as_missing_and_flagged(review: ReviewApp) -> None:
    alice = review.client("alice")
    first = alice.get("/api/samples").json()["items"][0]["id"]
    (path,) = review.cfg.root.glob(f"*/*/unlabeled/*/{first}.jpg")
    path.unlink()
    reply = alice.get(f"/api/samples/{first}/image")
    assert reply.status == 404 and "missing from storage" in reply.json()["error"]
    assert alice.get("/review").status == 200
    item = alice.get("/api/samples").json()["items"][0]
    assert item["id"] == first and item["missing"] is True
    other = review.ids[1] if review.ids[0] == first else review.ids[0]
    assert alice.get(f"/api/samples/{other}/image").body == jpeg(seed=review.ids.index(other))
    trail = review.client("boss").get(f"/api/samples/{first}").json()["audit"]
    assert [x["action"] for x in trail] == ["image_missing"]


def test_a_restart_mid_review_loses_no_vote_and_keeps_sessions(review: ReviewApp) -> None:
    alice, bob = review.client("alice"), review.client("bob")
    review.clients += [alice, bob]
    voted = review.ids[:5]
    for sid in voted:
        assert alice.post(f"/api/samples/{sid}/votes", {"label": "scratch"}).status == 201
    review.restart()
    for sid in voted:  # same cookies, same CSRF tokens: the signing key is persisted
        assert bob.post(f"/api/samples/{sid}/votes", {"label": "scratch"}).json()["state"] == "labeled"
    assert alice.get("/api/samples").json()["remaining"] == 15


def test_pages_carry_security_headers_and_login_is_rate_limited(review: ReviewApp) -> None:
    anon = review.client()
    page = anon.get("/review")
    assert page.status == 303 and page.headers["location"] == "/login?next=/review"
    login = anon.get("/login")
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY" and login.headers["x-content-type-options"] == "nosniff"
    codes = [anon.login("alice", "wrong-password").status for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert anon.login("alice", "alice-secret-1").status == 429  # still locked for this window
    evil = review.client()
    form = evil.get("/login?next=//evil.example/")
    assert 'value="/review"' in form.text


def test_overview_page_shows_agreement(review: ReviewApp) -> None:
    alice, bob = review.client("alice"), review.client("bob")
    for sid in review.ids[:4]:
        alice.post(f"/api/samples/{sid}/votes", {"label": "ok"})
        bob.post(f"/api/samples/{sid}/votes", {"label": "ok"})
    page = alice.get("/overview")
    assert page.status == 200 and 'id="reviewer-agreement">100%' in page.text


def test_an_admin_reopens_a_decided_sample_for_a_new_round(review: ReviewApp) -> None:
    """The consensus looks wrong (or the labeling guide changed): an admin sends the sample back.
    Its image returns under unlabeled/, reviewers vote again without seeing the first round, and
    the trail keeps both rounds and the reason."""
    alice, bob, boss = review.client("alice"), review.client("bob"), review.client("boss")
    a = review.ids[0]
    url = f"/api/samples/{a}/reopen"
    alice.post(f"/api/samples/{a}/votes", {"label": "scratch"})
    assert bob.post(f"/api/samples/{a}/votes", {"label": "scratch"}).json()["state"] == "labeled"
    assert boss.post(url, {"reason": "   "}).status == 400  # the audit needs a reason
    refused = alice.post(url, {"reason": "I changed my mind"})
    assert refused.status == 403 and "admin" in refused.json()["error"]
    assert boss.post(url, {"reason": "the guide now calls these dents"}).json() == {
        "id": a, "state": "open", "label": None
    }  # fmt: skip
    assert not list(review.cfg.root.glob(f"*/*/labeled/*/{a}.jpg"))
    assert len(list(review.cfg.root.glob(f"*/*/unlabeled/*/{a}.jpg"))) == 1
    assert boss.post(url, {"reason": "again"}).status == 409  # already open
    assert alice.get(f"/api/samples/{a}").json()["audit"] is None  # round 2: nothing seen before voting
    assert a in [it["id"] for it in alice.get("/api/samples?state=unreviewed&limit=50").json()["items"]]
    alice.post(f"/api/samples/{a}/votes", {"label": "dent"})
    assert bob.post(f"/api/samples/{a}/votes", {"label": "dent"}).json()["label"] == "dent"
    assert (review.cfg.root / f"demo-defects/1.0.0/labeled/dent/{a}.jpg").is_file()
    trail = boss.get(f"/api/samples/{a}").json()["audit"]
    assert [(x["actor"], x["action"], x["label"], x["round"]) for x in trail] == [
        ("alice", "vote", "scratch", 1), ("bob", "vote", "scratch", 1),
        ("consensus", "labeled", "scratch", 1), ("boss", "reopened", None, 2),
        ("alice", "vote", "dent", 2), ("bob", "vote", "dent", 2), ("consensus", "labeled", "dent", 2),
    ]  # fmt: skip
    assert trail[3]["previous"] == "scratch" and trail[3]["detail"] == "the guide now calls these dents"
    assert boss.get("/api/stats").json()["labeled"] == {"dent": 1}


def test_the_reopen_form_on_the_sample_page_is_for_admins(review: ReviewApp) -> None:
    alice, bob, boss = review.client("alice"), review.client("bob"), review.client("boss")
    a = review.ids[1]
    alice.post(f"/api/samples/{a}/votes", {"label": "ok"})
    bob.post(f"/api/samples/{a}/votes", {"label": "dent"})  # disputed
    assert 'action="/samples/' not in alice.get(f"/samples/{a}").text
    assert f'action="/samples/{a}/reopen"' in boss.get(f"/samples/{a}").text
    page = alice.request("POST", f"/samples/{a}/reopen", data={"reason": "x", "csrf": alice.csrf})
    assert page.status == 403
    done = boss.request(
        "POST", f"/samples/{a}/reopen", data={"reason": "let them look again", "csrf": boss.csrf}
    )
    assert done.status == 303 and done.headers["location"] == f"/samples/{a}"
    assert boss.get(f"/api/samples/{a}").json()["state"] == "open"
