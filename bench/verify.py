"""Every contender's table against the workload's oracle: a fast wrong answer is no result."""

from __future__ import annotations

import json

import sqlalchemy as sa

from bench.fullstate import Oracle
from projections.generations.versions import active_generation

__all__ = ["check_peer", "check_projectionist"]


def _compare(rows: list[tuple[str, int, str, str]], oracle: Oracle) -> list[str]:
    got = {post_id: (int(v), title, tuple(json.loads(tags))) for post_id, v, title, tags in rows}
    problems = []
    if got.keys() != oracle.posts.keys():
        problems.append(f"{len(got)} posts, expected {len(oracle.posts)}")
    wrong = [p for p, want in oracle.posts.items() if p in got and got[p] != want]
    if wrong:
        problems.append(f"{len(wrong)} posts differ from the oracle (e.g. {wrong[0]})")
    return problems


def check_peer(url: str, table: str, oracle: Oracle) -> list[str]:
    """Problems with a peer's ``table`` (post_id, version, title, tags as JSON); [] if none."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(f"SELECT post_id, version, title, tags FROM {table}")
            return _compare([tuple(r) for r in rows], oracle)  # type: ignore[misc]
    finally:
        engine.dispose()


def check_projectionist(url: str, oracle: Oracle) -> list[str]:
    """Problems with the active generation of ``blog``: posts and the tag cloud."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            gen = active_generation(conn, "blog", 1)
            rows = conn.exec_driver_sql(
                f"SELECT post_id, version, title, tags FROM posts_v{gen} WHERE deleted_at IS NULL"
            )
            problems = _compare([tuple(r) for r in rows], oracle)  # type: ignore[misc]
            cloud = dict(
                conn.exec_driver_sql(f"SELECT tag, posts_count FROM tag_cloud_v{gen}").all()
            )
            if cloud != oracle.tag_cloud():
                problems.append("tag cloud differs from the oracle")
            return problems
    finally:
        engine.dispose()
