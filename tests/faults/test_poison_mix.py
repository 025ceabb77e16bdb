"""Poison at random positions, in skip and park-key modes (real broker, real PostgreSQL)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tests.faults.checker import Report, expected, finish
from tests.faults.conftest import AUDITED
from tests.faults.fleet import DRAIN
from tests.faults.stream import build_stream, publish
from tests.support import json_line, run_cli


@pytest.mark.parametrize(
    ("mode", "variant"), [("skip", "shipped"), ("park-key", "shipped"), ("skip", "audited")]
)
def test_poison_mix_is_dead_lettered_and_the_rest_applies_once(
    seed: int, bootstrap: str, fault_env: dict[str, str], pg_url: str, mode: str, variant: str
) -> None:
    """Corrupt bytes, unknown fingerprints, invalid events: all in the DLQ; good events once.

    The audited variant adds the applied-event log (Jepsen's anomaly checks) and dedup."""
    audited = variant == "audited"
    fault_env = {**fault_env, **AUDITED} if audited else fault_env
    rng = random.Random(seed)
    items = build_stream(rng, posts=700, poison=40, duplicates=0.03, late_versions=0.03)
    topic = fault_env["PROJECTIONIST_BLOG_TOPIC"]
    published = publish(bootstrap, topic, items)
    result = run_cli(DRAIN, env={**fault_env, "PROJECTIONIST_DEAD_LETTER_MODE": mode})
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json_line(result.stdout)
    outcomes = Counter(expected(published, mode, dedup=audited).outcome.values())
    report = Report(
        scenario=f"poison-{mode}-{variant}",
        seed=seed,
        events=len(published),
        poison=outcomes["dead"],
        faults={"poison": outcomes["dead"], "parked": outcomes["parked"]},
    )
    finish(
        report,
        url=pg_url,
        bootstrap=bootstrap,
        topic=topic,
        published=published,
        mode=mode,
        audited=audited,
        stats=[stats],
        exact={
            "consumed": len(published),
            "dead_lettered": outcomes["dead"] + outcomes["parked"],
            "parked": outcomes["parked"],
            "skipped_event_id": outcomes["dup-id"],
            "skipped_offset": 0,
        },
    )
    if mode == "park-key":
        assert outcomes["parked"] > 0, "no key was parked: the scenario proves nothing"
