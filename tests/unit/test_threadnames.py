"""Threads carry their Python names in the kernel, where top -H and ps -T read them."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.threadnames import name_os_threads, os_name

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="thread names through /proc are Linux's")


def comm(tid: int | None) -> str:
    """The name the kernel has for one of this process's threads."""
    return Path(f"/proc/self/task/{tid}/comm").read_text().strip()


@pytest.fixture
def waiting_thread() -> Iterator[threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="paho-mqtt-client-cam-01", daemon=True)
    thread.start()
    yield thread
    stop.set()
    thread.join()


def test_a_thread_gets_its_python_name_cut_to_what_the_kernel_keeps(waiting_thread: threading.Thread) -> None:
    assert comm(waiting_thread.native_id) != "paho-mqtt-clien"  # the kernel had its creator's name
    name_os_threads()
    assert comm(waiting_thread.native_id) == "paho-mqtt-clien"
    assert os_name("infer-1") == "infer-1"
    assert os_name("prévisualisation") == "pr?visualisatio"  # ASCII only, still 15 bytes


def test_a_named_thread_is_not_written_again_until_its_name_changes(waiting_thread: threading.Thread) -> None:
    name_os_threads()
    # a second call that wrote the name again would replace this marker
    Path(f"/proc/self/task/{waiting_thread.native_id}/comm").write_text("marker")
    name_os_threads()  # (other threads of the test process may be named meanwhile: not counted on)
    assert comm(waiting_thread.native_id) == "marker"
    waiting_thread.name = "infer-2"
    assert name_os_threads() >= 1
    assert comm(waiting_thread.native_id) == "infer-2"


def test_the_main_thread_keeps_the_process_name() -> None:
    before = comm(threading.main_thread().native_id)
    name_os_threads()
    assert comm(threading.main_thread().native_id) == before
