"""Engines for the read-model database, and the edge where driver errors are translated.

PostgreSQL (psycopg 3) in production; SQLite as the embedded default. SQLite runs in
WAL mode with ``synchronous=NORMAL`` and takes the write lock at ``BEGIN IMMEDIATE``
so two consumer processes on one file queue up instead of failing a lock upgrade.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError, SQLAlchemyError

from schemas.errors import ConfigurationError, DatabaseUnavailable, RejectedByDatabase

__all__ = [
    "DDL_LOCK_WAIT_S",
    "database_errors",
    "ddl_lock",
    "is_postgres",
    "make_engine",
    "ping_engine",
    "redact_url",
]

# SQLSTATEs that mean "try the same transaction again": serialization failure,
# deadlock, lock timeout, and the connection-exception class (08xxx).
_RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03"}
# SQLSTATE classes of a value refused for good: data exception, integrity constraint.
_REJECTED_SQLSTATE_CLASSES = ("22", "23")


def make_engine(url: str, *, pool_size: int = 5, read_only: bool = False) -> Engine:
    """Create an engine for ``url`` (``sqlite:///file.db`` or ``postgresql://…``)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Neither the URL nor the parser's message: either may carry the password.
        raise ConfigurationError(
            "the database URL is not a URL: use sqlite:///path.db or "
            "postgresql://user:password@host:port/database"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ConfigurationError(
                f"database driver {parsed.get_driver_name()!r} is not supported: use sqlite:///"
            )
        folder = _sqlite_folder(parsed.database)
        if folder is not None and not folder.is_dir():
            # sqlite3 says "unable to open database file", which reads like an outage
            # and would be retried for good.
            raise ConfigurationError(f"the SQLite database's folder {folder} does not exist")
        return _sqlite_engine(parsed, read_only=read_only)
    if parsed.get_backend_name() != "postgresql":
        raise ConfigurationError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://"
        )
    if parsed.drivername != "postgresql+psycopg":
        raise ConfigurationError(
            f"database driver {parsed.get_driver_name()!r} is not installed: use postgresql:// "
            "(psycopg 3)"
        )
    _check_connection_options(parsed.query)
    # hide_parameters: an error must never print a batch's bound values (other people's
    # e-mail addresses) into a log.
    kwargs: dict[str, Any] = {
        "pool_size": pool_size,
        "pool_pre_ping": True,
        "hide_parameters": True,
    }
    if read_only:
        kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
    engine = create_engine(parsed, **kwargs)
    if read_only:
        event.listen(engine, "connect", _insist_read_only)
    return engine


def _insist_read_only(dbapi_conn: Any, _record: object) -> None:
    """The session must be read-only whatever the role's own defaults say (a role may
    ``ALTER ROLE … SET`` them itself) or a pooler did with the startup options."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute("SHOW default_transaction_read_only")
        if cur.fetchone()[0] != "on":
            cur.execute("SET default_transaction_read_only = on")
    finally:
        cur.close()
    dbapi_conn.commit()


def _sqlite_folder(database: str | None) -> Path | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).parent


def _check_connection_options(query: Any) -> None:
    """Refuse ``?option=…`` that libpq does not know before any connection is tried (the
    driver would refuse it at every connect, which looks like an outage)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import make_conninfo

    for name, value in query.items():
        try:
            make_conninfo("", **{name: value if isinstance(value, str) else value[-1]})
        except ProgrammingError:
            raise ConfigurationError(
                f"database URL option {name[:40]!r} is not a PostgreSQL connection option"
            ) from None


def _sqlite_engine(parsed: Any, *, read_only: bool) -> Engine:
    engine = create_engine(parsed, connect_args={"timeout": 60}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN; pysqlite's own implicit
        # transactions would start deferred and fail to upgrade under contention.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        if read_only:
            cur.execute("PRAGMA query_only=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


#: one wait for the DDL lock; the caller retries (and so sees SIGTERM and its deadline)
DDL_LOCK_WAIT_S = 2.0


def ddl_lock(conn: Connection) -> None:
    """Serialize DDL across processes (PostgreSQL; a no-op on SQLite), waiting at most
    :data:`DDL_LOCK_WAIT_S`.

    Replicas start together and ``CREATE TABLE IF NOT EXISTS`` still races in PostgreSQL's
    catalog, so DDL runs under a transaction-level advisory lock. A session that holds it
    (a stuck migration; a hostile role, before roles.sql revoked the lock functions) must
    not block a start for good: past the wait this raises :class:`DatabaseUnavailable`
    and the caller's retry loop backs off, honouring SIGTERM and ``--timeout``.
    """
    if conn.dialect.name != "postgresql":
        return
    previous = conn.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    wait = f"{round(DDL_LOCK_WAIT_S * 1000)}ms"
    conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": wait})
    try:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('projectionist.ddl'))"))
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == "55P03":
            raise DatabaseUnavailable(
                f"another session holds the DDL lock 'projectionist.ddl' (waited {wait})"
            ) from None
        raise
    conn.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": previous})


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Translate driver errors: :class:`DatabaseUnavailable` where they are retryable,
    :class:`RejectedByDatabase` (poison) where the database refuses a value for good."""
    try:
        yield
    except DBAPIError as exc:
        if _is_retryable(exc):
            raise DatabaseUnavailable(_describe(exc)) from exc
        if _is_rejected_value(exc):
            raise RejectedByDatabase(f"the database refuses a value: {_describe(exc)}") from exc
        raise
    except OverflowError as exc:  # sqlite3 cannot bind an int outside 64 bits
        raise RejectedByDatabase(f"the database refuses a value: {exc}") from None
    except SQLAlchemyError as exc:
        if "timeout" in type(exc).__name__.lower():  # pool exhausted while the DB is away
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
        raise


def _is_retryable(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in _RETRYABLE_SQLSTATES or sqlstate.startswith("08")
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig).lower()
        return "locked" in text or "busy" in text or "unable to open" in text
    # psycopg raises OperationalError without a SQLSTATE when it cannot connect at all.
    return type(orig).__name__ in ("OperationalError", "InterfaceError")


def _is_rejected_value(exc: DBAPIError) -> bool:
    if isinstance(exc, (DataError, IntegrityError)):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_REJECTED_SQLSTATE_CLASSES)


def _describe(exc: DBAPIError) -> str:
    first_line = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
    return f"{type(exc.orig).__name__}: {first_line}"


def ping_engine(engine: Engine) -> None:
    """Raise when the database does not answer (readiness probes).

    A raw DBAPI connection: no "begin" hook, so SQLite's BEGIN IMMEDIATE cannot make a
    probe wait for a writer's transaction. The pool's pre-ping still applies.
    """
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    finally:
        conn.close()
