"""Presigned uploads: what the agent and the collector exchange over MQTT 5 (docs/collector.md).

The agent publishes the sample's metadata (JSON, as it would send it) on
``{prefix}/{site}/{line}/{device}/upload`` with a response topic and correlation data; a collector
of the shared group answers on the response topic with ``{"id", "url"}`` (a presigned PUT for the
key the collector itself derives from the metadata) or ``{"id", "error"}``. After the PUT the
agent sends the metadata on ``…/sample`` with an empty payload and the user property
``upload: presigned``; the collector reads the object back from its store and validates it.
"""

from __future__ import annotations

UPLOAD_PROPERTY = "upload"
PRESIGNED = "presigned"
REQUEST_KIND = "upload"
RESPONSE_KIND = "upload_url"


def sibling_topic(sample_topic: str, kind: str) -> str:
    """``{prefix}/{site}/{line}/{device}/{kind}`` from the device's sample topic."""
    return f"{sample_topic.rsplit('/', 1)[0]}/{kind}"
