"""A wedged group is told apart from a normal rebalance and from an idle spare replica."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from consumers.runtime.wedge import WedgeWatch

TOPIC = "blog.posts"


@dataclass
class Broker:
    """What the wedge check asks a consumer: partitions and their high watermarks."""

    highs: dict[int, int]

    def list_topics(self, topic: str, timeout: float) -> Any:
        meta = SimpleNamespace(error=None, partitions=dict.fromkeys(self.highs))
        return SimpleNamespace(topics={topic: meta})

    def get_watermark_offsets(self, tp: Any, timeout: float, cached: bool) -> tuple[int, int]:
        assert not cached, "no fetch response exists without an assignment"
        return 0, self.highs[tp.partition]


@dataclass
class Checkpoints:
    """The processor's side: the projection's topics and its stored checkpoints."""

    stored: dict[tuple[str, int], int] = field(default_factory=dict)
    projection: Any = field(default_factory=lambda: SimpleNamespace(topics=(TOPIC,), slot="b_v1"))

    def load_positions(self, partitions: Any) -> dict[tuple[str, int], int]:
        return {tp: off for tp, off in self.stored.items() if tp in partitions}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _watch(stored: dict[tuple[str, int], int]) -> tuple[WedgeWatch, Checkpoints, Clock]:
    clock, checkpoints = Clock(), Checkpoints(stored)
    watch = WedgeWatch(checkpoints, grace_s=30, every_s=5, clock=clock)  # type: ignore[arg-type]
    return watch, checkpoints, clock


def _after(watch: WedgeWatch, clock: Clock, broker: Broker, seconds: float) -> bool:
    """Polls every second for ``seconds``, unassigned; the last answer."""
    wedged = False
    for _ in range(int(seconds)):
        clock.now += 1
        wedged = watch.observe(broker, assigned=False)  # type: ignore[arg-type]
    return wedged


def test_no_partitions_past_the_grace_with_events_waiting_is_wedged() -> None:
    """Nobody moves the checkpoints for longer than the grace while 10 events wait."""
    watch, _cp, clock = _watch({(TOPIC, 0): 9, (TOPIC, 1): 4})
    broker = Broker({0: 20, 1: 5})  # partition 0: 10 events wait; partition 1: caught up
    assert not _after(watch, clock, broker, 29), "within the grace: a rebalance"
    assert _after(watch, clock, broker, 10)
    assert watch.lag == 10
    assert not watch.observe(broker, assigned=True)  # type: ignore[arg-type]
    assert (watch.wedged, watch.lag) == (False, 0)


def test_an_idle_spare_beside_a_busy_member_is_not_wedged() -> None:
    """Events wait, but another member keeps moving the checkpoints."""
    watch, checkpoints, clock = _watch({(TOPIC, 0): 0})
    broker = Broker({0: 1_000})
    for _ in range(20):
        assert not _after(watch, clock, broker, 5)
        checkpoints.stored[(TOPIC, 0)] += 10


def test_nothing_waiting_is_not_wedged() -> None:
    """Caught up: having no partitions is not worth a page."""
    watch, _cp, clock = _watch({(TOPIC, 0): 99})
    assert not _after(watch, clock, Broker({0: 100}), 120)
    assert watch.lag == 0
