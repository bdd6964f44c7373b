"""The SQLite outbox: order, bounds by priority, age expiry, crashes and corrupt files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import PublishError
from agent.publish.base import Message, Priority
from agent.publish.outbox import Outbox, OutboxFull
from tests.support.paths import REPO

SIZE = 103  # bytes one msg() costs: 100 of payload and the 3-byte topic


def msg(i: int, priority: Priority = Priority.EVENT, size: int = 100, ts: float | None = None) -> Message:
    body = str(i).encode().ljust(size, b".")
    return Message("t/x", body, 1, priority, ts=ts if ts is not None else 1e9 + i)


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    b = Outbox(tmp_path / "outbox.db", max_bytes=1 << 20, max_age_s=1e12)
    yield b
    b.close()


def add(box: Outbox, *messages: Message) -> list[int | None]:
    with box.transaction():
        return [box.append(m) for m in messages]


def test_rows_come_back_oldest_first_with_their_properties(box: Outbox) -> None:
    m = Message("a/b", b"x", 1, Priority.DEFECT, True, "application/json", (("k", "v"),), ts=5.0)
    ids = add(box, m, msg(1), msg(2))
    rows = box.after(0, 10)
    assert [r.id for r in rows] == ids
    assert rows[0].message == m
    assert [r.id for r in box.after(ids[0], 10)] == ids[1:]


def test_delete_forgets_rows_and_updates_depth_and_bytes(box: Outbox) -> None:
    ids = add(box, msg(1), msg(2), msg(3))
    with box.transaction():
        box.delete([ids[0], ids[2], 12345])
    assert [r.id for r in box.after(0, 10)] == [ids[1]]
    assert (box.depth, box.bytes) == (1, msg(2).size)


def test_ids_never_go_back_after_the_outbox_empties(box: Outbox) -> None:
    (first,) = add(box, msg(1))
    with box.transaction():
        box.delete([first])
    (second,) = add(box, msg(2))
    assert second is not None and first is not None and second > first


def test_reopen_keeps_rows_and_counters(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    b = Outbox(path, 1 << 20, 1e12)
    add(b, msg(1, Priority.SAMPLE), msg(2, Priority.DEFECT))
    b.close()
    again = Outbox(path, 1 << 20, 1e12)
    assert again.depth == 2 and again.bytes == 2 * msg(1).size
    assert [r.message.priority for r in again.after(0, 5)] == [Priority.SAMPLE, Priority.DEFECT]
    again.close()


def test_full_outbox_drops_samples_then_results_then_events_and_keeps_defects(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=100 * SIZE, max_age_s=1e12)  # room for 100 messages
    for pri in (Priority.SAMPLE, Priority.RESULT, Priority.EVENT):
        add(box, *(msg(i, pri) for i in range(20)))
    add(box, *(msg(i, Priority.DEFECT) for i in range(90)))
    assert box.dropped == {"sample": 20, "result": 20, "event": 10, "defect": 0}
    kinds = [r.message.priority for r in box.after(0, 200)]
    assert kinds.count(Priority.DEFECT) == 90 and kinds.count(Priority.EVENT) == 10
    assert box.bytes <= box.max_bytes
    box.close()


def test_oldest_of_the_lowest_priority_goes_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=10 * SIZE, max_age_s=1e12)
    add(box, *(msg(i, Priority.SAMPLE) for i in range(10)))
    add(box, msg(99, Priority.SAMPLE))
    bodies = [r.message.payload.rstrip(b".") for r in box.after(0, 20)]
    assert bodies[0] == b"1" and bodies[-1] == b"99"
    assert box.dropped["sample"] == 1
    box.close()


def test_a_low_priority_message_is_dropped_when_only_higher_ones_are_stored(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=10 * SIZE, max_age_s=1e12)
    add(box, *(msg(i, Priority.DEFECT) for i in range(10)))
    assert add(box, msg(50, Priority.SAMPLE)) == [None]
    assert box.dropped["sample"] == 1 and box.depth == 10
    box.close()


def test_a_message_bigger_than_the_whole_bound_is_dropped_and_counted(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=65536, max_age_s=1e12)
    assert add(box, msg(1, Priority.DEFECT, size=70000)) == [None]
    assert box.dropped["defect"] == 1 and box.depth == 0
    box.close()


def test_expire_drops_old_rows_and_counts_them_by_priority(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=1 << 20, max_age_s=60)
    add(box, msg(1, Priority.SAMPLE, ts=1000.0), msg(2, Priority.DEFECT, ts=1010.0), msg(3, ts=2000.0))
    with box.transaction():
        assert box.expire(now=1500.0) == 2
    assert box.expired == 2 and box.dropped["sample"] == 1 and box.dropped["defect"] == 1
    assert [r.message.payload.rstrip(b".") for r in box.after(0, 5)] == [b"3"]
    box.close()


def test_a_second_process_cannot_share_the_outbox(box: Outbox) -> None:
    add(box, msg(1))  # the writer holds the exclusive lock from its first transaction
    code = (
        "import sys; from pathlib import Path\n"
        "from agent.publish.outbox import Outbox; from agent.errors import PublishError\n"
        "try:\n    Outbox(Path(sys.argv[1]), 1<<20, 1e9)\n"
        "except PublishError as e:\n    print(e); sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(box.path)], check=False, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 3, done.stderr
    assert "in use by another process" in done.stdout


def test_a_corrupt_file_is_set_aside_and_a_fresh_outbox_opens(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database" * 100)
    box = Outbox(path, 1 << 20, 1e12)
    assert box.depth == 0
    add(box, msg(1))
    box.close()
    assert list(tmp_path.glob("o.db.corrupt-*"))


def test_unwritable_location_is_a_clear_publish_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PublishError, match="cannot open outbox"):
        Outbox(blocker / "sub" / "o.db", 1 << 20, 1e12)


def test_committed_rows_survive_sigkill_in_the_middle_of_a_transaction(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    code = (
        "import os, signal, sys; from pathlib import Path\n"
        "from agent.publish.outbox import Outbox\nfrom agent.publish.base import Message\n"
        "b = Outbox(Path(sys.argv[1]), 1<<24, 1e12)\n"
        "with b.transaction():\n    [b.append(Message('t', b'x' * 500)) for _ in range(100)]\n"
        "b._db.execute('BEGIN IMMEDIATE')\n"
        "[b.append(Message('t', b'y' * 500)) for _ in range(5000)]\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], check=False, cwd=REPO, capture_output=True)
    assert done.returncode == -9
    box = Outbox(path, 1 << 24, 1e12)
    rows = box.after(0, 10000)
    assert len(rows) == 100 and all(r.message.payload == b"x" * 500 for r in rows)
    assert box.depth == 100
    assert box._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    box.close()
    assert not os.path.exists(f"{path}.corrupt")


def test_a_commit_the_disk_refuses_rolls_back_with_its_counters(box: Outbox) -> None:
    add(box, msg(1), msg(2))
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count={pages}").fetchone()  # SQLite's own SQLITE_FULL, no root needed
    with pytest.raises(OutboxFull, match="disk is full"):
        add(box, *(msg(i, Priority.DEFECT, size=4000) for i in range(20)))
    assert (box.depth, box.bytes, box.dropped["defect"]) == (2, 2 * SIZE, 0)
    box.squeeze(20 * 4003)  # the owner's answer: a lower bound, evicting the lowest priority first
    box.evict_for({Priority.DEFECT: 4003})
    assert box.depth == 0 and box.dropped["event"] == 2


def test_only_a_damaged_file_is_set_aside(tmp_path: Path) -> None:
    locked = tmp_path / "dir-not-db"
    locked.mkdir()
    with pytest.raises(PublishError, match="cannot open outbox"):
        Outbox(locked, 1 << 20, 1e12)  # a directory: an error, not a "corrupt" file to rename
    assert not list(tmp_path.glob("*.corrupt-*"))
