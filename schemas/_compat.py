"""Schema evolution rules: every version must stay readable by, and able to read, the others.

For each record and each pair (earlier version ``vM``, later version ``vN``):

* **backward** — a ``vN`` reader resolves data written with ``vM`` (new consumers read
  old events still on the topic);
* **forward** — a ``vM`` reader resolves data written with ``vN`` (old consumers keep
  running while producers move on).

The resolution rules are the Avro specification's ("Schema Resolution"), as implemented
by the Apache ``avro`` package's ``ReaderWriterCompatibilityChecker`` (a port of the
Java ``SchemaCompatibility`` class that Schema Registry uses as well).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas._catalog import SchemaCatalog, SchemaVersion

__all__ = ["Incompatibility", "check_catalog", "check_pair"]


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One direction in which two versions of one record cannot resolve."""

    full_name: str
    reader_version: int
    writer_version: int
    direction: str  # "backward" (newer reads older) or "forward" (older reads newer)
    problems: tuple[str, ...]

    def describe(self) -> str:
        who = (
            f"v{self.reader_version} cannot read v{self.writer_version}"
            f" ({self.direction} incompatible)"
        )
        return f"{self.full_name}: {who}: {'; '.join(self.problems)}"


def _avro(version: SchemaVersion) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(dict(version.source)))


def _resolve(
    reader: SchemaVersion, writer: SchemaVersion, direction: str
) -> Incompatibility | None:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(_avro(reader), _avro(writer))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    kinds = sorted({k.value for k in result.incompatibilities}) or ["incompatible"]
    where = sorted(result.locations - {"/"}) or ["/"]
    problem = f"{', '.join(kinds)} at {', '.join(where)}"
    if result.messages:
        problem += f" ({', '.join(sorted(result.messages))})"
    problems = (problem,)
    return Incompatibility(writer.full_name, reader.version, writer.version, direction, problems)


def check_pair(older: SchemaVersion, newer: SchemaVersion) -> list[Incompatibility]:
    """Backward and forward resolution between two versions of one record."""
    found = [_resolve(newer, older, "backward"), _resolve(older, newer, "forward")]
    return [f for f in found if f is not None]


def check_catalog(catalog: SchemaCatalog) -> tuple[int, list[Incompatibility]]:
    """Check every version against each earlier one; return (pairs checked, problems)."""
    pairs = 0
    problems: list[Incompatibility] = []
    for name in catalog.names():
        versions = catalog.versions(name)
        for i, newer in enumerate(versions):
            for older in versions[:i]:
                pairs += 1
                problems.extend(check_pair(older, newer))
    return pairs, problems
