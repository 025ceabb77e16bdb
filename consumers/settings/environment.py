"""Secrets from mounted files: ``PROJECTIONIST_<NAME>_FILE`` for every secret setting.

Kubernetes mounts a Secret as files (and Docker as ``/run/secrets/*``), which keeps
credentials out of ``kubectl describe pod``, ``/proc/<pid>/environ`` and crash dumps.
For each ``SecretStr`` setting, ``PROJECTIONIST_SASL_PASSWORD_FILE=/path`` reads the
value from that file (one trailing newline stripped, as ``echo`` and editors add one).
Giving both the variable and its ``_FILE`` twin is a mistake, not a precedence puzzle.
Error messages name the variable and the path, never the content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from schemas.errors import ConfigurationError

__all__ = ["secret_file_values"]

_PREFIX = "PROJECTIONIST_"


def secret_file_values(
    environ: Mapping[str, str], secret_fields: Iterable[str], *, given: Iterable[str] = ()
) -> dict[str, str]:
    """Values read from ``<PREFIX><FIELD>_FILE`` for each secret field that names a file."""
    explicit = set(given)
    values: dict[str, str] = {}
    for field in secret_fields:
        env_name = f"{_PREFIX}{field.upper()}"
        path = environ.get(f"{env_name}_FILE", "")
        if not path:
            continue
        if environ.get(env_name) or field in explicit:
            raise ConfigurationError(f"set {env_name} or {env_name}_FILE, not both")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"{env_name}_FILE: cannot read {path}: {exc.strerror or type(exc).__name__}"
            ) from None
        values[field] = text.removesuffix("\n").removesuffix("\r")
        if not values[field]:
            raise ConfigurationError(f"{env_name}_FILE: {path} is empty")
    return values
