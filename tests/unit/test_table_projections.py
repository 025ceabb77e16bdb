"""Declarative table projections: the TOML file, the newest row per key on both databases,
the version guard under replay, and schema evolution (in place where safe, else rebuild)."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from consumers.testing import Fed, Given, feed, postgres_database
from projections import Event, make_engine
from projections.declarative.projection import TableProjection
from projections.declarative.spec import read_table_specs
from projections.generations.versions import VersionStore
from schemas import SchemaCatalog
from schemas.errors import ConfigurationError
from tests.support.databases import PG_BASE_URL

T0 = datetime(2026, 4, 1, tzinfo=UTC)
FIELDS_V1: list[dict[str, Any]] = [
    {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "item_id", "type": "string"},
    {"name": "title", "type": "string"},
    {
        "name": "price",
        "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
    },
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "rev", "type": "long"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
]
NOTE = {"name": "note", "type": ["null", "string"], "default": None}
REMOVED = [
    {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "item_id", "type": "string"},
    {"name": "rev", "type": "long"},
]
TOML = """
[projections.shop_items]
topic = "shop.items"
event = "shop.ItemChanged"
key = "item_id"
newest_by = "rev"
delete_on = "shop.ItemRemoved"
"""


def _schemas(root: Path, *versions: list[dict[str, Any]]) -> Path:
    folder = root / "shop"
    folder.mkdir(parents=True, exist_ok=True)
    for n, fields in enumerate(versions, start=1):
        doc = {"type": "record", "name": "ItemChanged", "namespace": "shop", "fields": fields}
        (folder / f"ItemChanged.v{n}.avsc").write_text(json.dumps(doc))
    removed = {"type": "record", "name": "ItemRemoved", "namespace": "shop", "fields": REMOVED}
    (folder / "ItemRemoved.v1.avsc").write_text(json.dumps(removed))
    return root


def _projection(tmp_path: Path, schemas: Path, toml: str = TOML) -> TableProjection:
    path = tmp_path / "tables.toml"
    path.write_text(toml)
    catalog = SchemaCatalog.load(extra=[schemas])
    (spec,) = read_table_specs(path, catalog)
    return TableProjection(spec, catalog)


def _history(seed: int, items: int = 30, *, note: bool = False) -> list[Given]:
    rng, out = random.Random(seed), []
    for i in range(items):
        iid = f"i{i:02}"
        for rev in range(1, rng.randint(2, 6)):
            record: dict[str, Any] = {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "item_id": iid,
                "title": f"{iid} r{rev}",
                "price": Decimal(rng.randint(0, 99_999)).scaleb(-2),
                "tags": rng.sample(["a", "b", "c"], 2),
                "rev": rev,
                "at": T0 + timedelta(minutes=rev),
            }
            if note:
                record["note"] = f"note {rev}"
            out.append(Given("shop.ItemChanged", record, key=iid))
        if rng.random() < 0.25:
            out.append(
                Given(
                    "shop.ItemRemoved",
                    {
                        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                        "item_id": iid,
                        "rev": rev,
                    },
                    key=iid,
                )
            )
    return out


def _oracle(events: list[Given]) -> dict[str, tuple[int, bool, str | None]]:
    """item → (rev, deleted, title) of its newest event (a delete wins a tie)."""
    best: dict[str, tuple[tuple[int, bool], str | None]] = {}
    for e in events:
        deleted = e.event_type == "shop.ItemRemoved"
        rank = (e.record["rev"], deleted)
        held = best.get(e.record["item_id"])
        if held is None or rank > held[0]:
            best[e.record["item_id"]] = (rank, None if deleted else e.record["title"])
    return {k: (r[0], r[1], t) for k, (r, t) in best.items()}


def _as_oracle(fed: Fed) -> dict[str, tuple[int, bool, str | None]]:
    return {r["item_id"]: (r["rev"], r["_deleted"], r["title"]) for r in fed.tables["shop_items"]}


def test_newest_row_per_key_whatever_the_order_and_batching(db_url: str, tmp_path: Path) -> None:
    """Shuffled events, any batch size and partitioning: the oracle's newest row per key."""
    schemas = _schemas(tmp_path, FIELDS_V1)
    events = _history(3)
    random.Random(4).shuffle(events)
    fed = feed(
        _projection(tmp_path, schemas),
        events,
        database_url=db_url,
        schemas=[schemas],
        batch_size=7,
        partitions=3,
    )
    assert _as_oracle(fed) == _oracle(events)
    assert fed.stats.balanced()
    assert fed.stats.applied + fed.stats.stale == len(events)
    row = next(r for r in fed.tables["shop_items"] if not r["_deleted"])
    assert json.loads(row["tags"])
    assert row["at"].replace(tzinfo=UTC) >= T0
    assert float(row["price"]) >= 0


