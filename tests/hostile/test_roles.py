"""The reader role as an attacker would use it, against the real PostgreSQL; the DDL lock.

deploy/sql/roles.sql runs in a fresh database with unique role names. As the query API's
reader: no large objects, no advisory locks, no command-side table, and a read-only
session even after it drops its own read-only default; the read models stay readable.
A session holding the DDL lock delays a consumer's start by bounded waits only: it
honours --timeout and SIGTERM.
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from producers import CommandTables
from projections import CheckpointStore, Topics, create_projection, make_engine
from tests.support import run_cli, start_cli, wait_for

ROLES_SQL = Path(__file__).resolve().parents[2] / "deploy" / "sql" / "roles.sql"
ROLES = ("owner", "writer", "reader", "commands")


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    from tests.support import fresh_postgres_database

    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def roles(database: str) -> Iterator[dict[str, str]]:
    """Command tables made before roles.sql (by the admin), roles.sql, read models made by
    the owner and command tables by the commands role after it; a URL per role."""
    suffix = uuid.uuid4().hex[:8]
    names = {r: f"{r}_{suffix}" for r in ROLES}
    sql = ROLES_SQL.read_text()
    for role in ("writer", "reader", "commands"):
        sql = sql.replace(f"projectionist_{role}", names[role])
    sql = re.sub(r"\bprojectionist\b", names["owner"], sql)
    admin = sa.create_engine(database)
    early = sa.MetaData()
    sa.Table("outbox", early, sa.Column("id", sa.Integer, primary_key=True))
    try:
        early.create_all(admin)  # the command side ran first, as the admin
        with admin.begin() as conn:
            conn.exec_driver_sql(sql)
        base = sa.engine.make_url(database)
        urls = {
            r: base.set(username=n).render_as_string(hide_password=False) for r, n in names.items()
        }
        owner = make_engine(urls["owner"])
        with owner.begin() as conn:
            CheckpointStore().create(conn)
            create_projection("blog", topics=Topics(blog="b", orders="o")).metadata.create_all(conn)
        owner.dispose()
        commands = make_engine(urls["commands"])
        later = CommandTables()
        with commands.begin() as conn:  # the command side's own tables, by its own role
            for table in later.metadata.sorted_tables:
                if table.name != "outbox":
                    table.create(conn, checkfirst=True)
        commands.dispose()
        yield urls
    finally:
        with admin.begin() as conn:
            for n in (names["writer"], names["reader"], names["commands"], names["owner"]):
                conn.exec_driver_sql(f"DROP OWNED BY {n} CASCADE")
            for n in names.values():
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {n}")
        admin.dispose()


def _as(url: str, statement: str, *, read_only: bool = False) -> object:
    engine = make_engine(url, read_only=read_only)
    try:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(statement)
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


REFUSED = [
    ("lo_from_bytea", "SELECT lo_from_bytea(0, 'x'::bytea)"),
    ("lo_creat", "SELECT lo_creat(-1)"),
    ("lo_create", "SELECT lo_create(0)"),
    ("pg_advisory_lock on the DDL key", "SELECT pg_advisory_lock(hashtext('projectionist.ddl'))"),
    ("pg_try_advisory_lock", "SELECT pg_try_advisory_lock(hashtext('projectionist.ddl'))"),
    ("pg_advisory_xact_lock", "SELECT pg_advisory_xact_lock(1)"),
    ("pg_advisory_lock shared, two keys", "SELECT pg_advisory_lock_shared(1, 2)"),
    ("the outbox made before roles.sql", "SELECT count(*) FROM outbox"),
    ("orders made by the commands role", "SELECT count(*) FROM cmd_orders"),
    ("posts made by the commands role", "SELECT count(*) FROM cmd_posts"),
    ("order lines", "SELECT count(*) FROM cmd_order_lines"),
    (
        "write a read model",
        "SET TRANSACTION READ WRITE; INSERT INTO tag_cloud_v1 (tag, posts_count) VALUES ('x', 1)",
    ),
]


@pytest.mark.parametrize(("label", "statement"), REFUSED, ids=[r[0] for r in REFUSED])
def test_the_reader_is_refused(roles: dict[str, str], label: str, statement: str) -> None:
    """Large objects, advisory locks, command-side tables and writes: permission denied for the reader."""
    with pytest.raises(DBAPIError) as err:
        _as(roles["reader"], statement)
    assert "permission denied" in str(err.value.orig), (label, str(err.value.orig))


def test_the_reader_still_reads_the_read_models(roles: dict[str, str]) -> None:
    """The lockdown leaves the reader what it is for: SELECT on the read models."""
    assert _as(roles["reader"], "SELECT count(*) FROM tag_cloud_v1", read_only=True) == 0


def test_dropping_its_own_read_only_default_gains_the_reader_nothing(roles: dict[str, str]) -> None:
    """After ALTER ROLE … SET default_transaction_read_only = off, the API's sessions are still read-only and writes still fail."""
    reader = sa.engine.make_url(roles["reader"]).username
    _as(
        roles["reader"],
        f"SET TRANSACTION READ WRITE; ALTER ROLE {reader} SET default_transaction_read_only = off",
    )
    try:
        assert _as(roles["reader"], "SHOW default_transaction_read_only") == "off"
        assert _as(roles["reader"], "SHOW transaction_read_only", read_only=True) == "on"
        with pytest.raises(DBAPIError, match=r"read-only transaction|permission denied"):
            _as(roles["reader"], "DELETE FROM tag_cloud_v1", read_only=True)
    finally:
        _as(
            roles["reader"],
            f"SET TRANSACTION READ WRITE; ALTER ROLE {reader} SET default_transaction_read_only = on",
        )


