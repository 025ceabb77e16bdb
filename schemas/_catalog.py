"""The schema catalog: every ``.avsc`` file ever published, keyed by fingerprint.

Files live under ``schemas/avro/<namespace>/<Name>.v<N>.avsc``. Old versions are never
deleted: a topic may still hold events written with them, and the catalog is how a
reader finds the writer's schema from the 8-byte fingerprint in each message.

Users' schemas load beside the shipped ones from folders of the same shape
(``PROJECTIONIST_SCHEMA_PATHS``, or the ``projectionist.schemas`` entry points of
installed packages). Conflicts are a :class:`ConfigurationError` naming the files: a
record of a shipped schema's name, one name and version in two files that differ, two
schemas with one fingerprint, a malformed file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from schemas.errors import ConfigurationError, UnknownSchemaError

__all__ = ["SchemaCatalog", "SchemaVersion"]

_FILE_NAME = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[0-9]+)\.avsc$")


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One published version of one record schema."""

    full_name: str
    version: int
    fingerprint: bytes  # CRC-64-AVRO of the parsing canonical form, little-endian
    parsed: Any = field(repr=False, compare=False)
    source: Mapping[str, Any] = field(repr=False, compare=False)
    path: str = ""


class SchemaCatalog:
    """Every known schema version, by fingerprint and by (name, version)."""

    def __init__(self, versions: Iterable[SchemaVersion]) -> None:
        self._by_fingerprint: dict[bytes, SchemaVersion] = {}
        self._by_name: dict[str, dict[int, SchemaVersion]] = {}
        for v in versions:
            same = self._by_name.get(v.full_name, {}).get(v.version)
            if same is not None:
                if same.fingerprint == v.fingerprint:
                    continue  # the same file reached twice (two paths to one folder)
                raise ConfigurationError(
                    f"{v.full_name} v{v.version} is defined twice and differs: "
                    f"{same.path} and {v.path}"
                )
            if v.fingerprint in self._by_fingerprint:
                other = self._by_fingerprint[v.fingerprint]
                raise ConfigurationError(
                    f"{v.path} and {other.path} have the same canonical form; "
                    "a new version must change the schema"
                )
            self._by_fingerprint[v.fingerprint] = v
            self._by_name.setdefault(v.full_name, {})[v.version] = v

    @classmethod
    def load(cls, root: Path | None = None, *, extra: Sequence[Path] = ()) -> SchemaCatalog:
        """Load every ``.avsc`` below ``root`` (default: the schemas shipped in the package)
        and, beside them, the users' folders ``extra``."""
        base = root if root is not None else Path(str(resources.files("schemas") / "avro"))
        shipped = _read_folder(base)
        names = {v.full_name for v in shipped}
        users: list[SchemaVersion] = []
        for folder in extra:
            for v in _read_folder(folder):
                if v.full_name in names:
                    raise ConfigurationError(
                        f"{v.path}: {v.full_name} is a shipped schema; "
                        "give your records a namespace of your own"
                    )
                users.append(v)
        return cls([*shipped, *users])

    def by_fingerprint(self, fp: bytes) -> SchemaVersion:
        try:
            return self._by_fingerprint[fp]
        except KeyError:
            raise UnknownSchemaError(f"unknown schema fingerprint {fp.hex()}") from None

    def latest(self, full_name: str) -> SchemaVersion:
        try:
            versions = self._by_name[full_name]
        except KeyError:
            raise UnknownSchemaError(f"no schema named {full_name!r} in the catalog") from None
        return versions[max(versions)]

    def versions(self, full_name: str) -> list[SchemaVersion]:
        return [self._by_name[full_name][k] for k in sorted(self._by_name.get(full_name, {}))]

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __iter__(self) -> Iterator[SchemaVersion]:
        return iter(self._by_fingerprint.values())


def parse_version(source: Mapping[str, Any], *, version: int, path: str = "") -> SchemaVersion:
    """Build a :class:`SchemaVersion` from a schema document."""
    parsed = parse_schema(dict(source), _write_hint=False)
    fp = schema_fingerprint(parsed)
    name = source.get("name", "")
    namespace = source.get("namespace")
    full_name = name if "." in name or not namespace else f"{namespace}.{name}"
    return SchemaVersion(full_name, version, fp, parsed, source, path)


def schema_fingerprint(parsed: Any) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, in the byte order the framing writes."""
    # fastavro's hex is already little-endian, as single-object encoding writes it
    # (the tests check the Avro specification's vector for "null").
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def _read_folder(base: Path) -> list[SchemaVersion]:
    if not base.is_dir():
        raise ConfigurationError(f"schema folder {base} does not exist")
    return [_read_file(p, base) for p in sorted(base.rglob("*.avsc"))]


def _read_file(path: Path, base: Path) -> SchemaVersion:
    shown = f"{base.name}/{path.relative_to(base)}"  # no absolute paths in messages
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise ConfigurationError(f"{shown}: schema files are named <Name>.v<N>.avsc")
    try:
        source = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{shown}: not valid JSON ({exc})") from None
    if not isinstance(source, dict) or source.get("type") != "record":
        raise ConfigurationError(f"{shown}: an event schema is one Avro record")
    try:
        version = parse_version(source, version=int(match["version"]), path=shown)
    except Exception as exc:  # noqa: BLE001 - fastavro's parse errors share no base class
        raise ConfigurationError(f"{shown}: not a valid Avro schema ({exc})") from None
    namespace, _, name = version.full_name.rpartition(".")
    if name != match["name"]:
        raise ConfigurationError(f"{shown}: file name does not match record {version.full_name}")
    if not namespace or path.parent.name != namespace:
        raise ConfigurationError(
            f"{shown}: record {version.full_name} belongs in a folder named after its "
            f"namespace (<namespace>/{name}.v<N>.avsc)"
        )
    return version
