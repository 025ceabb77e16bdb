"""Settings for in-process runners, from a CLI environment or for one observability test."""

from __future__ import annotations

from typing import Any

from consumers.kafka.broker import free_port
from consumers.settings.models import Settings, load_settings
from tests.support.processes import TEST_ENV
from tests.support.waiting import unique


def load_test_settings(env: dict[str, str], **overrides: object) -> Any:
    """Settings for an in-process runner from a CLI environment (``PROJECTIONIST_*``) + overrides."""
    from consumers.settings.models import Settings

    prefix = "PROJECTIONIST_"
    fields = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    return Settings(**{**fields, **overrides})


def settings_for(bootstrap: str, topic: str, db_url: str, **overrides: Any) -> Settings:
    env = {k.removeprefix("PROJECTIONIST_").lower(): v for k, v in TEST_ENV.items()}
    return load_settings(
        **env,
        bootstrap_servers=bootstrap,
        blog_topic=topic,
        group_prefix=unique("obs"),
        database_url=db_url,
        metrics_address=f"127.0.0.1:{free_port()}",
        **overrides,
    )
