"""The runtime: consumer-group loop, batches, checkpoints, dead letters, CLI.

``consumers`` sits on top: it may import ``projections``, ``producers`` and ``schemas``.
"""

from consumers._settings import Settings, load_settings
from consumers.batch import BatchProcessor, PreparedBatch
from consumers.broker import EmbeddedBroker
from consumers.runner import LoopSettings, ProjectionRunner, StopSignal
from consumers.stats import RunStats

__all__ = [  # noqa: RUF022 - sorted case-insensitively, as the test checks
    "BatchProcessor",
    "EmbeddedBroker",
    "load_settings",
    "LoopSettings",
    "PreparedBatch",
    "ProjectionRunner",
    "RunStats",
    "Settings",
    "StopSignal",
]
