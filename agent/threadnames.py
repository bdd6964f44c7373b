"""The agent's threads under their own names in ``top -H``, ``ps -T``, ``pidstat -t`` and py-spy.

Python (before 3.14) names its threads only for itself: to the kernel every thread of the
agent is ``python3``, so a technician looking at a busy device cannot tell the inference
thread from the outbox writer or the console's preview. Linux lets a process rename its own
threads through ``/proc/self/task/<tid>/comm`` (15 bytes), which needs no ctypes and works
for threads another library started (paho's network thread). :func:`name_os_threads` copies
each live Python thread's name there; it is cheap enough to call every few seconds, so
threads started later (a restarted stage, a reconnect) are named too. FFmpeg names its own
decoder threads (``av:h264:df0``). Elsewhere than Linux it does nothing. The agent's supervisor
and the collector's main loop call it.
"""

from __future__ import annotations

import threading
from pathlib import Path

_TASKS = Path("/proc/self/task")
_COMM_MAX = 15  # the kernel's TASK_COMM_LEN less the NUL
_named: dict[int, str] = {}  # native id -> the name written, for the threads alive at the last call


def os_name(name: str) -> str:
    """What the kernel keeps of a Python thread name: ``paho-mqtt-client-cam-01`` -> ``paho-mqtt-clien``."""
    return name.encode("ascii", "replace")[:_COMM_MAX].decode("ascii")


def name_os_threads() -> int:
    """Give every live Python thread of this process its Python name in the kernel; returns how
    many were renamed this time. Threads that ended meanwhile and refusals are passed over."""
    if not _TASKS.is_dir():
        return 0
    renamed, live = 0, {}
    for thread in threading.enumerate():
        tid = thread.native_id
        if tid is None or thread is threading.main_thread():  # the main thread is the process' name
            continue
        name = live[tid] = os_name(thread.name)
        if _named.get(tid) == name:
            continue
        try:
            (_TASKS / str(tid) / "comm").write_text(name)
        except OSError:
            del live[tid]  # tried again next time
            continue
        renamed += 1
    _named.clear()  # ended threads are forgotten: their ids may come back for new threads
    _named.update(live)
    return renamed
