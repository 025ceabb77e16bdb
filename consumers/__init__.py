"""The runtime: consumer-group loop, batches, checkpoints, dead letters, CLI.

``consumers`` sits on top: it may import ``projections``, ``producers`` and ``schemas``.
"""

from consumers.kafka.broker import EmbeddedBroker
from consumers.runtime.batch import BatchProcessor, PreparedBatch
from consumers.runtime.runner import LoopSettings, ProjectionRunner
from consumers.runtime.stats import RunStats
from consumers.runtime.stop import StopSignal
from consumers.settings.models import Settings, load_settings

__all__ = [
    "BatchProcessor",
    "EmbeddedBroker",
    "LoopSettings",
    "PreparedBatch",
    "ProjectionRunner",
    "RunStats",
    "Settings",
    "StopSignal",
    "load_settings",
]
