"""Presigned uploads: what the agent and the collector exchange over MQTT 5 (docs/collector.md).

The agent publishes the sample's metadata (JSON, as it would send it) on
``{prefix}/{site}/{line}/{device}/upload`` with a response topic and correlation data; a collector
of the shared group answers on the response topic with ``{"id", "url"}`` (a presigned PUT for the
key the collector itself derives from the metadata) or ``{"id", "error"}``. After the PUT the
agent sends the metadata on ``…/sample`` with an empty payload and the user property
``upload: presigned``; the collector reads the object back from its store and validates it.

When the upload fails the sample goes the usual way (the JPEG in the payload) with the user
property ``upload: fallback``: a PUT can succeed at the store while the agent sees a timeout or
a reset, so an object may already sit under the sample's key without a row. The collector
replaces that object with the fallback's image instead of taking it for a conflicting copy.
"""

from __future__ import annotations

UPLOAD_PROPERTY = "upload"
PRESIGNED = "presigned"
FALLBACK = "fallback"
REQUEST_KIND = "upload"
RESPONSE_KIND = "upload_url"


def sibling_topic(sample_topic: str, kind: str) -> str:
    """``{prefix}/{site}/{line}/{device}/{kind}`` from the device's sample topic."""
    return f"{sample_topic.rsplit('/', 1)[0]}/{kind}"
