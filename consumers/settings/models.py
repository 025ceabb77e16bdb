"""Typed, frozen settings: environment variables with a ``PROJECTIONIST_`` prefix.

Built once in ``main()`` (command-line flags override the environment) and passed
down; nothing reads the environment anywhere else. Secrets are ``SecretStr`` so they
never appear in ``repr``, logs, ``status`` output or error messages.

One model per concern (:mod:`consumers.settings.concerns`: ``KafkaSettings``, …), each
handed only to the code that needs that concern: ``settings.kafka.bootstrap_servers``.
The variable names stay flat and unique (``PROJECTIONIST_BOOTSTRAP_SERVERS``, not
``…_KAFKA__…``): every field name is the variable name without the prefix, and flat
keyword arguments work too (``Settings(bootstrap_servers=…)``, ``load_settings(…)``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from consumers.settings import concerns as c
from consumers.settings.environment import PREFIX, FlatEnvironment, secret_file_values
from schemas.errors import ConfigurationError

__all__ = [
    "Settings",
    "check_files",
    "check_variable_names",
    "known_variables",
    "load_settings",
    "setting_fields",
]

_CONCERNS: dict[str, type[c._Concern]] = {
    "kafka": c.KafkaSettings,
    "topics": c.TopicSettings,
    "database": c.DatabaseSettings,
    "loop": c.LoopSettings,
    "processing": c.ProcessingSettings,
    "observability": c.ObservabilitySettings,
    "api": c.ApiSettings,
    "mail": c.MailSettings,
    "commands": c.CommandSettings,
    "registry": c.RegistrySettings,
    "reconcile": c.ReconcileSettings,
    "extensions": c.ExtensionSettings,
}
#: flat setting name (the variable without its prefix) → its concern
_CONCERN_OF = {name: concern for concern, m in _CONCERNS.items() for name in m.model_fields}


def setting_fields() -> dict[str, Any]:
    """Every setting by its flat name: ``{"bootstrap_servers": FieldInfo, …}``."""
    return {name: _CONCERNS[of].model_fields[name] for name, of in _CONCERN_OF.items()}


class Settings(BaseSettings):
    """Everything a Projectionist process can be told, by concern. See ``projectionist --help``."""

    model_config = SettingsConfigDict(env_prefix="PROJECTIONIST_", frozen=True, extra="forbid")

    kafka: c.KafkaSettings = Field(default_factory=c.KafkaSettings)
    topics: c.TopicSettings = Field(default_factory=c.TopicSettings)
    database: c.DatabaseSettings = Field(default_factory=c.DatabaseSettings)
    loop: c.LoopSettings = Field(default_factory=c.LoopSettings)
    processing: c.ProcessingSettings = Field(default_factory=c.ProcessingSettings)
    observability: c.ObservabilitySettings = Field(default_factory=c.ObservabilitySettings)
    api: c.ApiSettings = Field(default_factory=c.ApiSettings)
    mail: c.MailSettings = Field(default_factory=c.MailSettings)
    commands: c.CommandSettings = Field(default_factory=c.CommandSettings)
    registry: c.RegistrySettings = Field(default_factory=c.RegistrySettings)
    reconcile: c.ReconcileSettings = Field(default_factory=c.ReconcileSettings)
    extensions: c.ExtensionSettings = Field(default_factory=c.ExtensionSettings)

    @model_validator(mode="before")
    @classmethod
    def _by_concern(cls, data: Any) -> Any:
        """Flat names (environment, flags, keyword arguments) into their concern's model."""
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            concern = _CONCERN_OF.get(key)
            if concern is None:
                out[key] = value  # a concern given whole, or unknown: extra="forbid" says so
                continue
            given = out.setdefault(concern, {})
            if isinstance(given, BaseModel):
                given = out[concern] = given.model_dump()
            given[key] = value
        return out

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments first, then the flat PROJECTIONIST_<NAME> variables; no .env files.
        return (init_settings, FlatEnvironment(settings_cls, list(_CONCERN_OF)))

    def command_database_url(self) -> str:
        """The command side's database: its own URL, else the read-model database."""
        url = self.commands.command_database_url or self.database.database_url
        return url.get_secret_value()

    def flat(self) -> dict[str, object]:
        """Every setting by its flat name (for tools and tests that name variables)."""
        out: dict[str, object] = {}
        for concern in _CONCERNS:
            out.update(dict(getattr(self, concern)))
        return out


#: PROJECTIONIST_* names that are not settings of a process (the example's Docker build arg)
_NOT_SETTINGS = frozenset({"PROJECTIONIST_IMAGE"})


def known_variables() -> set[str]:
    """Every variable a process reads: each setting, and a ``_FILE`` twin per secret."""
    fields = setting_fields()
    names = {f"{PREFIX}{n.upper()}" for n in fields}
    names |= {f"{PREFIX}{n.upper()}_FILE" for n, f in fields.items() if _is_secret(f)}
    return names | _NOT_SETTINGS


def check_variable_names(environ: Mapping[str, str]) -> None:
    """Refuse a ``PROJECTIONIST_*`` variable no setting has: a typo would be ignored silently
    (``PROJECTIONIST_DATABASE_URI`` ran against a new ``./projectionist.db``)."""
    known = known_variables()
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else "; `projectionist --help` lists them"
        raise ConfigurationError(f"unknown setting {name[:80]}{hint}")


def _is_secret(field: Any) -> bool:
    return "SecretStr" in str(field.annotation)


def load_settings(**overrides: object) -> Settings:
    """Environment (and ``*_FILE`` secrets) first, then non-None ``overrides`` on top."""
    check_variable_names(os.environ)
    given = {k: v for k, v in overrides.items() if v is not None}
    secret_fields = [n for n, f in setting_fields().items() if _is_secret(f)]
    given = {**secret_file_values(os.environ, secret_fields, given=given), **given}
    try:
        settings = Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{_where(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigurationError(f"invalid settings: {problems}") from None
    return settings


#: settings that name a file the process must read (TLS material)
_FILE_SETTINGS = ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location", "smtp_ca_file")


def check_files(settings: Settings) -> None:
    """A TLS file that is not there fails at the first connection, deep in a client library
    and over and over; say so once, at start (the CLI calls this; loading settings for a
    manifest check on another machine does not)."""
    flat = settings.flat()
    for folder in settings.extensions.schema_folders():
        if not folder.is_dir():
            raise ConfigurationError(f"{PREFIX}SCHEMA_PATHS: {folder} is not a folder")
    for name in _FILE_SETTINGS:
        path = flat.get(name)
        if (
            isinstance(path, str)
            and path
            and not (os.path.isfile(path) and os.access(path, os.R_OK))
        ):
            raise ConfigurationError(f"{PREFIX}{name.upper()}: {path} is not a readable file")


def _where(loc: tuple[int | str, ...]) -> str:
    """The setting's flat name (the concern is not part of any variable name)."""
    if loc and loc[0] in _CONCERNS:
        loc = loc[1:]
    return ".".join(str(p) for p in loc) or "settings"
