"""Why a review action is refused; each carries the HTTP status the API answers with."""

from __future__ import annotations

from agent.errors import AgentError


class ReviewError(AgentError):
    status = 400


class NotFound(ReviewError):
    status = 404


class Conflict(ReviewError):
    """The sample's state does not allow it (already labeled, already voted)."""

    status = 409


class BadLabel(ReviewError):
    status = 422


class Forbidden(ReviewError):
    status = 403
