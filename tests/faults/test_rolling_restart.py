"""A rolling update on one machine: three static members, each SIGTERMed and restarted, one SIGKILLed.

What a StatefulSet rollout does to the ``blog`` consumer group (deploy/k8s/base), with the
embedded broker's short session timeout (tests.support.TEST_ENV) standing in for the
manifests' 60 s. A background thread keeps publishing throughout, so every signal lands
while the group is consuming.

The members use eager (range) assignment like every test here: on Tansu cooperative-sticky
joins take 11–16 s each (the manifests use cooperative-sticky against Kafka).

Exactly-once is checked in the database itself: a trigger records every checkpoint move
(from, to) with the PostgreSQL ``application_name`` of the process that committed it, so
each offset's one application is attributed to one process incarnation, including the
one that was SIGKILLed.

Measured on the embedded Tansu broker: a restarted static member rejoins in ~15 s and its
return triggers a rebalance of the others (Apache Kafka hands its partitions straight
back), so the bound on rebalances below is Tansu's, and loose for Kafka.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, producer_config
from consumers.kafka.dead_letters import dead_letter_topic
from consumers.settings.models import Settings
from producers import EventPublisher, SampleEvent, blog_events
from projections import CheckpointStore
from schemas import AvroSerde, SchemaCatalog
from tests.support import PROJECTIONIST, checkpoint_total, json_line, wait_for
from tests.support.oracle import assert_blog_matches

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 6
MEMBERS = 3
# The drain budget the manifests give a consumer (PROJECTIONIST_SHUTDOWN_GRACE_S).
GRACE_S = float(
    dict(
        line.split("=", 1)
        for line in (ROOT / "deploy/k8s/base/settings.env").read_text().splitlines()
        if "=" in line
    )["PROJECTIONIST_SHUTDOWN_GRACE_S"]
)
# Membership changes the group goes through: three members forming it, three rolled
# (each leaves and returns), one killed and restarted. Each change costs a live member at
# most one revoke and one assign callback (eager protocol). Measured: 2–12 per incarnation,
# 34 in all, on Tansu.
MEMBERSHIP_CHANGES = MEMBERS + 2 * MEMBERS + 2
MAX_REBALANCES_PER_RUN = 2 * MEMBERSHIP_CHANGES


class StreamPublisher(threading.Thread):
    """Publishes a prefix of ``events`` at a steady pace until stopped or exhausted."""

    def __init__(self, bootstrap: str, topic: str, events: list[SampleEvent]) -> None:
        super().__init__(daemon=True)
        self.topic, self.events = topic, events
        self.publisher = EventPublisher(
            producer_config(Settings(bootstrap_servers=bootstrap).kafka),
            serde=AvroSerde(SchemaCatalog.load()),
        )
        self.published = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while self.published < len(self.events) and not self._stop_event.wait(0.25):
                chunk = self.events[self.published : self.published + 40]
                for ev in chunk:
                    self.publisher.publish(self.topic, ev.event_type, ev.record, key=ev.key)
                self.publisher.flush()
                self.published += len(chunk)
        except Exception as exc:  # noqa: BLE001 - surfaced in the test thread by finish()
            self.error = exc

    def finish(self) -> list[SampleEvent]:
        self._stop_event.set()
        self.join(timeout=60)
        self.publisher.close()
        assert self.error is None, f"publisher failed: {self.error!r}"
        return self.events[: self.published]


class Member:
    """One ``projectionist consume blog`` process with static membership, logs in a file."""

    def __init__(self, instance: str, env: dict[str, str], log_dir: Path, incarnation: int) -> None:
        self.instance = instance
        self.name = f"{instance}.{incarnation}"  # also its PostgreSQL application_name
        self.log = log_dir / f"{self.name}.log"
        url = env["PROJECTIONIST_DATABASE_URL"] + f"?application_name={self.name}"
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [PROJECTIONIST, "consume", "blog", "--json", "--group-instance-id", instance],
                env={**env, "PROJECTIONIST_DATABASE_URL": url},
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )

    def log_events(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.log.read_text().splitlines() if x.startswith("{")]

    def owned(self) -> dict[int, int]:
        """Partition → first offset of its current assignment, replayed from the log."""
        owned: dict[int, int] = {}
        for e in self.log_events():
            parts = [re.fullmatch(r".*\[(\d+)\](?:@(.+))?", p) for p in e.get("partitions", [])]
            if e.get("event") == "partitions assigned":
                owned.update({int(m[1]): 0 if m[2] == "-" else int(m[2]) for m in parts if m})
            elif e.get("event") == "partitions revoked":
                for m in parts:
                    if m:
                        owned.pop(int(m[1]), None)
        return owned

    def terminate(self) -> tuple[dict[str, Any], float]:
        """SIGTERM, as the kubelet sends it; the final counters and how long the drain took."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=GRACE_S + 30)
        took = time.monotonic() - sent
        assert self.proc.returncode == 0, (
            f"{self.instance} exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
        )
        stats = json_line(out)
        assert stats["signal"] == "SIGTERM"
        return {**stats, "name": self.name}, took

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=10)