def test_a_replay_never_overwrites_newer_rows(db_url: str, tmp_path: Path) -> None:
    """Applying every event again, oldest first, changes no row (the version guard)."""
    schemas = _schemas(tmp_path, FIELDS_V1)
    projection = _projection(tmp_path, schemas)
    events = _history(5)
    fed = feed(projection, events, database_url=db_url, schemas=[schemas])
    engine = make_engine(db_url)
    replayed = [
        Event("shop.items", 0, 10_000 + n, e.event_type, e.record["event_id"], e.record)  # type: ignore[arg-type]
        for n, e in enumerate(sorted(events, key=lambda e: e.record["rev"]))
    ]
    with engine.begin() as conn:
        result = projection.apply(conn, replayed)
        rows = [
            dict(r._mapping) for r in conn.execute(sa.select(projection.table).order_by("item_id"))
        ]
    engine.dispose()
    assert (result.applied, result.stale) == (0, len(events))
    assert rows == fed.tables["shop_items"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            TOML.replace('newest_by = "rev"', 'newest_by = "rev"\ncolour = 1'),
            "unknown option(s) colour",
        ),
        (TOML.replace("shop.ItemChanged", "shop.Nope"), "no schema defines 'shop.Nope'"),
        (
            TOML.replace('key = "item_id"', 'key = "sku"'),
            "key 'sku' is not a field of shop.ItemChanged",
        ),
        (
            TOML.replace('newest_by = "rev"', 'newest_by = "title"'),
            "must be an int, a long or a timestamp",
        ),
        (
            TOML.replace('key = "item_id"', 'key = "item_id"\ncolumns = ["colour"]'),
            "colour are not fields",
        ),
        (TOML.replace("shop_items]", "Shop-Items]"), "a projection name is lower-case"),
        (TOML.replace('topic = "shop.items"', ""), 'topic = "…" is required'),
        ("[projections.x\n", "not valid TOML"),
        ("[tables.x]\n", "declare each table as [projections.<name>]"),
    ],
)
def test_file_mistakes_are_one_line_naming_the_projection(
    tmp_path: Path, toml: str, message: str
) -> None:
    """Every mistake in the TOML file names the file, the projection and what is wrong."""
    schemas = _schemas(tmp_path, FIELDS_V1)
    with pytest.raises(ConfigurationError) as caught:
        _projection(tmp_path, schemas, toml)
    assert message in str(caught.value)
    assert "tables.toml" in str(caught.value)
    assert "\n" not in str(caught.value)


@contextmanager
def _another_database(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty database of the same kind (the "rebuild from scratch" side)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'rebuilt.db'}"
        return
    with postgres_database(PG_BASE_URL) as url:
        yield url


def _view_columns(db_url: str, view: str) -> set[str]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text(f"SELECT * FROM {view}")).keys())
    finally:
        engine.dispose()


def test_a_new_optional_field_is_added_in_place_and_equals_a_rebuild(
    db_url: str, tmp_path: Path
) -> None:
    """v2 adds a nullable field: the running generation gains the column in place (its view
    too), and the table equals one built from scratch from the whole log."""
    old = _schemas(tmp_path / "old", FIELDS_V1)
    new = _schemas(tmp_path / "new", FIELDS_V1, [*FIELDS_V1, NOTE])
    before, after = _history(8), _history(9, note=True)
    first = _projection(tmp_path, old)
    feed(first, before, database_url=db_url, schemas=[old])
    engine = make_engine(db_url)
    with engine.begin() as conn:
        VersionStore().ensure(conn, first)  # the view `shop_items` over generation 1
    engine.dispose()
    assert "note" not in _view_columns(db_url, "shop_items")
    live = feed(_projection(tmp_path, new), after, database_url=db_url, schemas=[new])
    assert "note" in _view_columns(db_url, "shop_items")
    with _another_database(db_url, tmp_path) as scratch:
        rebuilt = feed(
            _projection(tmp_path, new), before + after, database_url=scratch, schemas=[new]
        )
    assert live.tables == rebuilt.tables
    notes = [r["note"] for r in live.tables["shop_items"]]
    assert any(notes)
    assert None in notes


@pytest.mark.parametrize(
    ("v2_fields", "toml_after", "problem"),
    [
        ([*FIELDS_V1, {"name": "qty", "type": "long", "default": 0}], TOML, "column qty is new"),
        ([f for f in FIELDS_V1 if f["name"] != "title"], TOML, "column title is no longer defined"),
        (
            [*FIELDS_V1, NOTE],
            TOML + 'columns = ["title", "tags", "note"]\n',
            "column price is no longer defined",
        ),
    ],
)
def test_a_change_that_is_not_safe_in_place_asks_for_a_rebuild(
    db_url: str, tmp_path: Path, v2_fields: list[dict[str, Any]], toml_after: str, problem: str
) -> None:
    """A new non-null field, a removed field, a changed column list: consume refuses with one
    line saying to rebuild (the next generation is built from the new definition)."""
    old = _schemas(tmp_path / "old", FIELDS_V1)
    new = _schemas(tmp_path / "new", FIELDS_V1, v2_fields)
    feed(_projection(tmp_path, old), _history(1, items=3), database_url=db_url, schemas=[old])
    changed = _projection(tmp_path, new, toml_after)
    with pytest.raises(ConfigurationError) as caught:
        feed(changed, [], database_url=db_url, schemas=[new])
    assert problem in str(caught.value)
    assert "projectionist rebuild shop_items" in str(caught.value)
    next_generation = TableProjection(changed.spec, SchemaCatalog.load(extra=[new]), generation=2)
    assert feed(next_generation, [], database_url=db_url, schemas=[new]).tables == {
        "shop_items": []
    }
