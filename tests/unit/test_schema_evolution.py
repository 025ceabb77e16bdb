"""Schema evolution: shipped versions resolve both ways; an incompatible change is caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from schemas import AvroSerde, SchemaCatalog, check_catalog
from schemas._catalog import parse_version
from schemas._compat import check_pair
from tests.support import run_cli

SHIPPED = Path(__file__).resolve().parents[2] / "schemas" / "avro"


def _v2_with(
    change: dict[str, Any] | None = None,
    *,
    drop: str | None = None,
    retype: tuple[str, str] | None = None,
) -> dict[str, Any]:
    source = json.loads((SHIPPED / "blog" / "BlogPostUpdated.v2.avsc").read_text())
    fields = [f for f in source["fields"] if f["name"] != drop]
    if retype:
        fields = [{**f, "type": retype[1]} if f["name"] == retype[0] else f for f in fields]
    if change:
        fields.append(change)
    return {**source, "fields": fields}


def test_shipped_schemas_are_backward_and_forward_compatible() -> None:
    """Every shipped version pair resolves in both directions (BlogPostUpdated v1 ↔ v2)."""
    pairs, problems = check_catalog(SchemaCatalog.load())
    assert pairs >= 1
    assert problems == []


@pytest.mark.parametrize(
    ("new", "direction", "kind"),
    [
        (
            _v2_with({"name": "reading_minutes", "type": "int"}),
            "backward",
            "reader_field_missing_default_value",
        ),
        (_v2_with(drop="title"), "forward", "reader_field_missing_default_value"),
        (_v2_with(retype=("version", "string")), "backward", "type_mismatch"),
    ],
)
def test_incompatible_changes_are_reported(new: dict[str, Any], direction: str, kind: str) -> None:
    """A field without default, a removed required field or a changed type is named, with where."""
    old = SchemaCatalog.load().latest("blog.BlogPostUpdated")
    problems = check_pair(old, parse_version(new, version=3, path="BlogPostUpdated.v3.avsc"))
    assert any(p.direction == direction and kind in p.problems[0] for p in problems), problems
    assert "blog.BlogPostUpdated" in problems[0].describe()


def test_added_optional_field_with_default_is_compatible() -> None:
    """The v2 pattern (optional field, default null) passes both directions."""
    old = SchemaCatalog.load().latest("blog.BlogPostUpdated")
    new = _v2_with({"name": "reading_minutes", "type": ["null", "int"], "default": None})
    assert check_pair(old, parse_version(new, version=3)) == []


def test_v1_events_read_as_v2_with_the_default() -> None:
    """A v1-encoded event decodes through the v2 reader with slug = null (and v2 keeps it)."""
    serde = AvroSerde(SchemaCatalog.load())
    record = {
        "event_id": "8d3f3e2c-0a9b-4c1e-9f57-9f1b1d1c0a01",
        "post_id": "p",
        "title": "T",
        "description": "",
        "tags": ["a"],
        "author": "x",
        "creation_date": 0,
        "updated_at": 0,
        "version": 1,
    }
    old = serde.decode(serde.encode("blog.BlogPostUpdated", record, version=1))
    new = serde.decode(serde.encode("blog.BlogPostUpdated", {**record, "slug": "t"}))
    assert (old.schema_version, old.record["slug"]) == (1, None)
    assert (new.schema_version, new.record["slug"]) == (2, "t")


def test_schemas_check_cli_passes_and_fails_readably(tmp_path: Path) -> None:
    """`projectionist schemas check` exits 0 on the shipped files, 1 with a report on a bad v3."""
    ok = run_cli(["schemas", "check"], env={}, timeout_s=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all backward and forward compatible" in ok.stdout
    folder = tmp_path / "avro"
    shutil.copytree(SHIPPED, folder)
    bad = _v2_with({"name": "reading_minutes", "type": "int"})
    (folder / "blog" / "BlogPostUpdated.v3.avsc").write_text(json.dumps(bad))
    result = run_cli(["schemas", "check", "--path", str(folder)], env={}, timeout_s=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "INCOMPATIBLE blog.BlogPostUpdated: v3 cannot read v1 (backward incompatible)"
        in result.stdout
    )
    assert "reading_minutes" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    (folder / "blog" / "BlogPostUpdated.v3.avsc").write_text("{not json")
    broken = run_cli(["schemas", "check", "--path", str(folder)], env={}, timeout_s=60)
    assert broken.returncode == 2
    assert "not valid JSON" in broken.stderr
