"""The Sparkplug B schema the code builds is the one in the .proto, and encodes as Tahu's does."""

from __future__ import annotations

import pytest

pytest.importorskip("google.protobuf")

from scripts.gen_sparkplug_pb import PROTO, from_code, from_proto


def test_the_code_and_the_proto_agree() -> None:
    assert from_proto(PROTO.read_text()) == from_code()


def test_a_metric_encodes_with_tahus_field_numbers() -> None:
    from agent.line.sparkplug_pb import payload_class

    p = payload_class()(timestamp=5, seq=1)
    p.metrics.add(name="bdSeq", datatype=8, long_value=3)
    # field 1 varint 5; field 2 (metric: name "bdSeq", datatype 8, long_value 3); field 3 varint 1
    assert p.SerializeToString().hex() == "0805120b0a056264536571200858031801"
