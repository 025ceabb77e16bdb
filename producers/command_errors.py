"""What a command can fail with, besides the shared tree in :mod:`schemas.errors`.

::

    ProjectionistError
    └── CommandError              the command was refused; nothing was written
        ├── InvalidCommand        input breaks a rule (HTTP 422); ``problems`` lists them
        ├── AggregateNotFound     no such post or order, or it was deleted (HTTP 404)
        └── VersionConflict       the expected version is not the current one (HTTP 409)
"""

from __future__ import annotations

from schemas.errors import ProjectionistError

__all__ = ["AggregateNotFound", "CommandError", "InvalidCommand", "VersionConflict"]


class CommandError(ProjectionistError):
    """A refused command: its transaction rolled back and no event was written."""


class InvalidCommand(CommandError):
    """The input breaks a rule; each entry of ``problems`` names a field and the rule."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class AggregateNotFound(CommandError):
    def __init__(self, kind: str, aggregate_id: str, *, reason: str = "not found") -> None:
        super().__init__(f"{kind} {aggregate_id!r} {reason}")
        self.kind = kind
        self.aggregate_id = aggregate_id


class VersionConflict(CommandError):
    """Optimistic concurrency: someone else changed the aggregate first."""

    def __init__(
        self, aggregate_id: str, *, expected: int | None, current: int, reason: str | None = None
    ) -> None:
        super().__init__(
            f"{aggregate_id!r} {reason}"
            if reason
            else f"{aggregate_id!r} is at version {current}, not {expected}"
        )
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.current = current
