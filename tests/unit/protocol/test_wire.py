"""The sample wire format: 3.1.1 framing round-trips, broken framing is refused."""

from __future__ import annotations

import pytest

from agent.protocol.wire import CONTENT_TYPE, frame, split_payload, unframe


def test_framing_round_trips() -> None:
    meta, jpeg = b'{"id":"x"}', b"\xff\xd8\xff...\xff\xd9"
    assert unframe(frame(meta, jpeg)) == (meta, jpeg)
    assert split_payload(frame(meta, jpeg), None, None) == (meta, jpeg)
    assert split_payload(jpeg, CONTENT_TYPE, '{"id":"x"}') == (meta, jpeg)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00\x00", b"\x00\x00\x00\x00rest", b"\x00\x00\x10\x00short", b"\xff\xff\xff\xff{}"],
)
def test_inconsistent_framing_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        unframe(payload)


def test_wrong_content_type_with_meta_is_refused() -> None:
    with pytest.raises(ValueError, match="content type"):
        split_payload(b"x", "image/png", "{}")
