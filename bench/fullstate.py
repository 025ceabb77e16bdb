"""The ``fullstate`` workload of issue 15: a shape written outside this repository.

20,000 posts, 200,000 ``blog.BlogPostUpdated`` **v1** events (single-object encoding,
the publisher's headers, key = post id, 4 partitions, no deletes). The first 20,000
events create every post once, in shuffled order; each later event picks a post
uniformly and carries its full state at the next version (1, 2, 3, ... in produce
order). Every state has 1-5 distinct tags drawn uniformly from a 200-tag vocabulary (so
most edits change the tags), a 20-60 character title and a 120-character description:
values of ~270 bytes. Nothing here comes from ``producers.sample`` (the repository's own
generator), so the projection is measured on bytes it was not tuned for.

:class:`Oracle` is the expected end state, computed while generating: the newest state
of each post and the tag cloud over them, compared with what every contender wrote.
"""

from __future__ import annotations

import random
import string
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.workload import PARTITIONS, Published, _publisher, create_topic
from schemas import AvroSerde, SchemaCatalog
from schemas.events import BLOG_POST_UPDATED

__all__ = ["Oracle", "fullstate_events", "publish_fullstate"]

TAGS = [f"tag-{i:03d}" for i in range(200)]
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Oracle:
    """The end state the workload implies: (version, title, tags) per post; the tag cloud."""

    posts: dict[str, tuple[int, str, tuple[str, ...]]] = field(default_factory=dict)

    def tag_cloud(self) -> dict[str, int]:
        return dict(Counter(t for _, _, tags in self.posts.values() for t in tags))


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.ascii_letters + "     ", k=n))


def fullstate_events(
    *, posts: int = 20_000, events: int = 200_000, seed: int = 15, oracle: Oracle | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(post_id, record)`` in produce order; ``oracle`` (if given) ends as the newest states."""
    rng = random.Random(seed)
    ids = [f"p{n:06d}" for n in range(posts)]
    creates = ids[:]
    rng.shuffle(creates)
    version: dict[str, int] = {}
    created: dict[str, datetime] = {}
    for i in range(events):
        post_id = creates[i] if i < posts else ids[rng.randrange(posts)]
        v = version[post_id] = version.get(post_id, 0) + 1
        when = _EPOCH + timedelta(seconds=i)
        created.setdefault(post_id, when)
        title = _text(rng, rng.randint(20, 60))
        tags = rng.sample(TAGS, rng.randint(1, 5))
        record = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "post_id": post_id,
            "title": title,
            "description": _text(rng, 120),
            "tags": tags,
            "author": f"author-{rng.randrange(500):03d}",
            "creation_date": created[post_id],
            "updated_at": when,
            "version": v,
        }
        if oracle is not None:
            oracle.posts[post_id] = (v, title, tuple(tags))
        yield post_id, record


def publish_fullstate(
    bootstrap: str, topic: str, *, posts: int = 20_000, events: int = 200_000
) -> tuple[Published, Oracle]:
    """Publish the workload (v1 bytes, the publisher's headers); wait for every ack."""
    create_topic(bootstrap, topic)
    serde = AvroSerde(SchemaCatalog.load())
    publisher = _publisher(bootstrap)
    oracle = Oracle()
    started = time.monotonic()
    count = 0
    for post_id, record in fullstate_events(posts=posts, events=events, oracle=oracle):
        value = serde.encode(BLOG_POST_UPDATED, record, version=1)
        publisher.publish_raw(
            topic, value, key=post_id, event_id=record["event_id"], event_type=BLOG_POST_UPDATED
        )
        count += 1
        if count % 10_000 == 0:
            publisher.poll(0)
    publisher.flush(120)
    assert PARTITIONS == 4
    return Published(topic, count, len(oracle.posts), time.monotonic() - started), oracle
