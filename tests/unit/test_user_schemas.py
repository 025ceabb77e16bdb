"""Users' schema folders: loaded beside the shipped ones, checked by `schemas check`, and
every conflict a one-line error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas import AvroSerde, SchemaCatalog
from schemas.errors import ConfigurationError
from tests.support import run_cli


def _record(name: str, namespace: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": namespace, "fields": fields}


V1 = _record("Thing", "acme", [{"name": "id", "type": "string"}])
V2 = _record(
    "Thing",
    "acme",
    [{"name": "id", "type": "string"}, {"name": "size", "type": ["null", "long"], "default": None}],
)


def _write(root: Path, relative: str, document: object) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return root


def test_user_schemas_load_beside_the_shipped_ones_and_decode(tmp_path: Path) -> None:
    """A folder of <namespace>/<Name>.v<N>.avsc adds its records; v1 data reads as v2."""
    folder = _write(tmp_path / "mine", "acme/Thing.v1.avsc", V1)
    _write(folder, "acme/Thing.v2.avsc", V2)
    catalog = SchemaCatalog.load(extra=[folder, folder])  # twice: the same files, no conflict
    assert "acme.Thing" in catalog.names()
    assert "blog.BlogPostUpdated" in catalog.names()
    serde = AvroSerde(catalog)
    decoded = serde.decode(serde.encode("acme.Thing", {"id": "x"}, version=1))
    assert (decoded.event_type, decoded.schema_version, dict(decoded.record)) == (
        "acme.Thing",
        1,
        {"id": "x", "size": None},
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {
                "blog/BlogPostUpdated.v9.avsc": _record(
                    "BlogPostUpdated", "blog", [{"name": "a", "type": "int"}]
                )
            },
            "blog.BlogPostUpdated is a shipped schema",
        ),
        (
            {"a/acme/Thing.v1.avsc": V1, "b/acme/Thing.v1.avsc": V2},
            "acme.Thing v1 is defined twice and differs",
        ),
        ({"a/acme/Thing.v1.avsc": V1, "a/acme/Thing.v2.avsc": V1}, "have the same canonical form"),
        ({"acme/Thing.v1.avsc": "{not json"}, "not valid JSON"),
        (
            {"acme/Thing.v1.avsc": _record("Thing", "acme", [{"name": "id", "type": "strung"}])},
            "not a valid Avro schema",
        ),
        ({"acme/Thing.avsc": V1}, "named <Name>.v<N>.avsc"),
        ({"other/Thing.v1.avsc": V1}, "belongs in a folder named after its namespace"),
        ({"acme/Other.v1.avsc": V1}, "file name does not match record acme.Thing"),
    ],
)
def test_conflicts_and_malformed_files_are_one_line(
    tmp_path: Path, files: dict[str, object], message: str
) -> None:
    """Shipped-name clash, differing duplicates, fingerprint collision, malformed files."""
    for relative, document in files.items():
        _write(tmp_path / "mine", relative, document)
    folders = sorted({(tmp_path / "mine" / r).parents[1] for r in files})
    with pytest.raises(ConfigurationError) as caught:
        SchemaCatalog.load(extra=folders)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(tmp_path) not in str(caught.value), "no absolute paths in messages"


def test_schemas_check_covers_user_folders(tmp_path: Path) -> None:
    """`projectionist schemas check` checks users' versions too and exits 1 on a break."""
    folder = _write(tmp_path / "mine", "acme/Thing.v1.avsc", V1)
    good = run_cli(["schemas", "check"], env={"PROJECTIONIST_SCHEMA_PATHS": str(folder)})
    assert good.returncode == 0, good.stderr
    breaking = _record(
        "Thing", "acme", [{"name": "id", "type": "string"}, {"name": "size", "type": "long"}]
    )
    _write(folder, "acme/Thing.v2.avsc", breaking)
    bad = run_cli(["schemas", "check"], env={"PROJECTIONIST_SCHEMA_PATHS": str(folder)})
    assert bad.returncode == 1, bad.stdout
    assert "INCOMPATIBLE acme.Thing: v2 cannot read v1" in bad.stdout
    _write(folder, "acme/Thing.v3.avsc", "{")
    broken = run_cli(["schemas", "check"], env={"PROJECTIONIST_SCHEMA_PATHS": str(folder)})
    assert broken.returncode == 2
    assert "Thing.v3.avsc: not valid JSON" in broken.stderr
