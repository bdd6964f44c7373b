"""Turn one received MQTT message into index rows, or reject it with a one-line reason.

Nothing a device (or anyone able to publish) sends may crash the collector: every check
raises :class:`Rejected`, and the caller quarantines the message with that reason.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import simplejpeg  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from agent.collector.config import CollectorConfig
from agent.collector.index import EventRow, SampleRow
from agent.protocol.schema import load_schema
from agent.protocol.topics import split_device_topic
from agent.protocol.wire import split_payload

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
_JPEG_START, _JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"


class Rejected(Exception):
    """Why a message is quarantined instead of stored."""


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the network thread hands over: the message and how to acknowledge it."""

    topic: str
    payload: bytes
    content_type: str | None
    meta: str | None  # the MQTT 5 user property "meta"
    mid: int
    qos: int
    uploaded: bool = False  # metadata only: the JPEG was PUT to the store (sampling.upload: presigned)
    fallback: bool = False  # the JPEG came this way after a failed presigned upload (protocol/upload.py)


@dataclass(frozen=True, slots=True)
class Sample:
    row: SampleRow
    jpeg: bytes
    message: Incoming  # as received, for the quarantine when a redelivery conflicts


def _schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def safe_component(value: str) -> str:
    """``value`` as one path component: unsafe characters become '_', never '.' or '..'."""
    cleaned = _UNSAFE.sub("_", value)[:128]
    return cleaned if cleaned.strip(".") else "_"


