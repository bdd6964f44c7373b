"""One error tree for the agent.

Third-party errors are translated once, in the adapter that calls the library
(``raise ModelError(...) from exc``), so the rest of the code and the CLI only
ever see these. ``str(err)`` is always a single line fit for a log or a terminal.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """The configuration file is unreadable or invalid.

    ``problems`` holds every problem found, each formatted ``file:line: key.path: what``.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class ModelError(AgentError):
    """A model package is missing, corrupt, tampered with, or does not match its manifest."""


class DataError(AgentError):
    """Training data that cannot make a model: one class only, too few images, nothing readable."""


class RuntimeMissingError(ModelError):
    """The inference library for a model is not installed; the message names the extra."""


class CameraError(AgentError):
    """A capture source cannot be opened or stopped delivering frames."""


class PublishError(AgentError):
    """The broker refused us or a message cannot be delivered as asked."""


class LineError(AgentError):
    """The line integration (GPIO, Modbus, OPC UA, Sparkplug) cannot start: a missing extra, a busy
    port, a GPIO line another program holds. Raised at start, so the process exits and says why."""


class CommandError(AgentError):
    """A remote command is malformed or not allowed; the message goes back in the reply."""


def first_line(exc: BaseException) -> str:
    """The first line of a third-party error's text, for one-line messages."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
