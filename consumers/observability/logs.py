"""Structured logs: JSON lines in production, readable output in a terminal.

Context (projection, topic, partition, offset, event id) travels as fields. Secrets
are always masked and payload bodies only appear at DEBUG, whatever a call site
passes (:func:`redact`).
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging", "redact"]

_SECRET_MARKERS = ("password", "secret", "token", "credential")
_PAYLOAD_KEYS = frozenset({"payload", "record", "value", "body", "raw"})


def redact(
    _logger: object, method_name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Mask secret-looking fields; drop payload bodies above DEBUG."""
    for key in list(event_dict):
        lowered = key.lower()
        if any(marker in lowered for marker in _SECRET_MARKERS):
            event_dict[key] = "**********"
        elif lowered in _PAYLOAD_KEYS and method_name != "debug":
            event_dict[key] = "[omitted above DEBUG]"
    return event_dict


def configure_logging(*, fmt: str = "auto", level: str = "INFO") -> None:
    json_lines = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            redact,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # Resolve sys.stderr per logger, not once: a redirected or replaced stream (tests,
        # daemonised runs) must not leave threads writing to a closed file.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)