class Parser:
    """Validates samples and defect events against the published schemas and the collector's rules."""

    def __init__(self, cfg: CollectorConfig) -> None:
        self.cfg = cfg
        self._prefix = cfg.subscribe.prefix + "/"
        self._sample_schema = _schema("sample")
        self._defect_schema = _schema("defect")

    def kind(self, topic: str) -> str:
        """'sample' or 'defect' (the last topic level); Rejected for any other topic."""
        kind = topic.rsplit("/", 1)[-1]
        if kind not in ("sample", "defect"):
            raise Rejected(f"unexpected topic {topic!r}")
        return kind

    def _origin(self, topic: str) -> tuple[str, str, str]:
        """(site, line, device) from ``{prefix}/{site}/{line}/{device}/{kind}``."""
        levels = split_device_topic(self.cfg.subscribe.prefix, topic)
        if levels is None:
            raise Rejected(f"topic {topic!r} is not {self._prefix}SITE/LINE/DEVICE/KIND")
        site, line, device, _kind = levels
        if not self.cfg.devices.allowed(device):
            raise Rejected(f"device {device!r} is not allowed (devices.allowed_prefixes)")
        return site, line, device

    def _document(self, text: bytes, validator: Draft202012Validator, what: str) -> dict[str, Any]:
        if len(text) > self.cfg.limits.max_meta_bytes:
            raise Rejected(f"{what} is {len(text)} bytes, more than limits.max_meta_bytes")
        try:
            doc = json.loads(text.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise Rejected(f"{what} is not JSON: {str(exc).splitlines()[0][:120]}") from exc
        error = next(iter(validator.iter_errors(doc)), None) if isinstance(doc, dict) else None
        if not isinstance(doc, dict):
            raise Rejected(f"{what} must be a JSON object")
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "(top level)"
            raise Rejected(f"{what} does not match its schema at {where}: {error.message[:160]}")
        return doc

    def _check_origin(self, doc: dict[str, Any], origin: tuple[str, str, str]) -> None:
        claimed = (doc["site"], doc["line"], doc["device"])
        if claimed != origin:
            raise Rejected(f"metadata says {'/'.join(claimed)} but the topic says {'/'.join(origin)}")

    def upload_key(self, topic: str, meta_text: bytes) -> tuple[str, str]:
        """(sample id, storage key) for a presigned upload request or a metadata-only sample: the
        key is derived here from validated metadata, never taken from the device."""
        origin = self._origin(topic)
        meta = self._document(meta_text, self._sample_schema, "sample metadata")
        self._check_origin(meta, origin)
        return meta["id"], sample_key(meta)

    def sample(self, msg: Incoming) -> Sample:
        size = len(msg.payload) + len(msg.meta or "")
        limit = self.cfg.limits.max_upload_bytes if msg.uploaded else self.cfg.limits.max_bytes
        if size > limit:
            raise Rejected(f"message is {size} bytes, more than limits.max_bytes={limit}")
        origin = self._origin(msg.topic)
        try:
            meta_bytes, jpeg = split_payload(msg.payload, msg.content_type, msg.meta)
        except ValueError as exc:
            raise Rejected(f"not a sample: {exc}") from exc
        meta = self._document(meta_bytes, self._sample_schema, "sample metadata")
        self._check_origin(meta, origin)
        check_jpeg(jpeg, meta["image"], self.cfg.limits.max_pixels)
        model, version = meta["model"]["name"], meta["model"]["version"]
        row = SampleRow(
            id=meta["id"],
            ts=meta["ts"],
            device=origin[2],
            site=origin[0],
            line=origin[1],
            model=model,
            version=version,
            predicted=meta["label"],
            score=float(meta["score"]),
            path=sample_key(meta),
            bytes=len(jpeg),
            reasons=meta["reasons"],
            meta=meta,
        )
        return Sample(row, jpeg, msg)

    def defect(self, msg: Incoming) -> EventRow:
        origin = self._origin(msg.topic)
        doc = self._document(msg.payload, self._defect_schema, "defect event")
        self._check_origin(doc, origin)
        model = doc.get("model") or {}
        return EventRow(
            id=doc["id"],
            ts=doc["ts"],
            device=origin[2],
            site=origin[0],
            line=origin[1],
            model=model.get("name"),
            version=model.get("version"),
            label=doc["label"],
            score=doc.get("score"),
        )


def sample_key(meta: dict[str, Any]) -> str:
    """Where a new sample's image is stored: ``{model}/{version}/unlabeled/{label}/{id}.jpg``."""
    model, version = meta["model"]["name"], meta["model"]["version"]
    parts = (safe_component(model), safe_component(version), "unlabeled", safe_component(meta["label"]))
    return "/".join(parts) + f"/{meta['id']}.jpg"


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259); Python's parser accepts them unless told."""
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    """A float literal, refused when it overflows to infinity (``1e999``)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def check_jpeg(data: bytes, image: dict[str, Any], max_pixels: int) -> None:
    """A complete JPEG of the announced size and byte count, decoded without any libjpeg warning.

    The header is read first (cheap) and its size checked against the metadata and ``max_pixels``,
    so a 300-byte file claiming 65000x65000 costs nothing. The 1/8-scale decode still reads the
    whole entropy-coded stream, and ``strict`` turns libjpeg's warnings ("premature end of data
    segment": a truncated image with an end marker appended) into errors.
    """
    if image["bytes"] != len(data):
        raise Rejected(f"image is {len(data)} bytes but the metadata says {image['bytes']}")
    if not data.startswith(_JPEG_START) or not data.rstrip(b"\0").endswith(_JPEG_END):
        raise Rejected("image is not a complete JPEG (missing start or end marker)")
    try:
        height, width, _colour, _subsampling = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise Rejected(f"image does not decode as JPEG (header): {str(exc)[:120]}") from exc
    if (width, height) != (image["width"], image["height"]):
        raise Rejected(f"image is {width}x{height} but the metadata says {image['width']}x{image['height']}")
    if width * height > max_pixels:
        raise Rejected(f"image is {width}x{height}, more than limits.max_pixels={max_pixels}")
    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", min_factor=8, strict=True)
    except ValueError as exc:
        raise Rejected(f"image does not decode as JPEG: {str(exc)[:120]}") from exc
