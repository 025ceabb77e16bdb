"""The runtime: consumer-group loop, batches, checkpoints, dead letters, operations, CLI.

``consumers`` sits on top: it may import ``projections``, ``producers`` and ``schemas``.
Sub-packages: ``runtime`` (the loop), ``kafka`` (broker adapters), ``observability``,
``operations`` (rebuild, replay, status, dead-letter replay), ``cli``, ``settings``;
``app`` is the composition root that wires them.
"""

from consumers.kafka.broker import EmbeddedBroker
from consumers.runtime.batch import PreparedBatch
from consumers.runtime.processor import BatchProcessor
from consumers.runtime.runner import ProjectionRunner
from consumers.runtime.snapshot import RunnerSnapshot
from consumers.runtime.stats import RunStats
from consumers.runtime.stop import StopSignal
from consumers.runtime.transaction import CommitResult
from consumers.settings.models import Settings, load_settings

__all__ = [
    "BatchProcessor",
    "CommitResult",
    "EmbeddedBroker",
    "PreparedBatch",
    "ProjectionRunner",
    "RunStats",
    "RunnerSnapshot",
    "Settings",
    "StopSignal",
    "load_settings",
]
