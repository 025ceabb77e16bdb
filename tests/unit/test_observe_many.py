"""``observe_many`` fills a histogram exactly as one ``observe`` per value does."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from consumers.observability.metrics import observe_many


def _exposition(fill: str, values: list[float]) -> bytes:
    registry = CollectorRegistry()
    hist = Histogram("age_seconds", "age", ["slot"], registry=registry, buckets=(0.1, 1, 5, 60))
    child = hist.labels("blog")
    if fill == "one by one":
        for v in values:
            child.observe(v)
    else:
        observe_many(child, values)
    return b"\n".join(
        line for line in generate_latest(registry).splitlines() if b"_created" not in line
    )


def test_same_buckets_sum_and_count_as_observe() -> None:
    rng = random.Random(7)
    # on the bounds too: a value equal to a bound belongs to that bucket (le = "less or equal")
    values = [rng.choice([0.0, 0.1, 1.0, 5.0, 60.0, 61.0]) for _ in range(50)]
    values += [rng.uniform(0, 100) for _ in range(500)]
    assert _exposition("many", values) == _exposition("one by one", values)
    assert b'age_seconds_count{slot="blog"} 550.0' in _exposition("many", values)


def test_nothing_observed_leaves_the_histogram_empty() -> None:
    assert _exposition("many", []) == _exposition("one by one", [])
