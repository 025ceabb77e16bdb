"""Where settings come from: flat ``PROJECTIONIST_<NAME>`` variables and mounted secret files.

**Variables.** Every setting is read from ``PROJECTIONIST_<NAME>`` (case-insensitive,
like pydantic-settings' own source), whatever concern model holds it: the names stay
flat for deploy manifests, the README and operators.

**Secret files.** For each ``SecretStr`` setting, ``PROJECTIONIST_<NAME>_FILE=/path``
reads the value from that file (one trailing newline stripped, as ``echo`` and editors
add one). Kubernetes mounts a Secret as files (and Docker as ``/run/secrets/*``), which
keeps credentials out of ``kubectl describe pod``, ``/proc/<pid>/environ`` and crash
dumps. Giving both the variable and its ``_FILE`` twin is a mistake, not a precedence
puzzle. Error messages name the variable and the path, never the content.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from schemas.errors import ConfigurationError

__all__ = ["PREFIX", "FlatEnvironment", "secret_file_values"]

PREFIX = "PROJECTIONIST_"


class FlatEnvironment(PydanticBaseSettingsSource):
    """``PROJECTIONIST_<NAME>`` for each flat setting name, as raw strings."""

    def __init__(self, settings_cls: type[BaseSettings], names: Iterable[str]) -> None:
        super().__init__(settings_cls)
        self._names = list(names)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # not used: __call__ reads every name at once

    def __call__(self) -> dict[str, Any]:
        environ = {k.lower(): v for k, v in os.environ.items()}
        found = {name: environ.get(f"{PREFIX}{name}".lower()) for name in self._names}
        return {name: value for name, value in found.items() if value is not None}


def secret_file_values(
    environ: Mapping[str, str], secret_fields: Iterable[str], *, given: Iterable[str] = ()
) -> dict[str, str]:
    """Values read from ``<PREFIX><FIELD>_FILE`` for each secret field that names a file."""
    explicit = set(given)
    values: dict[str, str] = {}
    for field in secret_fields:
        env_name = f"{PREFIX}{field.upper()}"
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
        except UnicodeDecodeError:
            raise ConfigurationError(f"{env_name}_FILE: {path} is not UTF-8 text") from None
        values[field] = text.removesuffix("\n").removesuffix("\r")
        if not values[field]:
            raise ConfigurationError(f"{env_name}_FILE: {path} is empty")
    return values
