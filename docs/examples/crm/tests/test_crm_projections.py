"""The example's own tests: each projection against an oracle, through the test kit."""

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm_example import SCHEMAS
from crm_example.signups import SignupsByCountry

from consumers.testing import Given, feed, table_projection

TABLES = Path(__file__).parents[1] / "customers.toml"
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def history(seed: int = 7, customers: int = 40) -> list[Given]:
    """Customers created, changed and sometimes deleted; shuffled like a replay or late events."""
    rng, events = random.Random(seed), []
    for i in range(customers):
        cid = f"c{i:03}"
        for v in range(1, rng.randint(2, 5)):
            events.append(
                Given(
                    "crm.CustomerUpdated",
                    {
                        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                        "customer_id": cid,
                        "name": f"Customer {i} v{v}",
                        "email": f"{cid}@example.com",
                        "country": rng.choice(["DE", "FR", "NL"]),
                        "version": v,
                        "updated_at": T0 + timedelta(hours=i, minutes=v),
                    },
                    key=cid,
                )
            )
        if rng.random() < 0.2:
            events.append(
                Given(
                    "crm.CustomerDeleted",
                    {
                        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                        "customer_id": cid,
                        "version": v + 1,
                        "deleted_at": T0 + timedelta(days=9),
                    },
                    key=cid,
                )
            )
    rng.shuffle(events)  # a replay, a late event: the newest version must still win
    return events


def test_customers_table_holds_the_newest_version(projection_database: str) -> None:
    """crm_customers: one row per customer, its highest version; deletes are tombstones."""
    events = history()
    newest = {}
    for e in events:
        held = newest.get(e.record["customer_id"])
        rank = (e.record["version"], e.event_type == "crm.CustomerDeleted")
        if held is None or rank > held[0]:
            newest[e.record["customer_id"]] = (rank, e)
    fed = feed(
        table_projection(TABLES, schemas=[SCHEMAS]),
        events,
        database_url=projection_database,
        schemas=[SCHEMAS],
        batch_size=17,
    )
    rows = {r["customer_id"]: r for r in fed.tables["crm_customers"]}
    assert rows.keys() == newest.keys()
    for cid, ((version, deleted), event) in newest.items():
        assert (rows[cid]["version"], rows[cid]["_deleted"]) == (version, deleted)
        assert rows[cid]["name"] == (None if deleted else event.record["name"])


def test_signups_count_each_customer_once(projection_database: str) -> None:
    """crm_signups: per country, the customers whose first event named that country."""
    events = history(seed=11)
    first = {}
    for e in events:
        if e.event_type == "crm.CustomerUpdated":
            first.setdefault(e.record["customer_id"], e.record["country"])
    fed = feed(SignupsByCountry(), events, database_url=projection_database, schemas=[SCHEMAS])
    counts = {r["country"]: r["customers"] for r in fed.tables["crm_signups_by_country"]}
    assert counts == {c: list(first.values()).count(c) for c in set(first.values())}
