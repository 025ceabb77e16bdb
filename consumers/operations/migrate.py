"""``migrate``: the schema step of a deployment, run once per release with the owner role.

Creates, for every projection of the registry (the shipped ones and the users'), the
tables of its active generation (generation 1 on a fresh database), the checkpoint and
step tables, the version pointer and its views: everything the DML-only role of the
consumers may not create. Idempotent: a second run creates nothing and changes no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consumers.kafka.dead_letters import DeadLetter, Refused
from consumers.operations.live import resolve_generation
from consumers.settings.models import Settings
from projections import database_errors
from projections.generations.versions import VersionStore
from projections.registry import ProjectionRegistry

__all__ = ["Migrated", "run_migrate"]


@dataclass(frozen=True, slots=True)
class Migrated:
    projection: str
    generation: int


class _NoDeadLetters:
    """migrate applies no event, so it sends no dead letter and needs no broker."""

    def send(self, letters: Sequence[DeadLetter]) -> Sequence[Refused]:
        raise AssertionError("migrate applies no events")

    def close(self) -> None:
        pass


def run_migrate(settings: Settings, projections: ProjectionRegistry) -> list[Migrated]:
    """Create what every projection's active generation needs; return what was ensured."""
    from consumers.app import build_processor

    done = []
    for name in projections.names():
        generation = resolve_generation(settings.database, projections, name)
        processor = build_processor(
            settings,
            name,
            generation=generation,
            projections=projections,
            dead_letters=_NoDeadLetters(),
        )
        try:
            processor.ensure_schema()
            with database_errors(), processor.engine.begin() as conn:
                VersionStore().ensure(conn, processor.projection)
        finally:
            processor.close()
        done.append(Migrated(name, generation))
    return done