@pytest.fixture
def ddl_lock_held(pg_url: str) -> Iterator[str]:
    """Another session (the superuser: no role of roles.sql can) holds the DDL lock."""
    engine = sa.create_engine(pg_url)
    conn = engine.connect()
    conn.exec_driver_sql("SELECT pg_advisory_lock(hashtext('projectionist.ddl'))")
    conn.commit()
    try:
        yield pg_url
    finally:
        conn.close()
        engine.dispose()


def test_a_held_ddl_lock_gives_way_to_timeout(
    ddl_lock_held: str, topic_env: dict[str, str]
) -> None:
    """`consume blog --drain --timeout 4` with the DDL lock held elsewhere exits after ~4 s with one line, not 39 s."""
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": ddl_lock_held,
        "PROJECTIONIST_LOG_FORMAT": "console",
    }
    started = time.monotonic()
    result = run_cli(["consume", "blog", "--drain", "--timeout", "4"], env=env, timeout_s=60)
    took = time.monotonic() - started
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "DDL lock" in result.stderr, result.stderr[-2000:]
    assert took < 12, f"took {took:.1f}s"


def test_a_held_ddl_lock_gives_way_to_sigterm(
    ddl_lock_held: str, topic_env: dict[str, str]
) -> None:
    """SIGTERM while waiting for the DDL lock: the consumer exits within ~3 s, no traceback."""
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": ddl_lock_held,
        "PROJECTIONIST_LOG_FORMAT": "json",
    }
    proc = start_cli(["consume", "blog"], env=env)
    try:
        waiting: list[str] = []

        def retrying() -> bool:
            line = proc.stderr.readline() if proc.stderr else ""
            waiting.append(line)
            return "DDL lock" in line or proc.poll() is not None

        wait_for("the consumer to report the held lock", retrying, timeout_s=30)
        assert proc.poll() is None, "".join(waiting)[-2000:]
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _out, err = proc.communicate(timeout=20)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err, err[-3000:]
    assert took < 4, f"SIGTERM honoured only after {took:.1f}s"
