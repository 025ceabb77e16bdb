"""Typed, frozen settings from ``PROJECTIONIST_*`` environment variables, one model per concern."""

from consumers.settings.concerns import (
    ApiSettings,
    CommandSettings,
    DatabaseSettings,
    ExtensionSettings,
    KafkaSettings,
    LoopSettings,
    MailSettings,
    ObservabilitySettings,
    ProcessingSettings,
    ReconcileSettings,
    RegistrySettings,
    TopicSettings,
)
from consumers.settings.models import Settings, load_settings, setting_fields

__all__ = [
    "ApiSettings",
    "CommandSettings",
    "DatabaseSettings",
    "ExtensionSettings",
    "KafkaSettings",
    "LoopSettings",
    "MailSettings",
    "ObservabilitySettings",
    "ProcessingSettings",
    "ReconcileSettings",
    "RegistrySettings",
    "Settings",
    "TopicSettings",
    "load_settings",
    "setting_fields",
]
