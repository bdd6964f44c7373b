"""Sparkplug B's protobuf schema (the subset in proto/sparkplug_b.proto), built with protobuf's
descriptor API: no generated module and no protoc at build time, and the runtime's own version
is always the one that reads it. ``protobuf`` comes from the ``sparkplug`` extra.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from agent.line import require

PACKAGE = "org.eclipse.tahu.protobuf"

# (name, number, type, label, oneof) of Payload.Metric; types are FieldDescriptorProto.TYPE_*.
_T_UINT64, _T_UINT32, _T_STRING, _T_BOOL, _T_FLOAT, _T_DOUBLE, _T_BYTES, _T_MESSAGE = (
    4,
    13,
    9,
    8,
    2,
    1,
    12,
    11,
)
METRIC_FIELDS = (
    ("name", 1, _T_STRING, None),
    ("alias", 2, _T_UINT64, None),
    ("timestamp", 3, _T_UINT64, None),
    ("datatype", 4, _T_UINT32, None),
    ("is_historical", 5, _T_BOOL, None),
    ("is_transient", 6, _T_BOOL, None),
    ("is_null", 7, _T_BOOL, None),
    ("int_value", 10, _T_UINT32, 0),
    ("long_value", 11, _T_UINT64, 0),
    ("float_value", 12, _T_FLOAT, 0),
    ("double_value", 13, _T_DOUBLE, 0),
    ("boolean_value", 14, _T_BOOL, 0),
    ("string_value", 15, _T_STRING, 0),
    ("bytes_value", 16, _T_BYTES, 0),
)
PAYLOAD_FIELDS = (
    ("timestamp", 1, _T_UINT64),
    ("metrics", 2, _T_MESSAGE),
    ("seq", 3, _T_UINT64),
    ("uuid", 4, _T_STRING),
    ("body", 5, _T_BYTES),
)


class DataType(IntEnum):
    """Tahu's DataType numbers for the metric types we send."""

    UINT32 = 7
    UINT64 = 8
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12


def file_descriptor() -> Any:
    """The FileDescriptorProto of proto/sparkplug_b.proto."""
    descriptor_pb2 = require("google.protobuf.descriptor_pb2", "sparkplug")
    fdp = descriptor_pb2.FileDescriptorProto(name="sparkplug_b.proto", package=PACKAGE, syntax="proto2")
    payload = fdp.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    for name, number, kind, oneof in METRIC_FIELDS:
        field = metric.field.add(name=name, number=number, type=kind, label=optional)
        if oneof is not None:
            field.oneof_index = oneof
    for name, number, kind in PAYLOAD_FIELDS:
        repeated = name == "metrics"
        label = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if repeated else optional
        field = payload.field.add(name=name, number=number, type=kind, label=label)
        if repeated:
            field.type_name = f".{PACKAGE}.Payload.Metric"
    return fdp


_PAYLOAD: Any = None


def payload_class() -> Any:
    """The ``Payload`` message class (built once, in a pool of its own)."""
    global _PAYLOAD  # noqa: PLW0603 - one schema per process, built on first use
    if _PAYLOAD is None:
        pool_mod = require("google.protobuf.descriptor_pool", "sparkplug")
        factory = require("google.protobuf.message_factory", "sparkplug")
        pool = pool_mod.DescriptorPool()
        pool.Add(file_descriptor())
        _PAYLOAD = factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))
    return _PAYLOAD
