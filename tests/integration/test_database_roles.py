"""Least-privilege PostgreSQL roles from deploy/sql/roles.sql, in a fresh test database.

The consumer runs with the DML-only role, the query API's read-only role cannot write,
and neither can change the schema. Role names get a unique suffix (roles are global to
the server) and are dropped afterwards.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from producers import blog_events
from projections import CheckpointStore, Topics, create_projection, make_engine
from projections.generations.versions import VersionStore
from projections.progress.dead_letter_log import DeadLetterLog
from tests.support import checkpoint_total, run_cli
from tests.support.broker import publish
from tests.support.oracle import assert_blog_matches

ROLES_SQL = Path(__file__).resolve().parents[2] / "deploy" / "sql" / "roles.sql"


@pytest.fixture
def roles(pg_url: str) -> Iterator[dict[str, str]]:
    """Run roles.sql with unique role names; yield a URL per role; drop the roles after."""
    suffix = uuid.uuid4().hex[:8]
    names = {r: f"{r}_{suffix}" for r in ("owner", "writer", "reader", "commands")}
    sql = ROLES_SQL.read_text()
    sql = (
        sql.replace("projectionist_writer", names["writer"])
        .replace("projectionist_reader", names["reader"])
        .replace("projectionist_commands", names["commands"])
    )
    sql = re.sub(r"\bprojectionist\b", names["owner"], sql)
    admin = sa.create_engine(pg_url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(sql)
        base = sa.engine.make_url(pg_url)
        yield {
            r: base.set(username=n).render_as_string(hide_password=False) for r, n in names.items()
        }
    finally:
        with admin.begin() as conn:
            # One role at a time: PostgreSQL 15 trips over shared default ACLs otherwise.
            for n in (names["writer"], names["reader"], names["commands"], names["owner"]):
                conn.exec_driver_sql(f"DROP OWNED BY {n} CASCADE")
            for n in names.values():
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {n}")
        admin.dispose()


def _create_tables(url: str, topic: str) -> None:
    """What the first start (or `rebuild`) does as the owner: create the tables."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            CheckpointStore().create(conn)
            DeadLetterLog().create(conn)
            projection = create_projection("blog", topics=Topics(blog=topic, orders="unused"))
            projection.metadata.create_all(conn)
            VersionStore().ensure(conn, projection)  # the generation pointer and its views
    finally:
        engine.dispose()


def _fails_for_privilege(url: str, statement: str, *, read_only: bool = False) -> str:
    engine = make_engine(url, read_only=read_only)
    try:
        with pytest.raises(DBAPIError) as err, engine.begin() as conn:
            conn.exec_driver_sql(statement)
        return str(err.value.orig)
    finally:
        engine.dispose()


def _fails_even_read_write(url: str, statement: str) -> str:
    """Switch the role's read-only default off for the session, then try ``statement``."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET default_transaction_read_only = off")
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar_one() == "off"
            with pytest.raises(DBAPIError) as err:
                conn.exec_driver_sql(statement)
        return str(err.value.orig)
    finally:
        engine.dispose()


def test_consumer_runs_with_the_dml_only_role(
    roles: dict[str, str], bootstrap: str, topic_env: dict[str, str]
) -> None:
    """With tables created by the owner, the consumer drains with the writer role; the writer cannot DDL."""
    topic = topic_env["PROJECTIONIST_BLOG_TOPIC"]
    _create_tables(roles["owner"], topic)
    events = blog_events(posts=150, seed=12)
    publish(bootstrap, topic, events)
    result = run_cli(
        ["consume", "blog", "--drain", "--timeout", "60", "--json"],
        env={**topic_env, "PROJECTIONIST_DATABASE_URL": roles["writer"]},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert checkpoint_total(roles["writer"], "blog_v1") == len(events)
    assert_blog_matches(roles["writer"], events)
    for ddl in (
        "CREATE TABLE intruder (id int)",
        "DROP TABLE posts_v1",
        "ALTER TABLE posts_v1 ADD COLUMN x int",
    ):
        message = _fails_for_privilege(roles["writer"], ddl)
        assert "permission denied" in message or "must be owner" in message, message


def test_read_only_role_cannot_write(roles: dict[str, str]) -> None:
    """The query API's role reads the read models and fails on every kind of write."""
    _create_tables(roles["owner"], "blog.posts")
    owner = make_engine(roles["owner"])
    with owner.begin() as conn:
        conn.exec_driver_sql("INSERT INTO tag_cloud_v1 (tag, posts_count) VALUES ('kafka', 3)")
    owner.dispose()
    reader = make_engine(roles["reader"], read_only=True)
    try:
        with reader.connect() as conn:
            assert (
                conn.exec_driver_sql(
                    "SELECT posts_count FROM tag_cloud_v1 WHERE tag = 'kafka'"
                ).scalar_one()
                == 3
            )
    finally:
        reader.dispose()
    writes = (
        "INSERT INTO tag_cloud_v1 (tag, posts_count) VALUES ('x', 1)",
        "UPDATE tag_cloud_v1 SET posts_count = 0",
        "DELETE FROM tag_cloud_v1",
        "UPDATE projection_checkpoints SET last_offset = 0",
        "CREATE TABLE intruder (id int)",
    )
    for statement in writes:
        # Not just the session flag: with read-only sessions switched off, the grants still refuse.
        _fails_for_privilege(roles["reader"], statement, read_only=True)
        message = _fails_even_read_write(roles["reader"], statement)
        assert "permission denied" in message, message
