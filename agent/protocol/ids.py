"""Unique, time-sortable message ids (ULID: 48-bit epoch ms + 80 random bits, Crockford base32).

Ids made by one process are strictly increasing even within a millisecond, so a
consumer can order by id and deduplicate by id after an at-least-once redelivery.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last = 0


def new_id(ts_ms: int | None = None) -> str:
    global _last  # noqa: PLW0603 - the monotonic state is process-wide by design
    ms = int(time.time() * 1000) if ts_ms is None else ts_ms
    with _lock:
        value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
        if value <= _last:
            value = _last + 1
        _last = value
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
