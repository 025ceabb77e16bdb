"""The end-of-scenario checks: oracle, dead letters, counters, and Jepsen's Kafka anomalies.

The oracle, the dead letters and the counters are checked on every run. In the audited
variant (``audited_env``: ``PROJECTIONIST_APPLIED_LOG=true`` and event-id dedup, both off
in the shipped settings the suite otherwise runs) ``applied_event_log`` holds one row
per offset a *committed* batch passed, written in that same transaction, with
the consumer session that wrote it. Against the positions the broker acknowledged at
publish time it shows, by Jepsen's names:

* lost — a published offset no committed batch ever passed;
* duplicate — an offset passed by two committed batches (applied twice);
* nonmonotonic — a consumer session passing offsets of a partition out of order;
* skip — a consumer session jumping over a published offset (offsets are not assumed
  dense: "between" means between in the list of acknowledged offsets);
* inconsistent-offset — an offset whose logged event id or outcome differs from what
  was published there (or an offset nobody published).
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from consumers.kafka.config import client_config
from consumers.kafka.dead_letters import DeadLetterRecord, dead_letter_topic, read_dead_letters
from consumers.settings.models import Settings
from producers import SampleEvent
from tests.faults.stream import Published
from tests.support.oracle import assert_blog_matches

ANOMALIES = ("lost", "duplicate", "nonmonotonic", "skip", "inconsistent-offset")


@dataclass(frozen=True)
class Expected:
    """What must happen to each published message in this dead-letter mode."""

    applied: list[SampleEvent]  # fed to the oracle
    outcome: dict[tuple[int, int], str]  # position -> apply | dup-id | dead | parked
    error_class: dict[tuple[int, int], str]  # dead-lettered position -> error class


def expected(published: Sequence[Published], mode: str, *, dedup: bool = True) -> Expected:
    first_poison: dict[tuple[int, str], int] = {}
    for p in published:
        if p.item.poison is not None:
            slot = (p.partition, p.item.key)
            first_poison[slot] = min(first_poison.get(slot, p.offset), p.offset)
    applied: list[SampleEvent] = []
    outcome: dict[tuple[int, int], str] = {}
    errors: dict[tuple[int, int], str] = {}
    seen_ids: set[str] = set()
    for p in sorted(published, key=lambda p: p.position):
        item = p.item
        if item.poison is not None:
            outcome[p.position], errors[p.position] = "dead", item.poison
            continue
        since = first_poison.get((p.partition, item.key))
        if mode == "park-key" and since is not None and p.offset > since:
            outcome[p.position], errors[p.position] = "parked", "KeyParked"
            continue
        assert item.sample is not None
        applied.append(item.sample)
        outcome[p.position] = "dup-id" if dedup and item.event_id in seen_ids else "apply"
        seen_ids.add(item.event_id)
    return Expected(applied, outcome, errors)


@dataclass
class Report:
    scenario: str
    seed: int
    events: int
    poison: int
    faults: dict[str, int]
    counters: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letter_copies: int = 0
    anomalies: dict[str, int] = field(default_factory=dict)

    def print(self) -> None:
        print("FAULT-FIGURES " + json.dumps(self.__dict__, sort_keys=True))


def audit_rows(url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.text(
                'SELECT seq, "partition", "offset", event_id, outcome, consumer '
                "FROM applied_event_log ORDER BY seq"
            )
            return [dict(r) for r in conn.execute(query).mappings()]
    finally:
        engine.dispose()


def anomalies(
    published: Sequence[Published], rows: Sequence[dict[str, Any]], want: Expected
) -> dict[str, list[str]]:
    by_pos = {p.position: p for p in published}
    offsets: dict[int, list[int]] = defaultdict(list)
    for p in published:
        offsets[p.partition].append(p.offset)
    for offs in offsets.values():
        offs.sort()
    found: dict[str, list[str]] = {name: [] for name in ANOMALIES}
    logged = Counter((r["partition"], r["offset"]) for r in rows)
    found["lost"] = [f"{p}@{o}" for (p, o) in sorted(set(by_pos) - set(logged))]
    found["duplicate"] = [f"{p}@{o} x{n}" for (p, o), n in sorted(logged.items()) if n > 1]
    last: dict[tuple[str, int], int] = {}
    for r in rows:
        pos = (r["partition"], r["offset"])
        pub = by_pos.get(pos)
        if pub is None or pub.item.event_id != r["event_id"]:
            found["inconsistent-offset"].append(f"{pos}: logged {r['event_id']!r}")
        elif want.outcome[pos] != r["outcome"]:
            found["inconsistent-offset"].append(
                f"{pos}: {r['outcome']} instead of {want.outcome[pos]}"
            )
        session = (r["consumer"], r["partition"])
        prev = last.get(session)
        last[session] = r["offset"]
        if prev is None:
            continue
        if r["offset"] <= prev:
            found["nonmonotonic"].append(f"{session}: {prev} then {r['offset']}")
            continue
        offs = offsets[r["partition"]]
        between = bisect.bisect_left(offs, r["offset"]) - bisect.bisect_right(offs, prev)
        if between > 0:
            found["skip"].append(f"{session}: {prev} then {r['offset']} over {between}")
    return found


def check_dead_letters(
    bootstrap: str, topic: str, published: Sequence[Published], want: Expected
) -> tuple[int, int]:
    """Every poison (and parked) message is in ``<topic>.blog.dlq`` with the right bytes and headers.

    Returns (distinct dead letters, extra copies). Copies are legal only after a crash
    between the broker's acknowledgement and the database commit.
    """
    records = read_dead_letters(
        client_config(Settings(bootstrap_servers=bootstrap).kafka),
        dead_letter_topic(topic, "blog", ".dlq"),
    )
    by_pos = {p.position: p for p in published}
    seen: Counter[tuple[int, int]] = Counter()
    for rec in records:
        origin_topic, partition, offset = rec.origin
        pos = (partition, offset)
        assert origin_topic == topic, f"dead letter from {origin_topic}"
        assert pos in want.error_class, f"{pos} dead-lettered but should not be: {rec.dlq}"
        _check_one(rec, by_pos[pos], want.error_class[pos], want.outcome[pos])
        seen[pos] += 1
    missing = sorted(set(want.error_class) - set(seen))
    assert not missing, f"{len(missing)} dead letters missing, e.g. {missing[:5]}"
    return len(seen), sum(seen.values()) - len(seen)


def _check_one(rec: DeadLetterRecord, pub: Published, error_class: str, outcome: str) -> None:
    item = pub.item
    assert rec.value == item.value, f"{pub.position}: value bytes changed"
    assert rec.key == item.key.encode(), f"{pub.position}: key changed"
    h = rec.dlq
    assert h["original.timestamp"] == str(pub.timestamp_ms), (pub.position, h)
    assert h["projection"] == "blog", h
    assert h["error.class"] == error_class, (pub.position, h)
    assert h["reason"] == ("parked" if outcome == "parked" else "poison"), h
    assert h["error.message"], h
    assert int(h["first.failure.ms"]) >= pub.timestamp_ms - 5_000, h
    assert int(h["attempts"]) >= 1, h
    assert rec.header("event_id") == item.event_id, "original headers not kept"


def finish(
    report: Report,
    *,
    url: str,
    bootstrap: str,
    topic: str,
    published: Sequence[Published],
    mode: str = "skip",
    stats: Iterable[dict[str, Any]] = (),
    exact: dict[str, Any] | None = None,
    dead_letter_copies_allowed: bool = False,
    audited: bool = False,
) -> Report:
    """Oracle, dead letters, counters, and with ``audited`` the anomalies; prints the figures."""
    want = expected(published, mode, dedup=audited)
    assert_blog_matches(url, want.applied)
    report.dead_letters, report.dead_letter_copies = check_dead_letters(
        bootstrap, topic, published, want
    )
    if not dead_letter_copies_allowed:
        assert report.dead_letter_copies == 0, "a dead letter was sent twice without a crash"
    rows = audit_rows(url) if audited else []
    found = anomalies(published, rows, want) if audited else {}
    report.anomalies = {k: len(v) for k, v in found.items()}
    totals: Counter[str] = Counter()
    for s in stats:
        assert _balanced(s), f"counters do not add up: {s}"
        for k, v in s.items():
            if isinstance(v, int) and not isinstance(v, bool):
                totals[k] += v
    totals.update({f"log.{k}": v for k, v in Counter(r["outcome"] for r in rows).items()})
    report.counters = dict(totals)
    report.print()
    bad = {k: v[:5] for k, v in found.items() if v}
    assert not bad, f"anomalies (seed {report.seed}): {bad}"
    if exact is not None:
        got = {k: totals.get(k, 0) for k in exact}
        assert got == exact, f"counters (seed {report.seed}): expected {exact}, got {got}"
    return report


def _balanced(s: dict[str, Any]) -> bool:
    return bool(
        s["consumed"]
        == s["applied"]
        + s["skipped_offset"]
        + s["skipped_event_id"]
        + s["stale"]
        + s["ignored"]
        + s["dead_lettered"]
    )
