#!/usr/bin/env python3
"""Check that agent/line/proto/sparkplug_b.proto and agent/line/sparkplug_pb.py describe one schema.

The agent builds its Sparkplug B schema with protobuf's descriptor API (no protoc, no generated
module whose gencode version must match the runtime). This script reads the .proto subset and
compares every field's name, number and type with the descriptor the code builds; exit 1 on any
difference. With --print it prints the built descriptor as text.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.line.sparkplug_pb import file_descriptor  # noqa: E402

PROTO = REPO / "agent" / "line" / "proto" / "sparkplug_b.proto"
_FIELD = re.compile(r"^\s*(?:optional |repeated )?(\w+) (\w+) = (\d+);", re.MULTILINE)
_TYPES = {
    "uint64": 4,
    "uint32": 13,
    "string": 9,
    "bool": 8,
    "float": 2,
    "double": 1,
    "bytes": 12,
    "Metric": 11,
}


def from_proto(text: str) -> set[tuple[str, int, int]]:
    return {(name, int(number), _TYPES[kind]) for kind, name, number in _FIELD.findall(text)}


def from_code() -> set[tuple[str, int, int]]:
    payload = file_descriptor().message_type[0]
    fields = list(payload.field) + list(payload.nested_type[0].field)
    return {(f.name, f.number, f.type) for f in fields}


def main() -> int:
    if "--print" in sys.argv:
        print(file_descriptor())
    proto, code = from_proto(PROTO.read_text()), from_code()
    if proto != code:
        print(f"differ: only in .proto {sorted(proto - code)}; only in code {sorted(code - proto)}")
        return 1
    print(f"ok: {len(code)} fields agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