AUDIT = """
CREATE TABLE checkpoint_moves (
    partition integer NOT NULL, from_offset bigint NOT NULL, to_offset bigint NOT NULL,
    application text NOT NULL
);
CREATE FUNCTION record_checkpoint_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO checkpoint_moves VALUES (
        NEW.partition, COALESCE(OLD.last_offset, -1), NEW.last_offset,
        current_setting('application_name'));
    RETURN NEW;
END $$;
CREATE TRIGGER record_checkpoint_move AFTER INSERT OR UPDATE ON projection_checkpoints
    FOR EACH ROW EXECUTE FUNCTION record_checkpoint_move();
"""


def install_audit(url: str) -> None:
    """Create the checkpoint table before the consumers do, with the recording trigger."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            CheckpointStore().create(conn)
            conn.exec_driver_sql(AUDIT)
    finally:
        engine.dispose()


def checkpoint_moves(url: str) -> list[tuple[int, int, int, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT partition, from_offset, to_offset, application FROM checkpoint_moves"
            )
            return [(int(p), int(a), int(b), str(n)) for p, a, b, n in rows]
    finally:
        engine.dispose()


def wait_for_stable_group(members: dict[int, Member]) -> None:
    """Every member holds partitions and together they hold them all: no rebalance under way."""
    wait_for(
        "a stable group: every member holding partitions, all partitions held",
        lambda: (
            all(m.owned() for m in members.values())
            and sum(len(m.owned()) for m in members.values()) == PARTITIONS
        ),
        timeout_s=90,
        every_s=0.2,
    )


def test_rolling_restart_then_sigkill_loses_nothing_and_applies_nothing_twice(
    bootstrap: str, topic_env: dict[str, str], pg_url: str, tmp_path: Path
) -> None:
    """Three static members rolled one by one, then one SIGKILLed: every offset applied exactly once."""
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    ensure_topics(
        client_config(Settings(bootstrap_servers=bootstrap).kafka),
        [topic, dead_letter_topic(topic, "blog", ".dlq")],
        partitions=PARTITIONS,
    )
    install_audit(pg_url)
    env = {
        **os.environ,
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": pg_url,
        "PROJECTIONIST_BATCH_MAX_MESSAGES": "25",
    }
    stream = StreamPublisher(bootstrap, topic, blog_events(posts=6_000, seed=88))
    stream.start()
    incarnations = dict.fromkeys(range(MEMBERS), 0)
    members = {i: Member(f"pod-{i}", env, tmp_path, 0) for i in range(MEMBERS)}
    finished: list[dict[str, Any]] = []  # counters of every incarnation that exited cleanly
    drains: list[float] = []
    try:
        wait_for_stable_group(members)
        # The rolling update: SIGTERM one member, start its replacement, wait until it is back.
        for i in range(MEMBERS):
            progress = checkpoint_total(pg_url, "blog_v1")
            wait_for(
                "the group to consume more",
                lambda p=progress: checkpoint_total(pg_url, "blog_v1") > p + 100,
                timeout_s=30,
            )
            stats, took = members[i].terminate()
            finished.append(stats)
            drains.append(took)
            incarnations[i] += 1
            members[i] = Member(f"pod-{i}", env, tmp_path, incarnations[i])
            # Like the StatefulSet controller, which waits for the new pod to be Ready
            # (/readyz: partitions assigned) before it moves on to the next one.
            wait_for_stable_group(members)

        # A crash: SIGKILL, no drain, no commit of the batch in hand; the kubelet restarts
        # the container at once and the replacement resumes from the database checkpoint.
        # (On Tansu a SIGKILLed static member's partitions do not move to the survivors
        # within 30 s; Kafka moves them after session.timeout.ms.)
        victim = members[1]
        progress = checkpoint_total(pg_url, "blog_v1")
        wait_for(
            "the group to consume more",
            lambda: checkpoint_total(pg_url, "blog_v1") > progress + 100,
            timeout_s=30,
        )
        victim.kill()
        incarnations[1] += 1
        members[1] = Member("pod-1", env, tmp_path, incarnations[1])
        wait_for_stable_group(members)

        published = stream.finish()
        total = len(published)
        wait_for(
            "every published event checkpointed",
            lambda: checkpoint_total(pg_url, "blog_v1") == total,
            timeout_s=90,
        )
        for m in members.values():
            stats, took = m.terminate()
            finished.append(stats)
            drains.append(took)
    finally:
        if stream.is_alive():
            stream.finish()
        for m in members.values():
            if m.proc.poll() is None:
                m.kill()

    assert checkpoint_total(pg_url, "blog_v1") == total
    assert_blog_matches(pg_url, published)
    # Every offset was applied exactly once: per partition, the recorded checkpoint moves
    # chain from -1 to the end without gap or overlap ...
    moves = checkpoint_moves(pg_url)
    for partition in range(PARTITIONS):
        chain = sorted((a, b) for p, a, b, _ in moves if p == partition)
        assert chain, f"partition {partition} was never applied"
        assert chain[0][0] == -1, f"partition {partition} did not start at its beginning"
        for (_, end), (start, _) in itertools.pairwise(chain):
            assert start == end, f"partition {partition}: gap or overlap at offset {end}"
    assert sum(b - a for _, a, b, _ in moves) == total
    # ... and each incarnation's own counters agree with what the database says it committed;
    # the SIGKILLed one committed some batches too, and none of them twice.
    committed = Counter[str]()
    for _, a, b, name in moves:
        committed[name] += b - a
    for s in finished:
        assert committed[s["name"]] == s["consumed"] - s["skipped_offset"], (s, committed)
    assert committed[victim.name] > 0, (
        "the SIGKILLed member had committed nothing: kill came too early"
    )
    assert set(committed) <= {s["name"] for s in finished} | {victim.name}
    assert all(
        s["consumed"]
        == s["applied"]
        + s["skipped_offset"]
        + s["skipped_event_id"]
        + s["stale"]
        + s["ignored"]
        + s["dead_lettered"]
        for s in finished
    )
    assert max(drains) < GRACE_S, f"a drain took {max(drains):.1f}s, over the {GRACE_S}s grace"
    rebalances = [s["rebalances"] for s in finished]
    assert max(rebalances) <= MAX_REBALANCES_PER_RUN, rebalances
    assert sum(rebalances) <= MAX_REBALANCES_PER_RUN * MEMBERS, f"rebalances: {rebalances}"
    manifest = yaml.safe_load_all((ROOT / "deploy/k8s/base/consumer-blog.yaml").read_text())
    (sts,) = [d for d in manifest if d["kind"] == "StatefulSet"]
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > max(drains)
    print(
        f"\nrolling restart: {total} events, drains {[round(d, 2) for d in drains]} s, "
        f"rebalances {rebalances}, committed per incarnation {dict(committed)}"
    )
