"""Device events: one typed value for everything the agent reports on ``.../event``.

An :class:`Event` is built by one constructor per kind, so each kind's details have a
fixed shape that mypy checks where the event is raised, and the kind is a stable
snake_case name that consumers can match on. Parts raise events through an
:data:`EventSink` (a plain callable); the composition root's sink turns them into the
wire JSON (``agent/protocol/schemas/event.schema.json``) and hands them to the outbox; tests
record them with :class:`agent.testing.RecordingSink`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypedDict


class EventKind(str, Enum):
    """The ``type`` field on the wire: stable names, never reworded."""

    OVERRUN = "overrun"
    OVERRUN_CLEARED = "overrun_cleared"
    CAMERA = "camera"
    STAGE_STUCK = "stage_stuck"
    STAGE_RESTARTED = "stage_restarted"
    MODEL_SWAP = "model_swap"
    OBSERVER_DISABLED = "observer_disabled"
    SHADOW = "shadow"
    OUTBOX_DISK = "outbox_disk"
    IMAGE_SKIPPED = "image_skipped"
    LINE = "line"  # the line integration: a late reject, a trigger that could not be served


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    ALARM = "alarm"


class OverrunDetails(TypedDict):
    ratio: float
    window: int
    policy: str


class OverrunClearedDetails(TypedDict):
    ratio: float
    released: str


class CameraDetails(TypedDict):
    camera: str


class StageDetails(TypedDict):
    stage: str


class StageStuckDetails(TypedDict):
    stage: str
    seconds: float


class ModelState(TypedDict):
    """The model-state.json document (also the details of a model_swap event)."""

    state: str
    name: str
    version: str
    sha256: str
    previous: str | None
    reason: str
    ts: int


class ObserverDetails(TypedDict):
    observer: str
    failures: int
    error: str


class ShadowDetails(TypedDict):
    """The shadow model's state change: running, failed, too_slow or promoted, and why."""

    state: str
    reason: str
    path: str
    name: str | None
    version: str | None


class OutboxDiskDetails(TypedDict):
    disk_full: bool
    reason: str
    dropped: dict[str, int]


class ImageSkippedDetails(TypedDict):
    source: str
    file: str
    reason: str
    skipped: int


class LineDetails(TypedDict):
    what: str  # reject_late, ...
    trigger: int  # the trigger's sequence number


Details = (
    OverrunDetails
    | OverrunClearedDetails
    | CameraDetails
    | StageDetails
    | StageStuckDetails
    | ModelState
    | ObserverDetails
    | ShadowDetails
    | OutboxDiskDetails
    | ImageSkippedDetails
    | LineDetails
)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing worth telling the operator: what kind, how bad, one line for humans, and the facts."""

    kind: EventKind
    severity: Severity
    message: str
    details: Details

    def details_dict(self) -> dict[str, Any]:
        """The details as a plain JSON object (a copy: the event stays immutable)."""
        details: Mapping[str, Any] = self.details
        return dict(details)


EventSink = Callable[[Event], None]


# -- one constructor per kind: the details' shape is fixed here ---------------------------------
def overrun(ratio: float, window: int, policy: str) -> Event:
    return Event(
        EventKind.OVERRUN,
        Severity.WARNING,
        f"sustained overrun: {ratio:.0%} of the last {window} frames over budget; policy {policy}",
        OverrunDetails(ratio=round(ratio, 3), window=window, policy=policy),
    )


def overrun_cleared(ratio: float, released: str) -> Event:
    return Event(
        EventKind.OVERRUN_CLEARED,
        Severity.INFO,
        f"back inside budget ({ratio:.0%} over budget); policy {released} released",
        OverrunClearedDetails(ratio=round(ratio, 3), released=released),
    )


def camera(state: str) -> Event:
    severity = Severity.WARNING if state == "offline" else Severity.INFO
    return Event(EventKind.CAMERA, severity, f"camera {state}", CameraDetails(camera=state))


def stage_stuck(stage: str, seconds: float, deadline_s: float) -> Event:
    return Event(
        EventKind.STAGE_STUCK,
        Severity.ERROR,
        f"{stage} call did not return within {deadline_s:.1f} s",
        StageStuckDetails(stage=stage, seconds=round(seconds, 1)),
    )


def stage_restarted(stage: str) -> Event:
    return Event(
        EventKind.STAGE_RESTARTED, Severity.WARNING, f"{stage} stage restarted", StageDetails(stage=stage)
    )


def model_swap(severity: Literal[Severity.INFO, Severity.ERROR], message: str, outcome: ModelState) -> Event:
    return Event(EventKind.MODEL_SWAP, severity, message, outcome)


def observer_disabled(observer: str, failures: int, error: str) -> Event:
    return Event(
        EventKind.OBSERVER_DISABLED,
        Severity.ERROR,
        f"frame observer {observer} disabled after {failures} failures in a row; inspection goes on: {error}",
        ObserverDetails(observer=observer, failures=failures, error=error),
    )


def shadow(state: str, reason: str, path: str, name: str | None, version: str | None) -> Event:
    severity = Severity.INFO if state in ("running", "promoted") else Severity.WARNING
    what = f"{name} {version}" if name else path
    return Event(
        EventKind.SHADOW,
        severity,
        f"shadow model {what} {state.replace('_', ' ')}: {reason}; the active model runs on",
        ShadowDetails(state=state, reason=reason, path=path, name=name, version=version),
    )


def outbox_disk(full: bool, reason: str, dropped: dict[str, int]) -> Event:
    if full:
        message = f"outbox disk full: dropping the lowest priority first (defects last); {reason}"
    else:
        message = f"outbox stores messages again: {reason}"
    return Event(
        EventKind.OUTBOX_DISK,
        Severity.ERROR if full else Severity.INFO,
        message,
        OutboxDiskDetails(disk_full=full, reason=reason, dropped=dict(dropped)),
    )


def image_skipped(source: str, file: str, reason: str, skipped: int) -> Event:
    return Event(
        EventKind.IMAGE_SKIPPED,
        Severity.WARNING,
        f"{source}: skipped {file}: {reason} ({skipped} skipped so far)",
        ImageSkippedDetails(source=source, file=file, reason=reason, skipped=skipped),
    )


def line_fault(what: str, message: str, trigger: int) -> Event:
    """Something on the line went wrong for one part (a reject that came too late hits the wrong part)."""
    return Event(EventKind.LINE, Severity.ALARM, message, LineDetails(what=what, trigger=trigger))
