"""The Store: the one object that opens database connections."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

from tailormail.errors import ConfigError, StoreError
from tailormail.store import sqlite_memstats
from tailormail.store.checkpoint import Checkpointer, configure_writer

_WRITE = "tailormail_write"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs; leave others as they are."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if not url.startswith(("sqlite", "postgresql+")):
        raise ConfigError(
            f"unsupported database URL {url.split(':', 1)[0]}://...",
            hint="use sqlite:///PATH or postgresql://USER@HOST/DB",
        )
    return url


_LONG_NUMBER = re.compile(r"\d{19}")


def read_json(text: str) -> Any:
    """JSON columns as SQLite returns them, decoded by orjson (several times faster than ``json``).

    orjson reads integers beyond 64 bits as floats and refuses ``NaN``, which older
    rows may hold: those texts go to the standard library, so every value reads
    back exactly as it was written.
    """
    if _LONG_NUMBER.search(text) is None:
        try:
            return _orjson_loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


_orjson_loads = orjson.loads


def make_engine(url: str, **options: Any) -> Engine:
    """An Engine for ``url`` with the settings tailormail relies on."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        sqlite_memstats.disable()  # before this engine's first connection; see the module
        bind_none_directly()
        # The default pool keeps connections (and their PRAGMAs) across requests.
        engine = create_engine(url, json_deserializer=read_json, **options)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, **options)
    _configure_postgresql(engine)
    return engine


def bind_none_directly() -> None:
    """Let the sqlite3 module bind None as NULL through its adapter registry (process-wide, idempotent).

    The module adapts every parameter that is not exactly int, float, str or
    bytearray.  For None, with nothing registered, that meant two failed
    attribute lookups (``__adapt__`` on the protocol type, which builds and
    drops an AttributeError, then ``__conform__`` on None): 0.5 us a None,
    and an ingested batch binds thousands (anonymous id, context, revenue of
    every event; journey and segment rows).  A registered adapter is found in
    one dict lookup; returning None binds NULL exactly as before.
    """
    sqlite3.register_adapter(type(None), _none)


def _none(value: None) -> None:
    return value


def _configure_postgresql(engine: Engine) -> None:
    """Plan every statement for its own parameters (``plan_cache_mode = force_custom_plan``, PostgreSQL 12+).

    psycopg prepares a statement on its fifth run, and PostgreSQL then keeps a
    generic plan made for no particular parameters, from the table sizes of
    that moment.  In a young workspace those were nearly empty tables, so the
    lookups of the ingest path (``message_id = ANY(:ids)``) kept scanning
    whole tables as they grew, until an ANALYZE: HTTP ingest from an empty
    database did 1,400 events/s with that plan, 2,500 with its own plan each
    time; on analyzed tables the two were alike.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        if dbapi_conn.info.server_version < 120000:
            return
        autocommit, dbapi_conn.autocommit = dbapi_conn.autocommit, True  # a session setting, outside any transaction
        try:
            dbapi_conn.execute("SET plan_cache_mode = force_custom_plan")
        finally:
            dbapi_conn.autocommit = autocommit


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, a busy timeout, and real transactions.

    pysqlite's own transaction handling begins lazily and never for reads; we
    take it over (SQLAlchemy's documented recipe) so that a write transaction
    takes the write lock up front with BEGIN IMMEDIATE and cannot deadlock on
    a read-to-write upgrade when the API and the worker write at once.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        if sqlite_file(engine) is not None:
            configure_writer(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get(_WRITE) else "BEGIN")


def sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine; None for PostgreSQL and in-memory databases."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


# SQLite has one writer at a time.  Threads of this process queue for an engine here and
# wake the moment the writer before them commits; left to SQLite, a waiting writer polls
# with sleeps of up to 100 ms (its busy handler), and under concurrent API requests most
# of the time went to those sleeps.  Other processes (a separate worker) still meet
# SQLite's busy timeout.
@dataclass(frozen=True)
class _Writers:
    """What writers of one Store's SQLite engine share in this process."""

    queue: threading.RLock
    """Held for a whole write transaction (see the comment above)."""
    checkpointer: Checkpointer | None
    """Woken after each commit (None: an in-memory database)."""


_WRITERS: weakref.WeakKeyDictionary[Engine, _Writers] = weakref.WeakKeyDictionary()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction on ``engine`` (BEGIN IMMEDIATE on SQLite): commits on success, rolls back on error.

    Writers of a Store's SQLite engine queue in this process first, and wake
    its checkpointer after they commit, so a background thread holding only an
    engine (a connection's ``engine``) writes like ``Store.begin`` does.
    """
    writers = _WRITERS.get(engine)
    with database_errors(engine), writers.queue if writers else nullcontext(), engine.connect() as conn:
        conn.info[_WRITE] = True
        try:
            with conn.begin():
                yield conn
        finally:
            conn.info.pop(_WRITE, None)
    if writers is not None and writers.checkpointer is not None:
        writers.checkpointer.nudge()  # committed: the log is folded in off this thread


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turn the driver's errors (through SQLAlchemy or straight from it) into a StoreError that says what to do.

    The hot paths run driver SQL and driver cursors, whose errors SQLAlchemy
    never sees; every transaction passes through here, so a wrong database
    URL, a locked or full database reads the same on every path: one line
    naming the database (password hidden) and a hint, in the CLI and the API.
    """
    try:
        yield
    except _driver_errors() as error:
        raise store_error(error, engine.url.render_as_string(hide_password=True)) from error


def store_error(error: BaseException, database: str) -> StoreError:
    """The StoreError for a driver error on ``database``, with a hint where the cause is a known one."""
    cause = getattr(error, "orig", None) if isinstance(error, DBAPIError) else error
    text = (str(cause or error).strip().splitlines() or [type(error).__name__])[0]
    hint = next((h for needle, h in STORE_HINTS if needle in text.lower()), None)
    return StoreError(f"database {database}: {text}", hint=hint)


STORE_HINTS: list[tuple[str, str]] = [
    ("no such table", "the database is not a tailormail workspace, or older than this version's migrations"),
    ('relation "', "the database is not a tailormail workspace, or older than this version's migrations"),
    ("does not exist", "check the database name in TAILORMAIL_DATABASE_URL, or create the database"),
    ("database is locked", "another process kept the database busy for too long; try again, or stop that writer"),
    ("unable to open database", "check --workspace (or TAILORMAIL_WORKSPACE): the folder must exist and be writable"),
    ("readonly", "the database file or its folder is read-only: give this user write access"),
    ("disk", "the disk is full or failing: free space, then try again"),
    ("connection", "check TAILORMAIL_DATABASE_URL, and that the database server is running and reachable"),
]
"""(lower-case text in the driver's message, what to do), the first match wins."""


def _driver_errors() -> tuple[type[BaseException], ...]:
    psycopg = sys.modules.get("psycopg")  # loaded only when a PostgreSQL URL was used
    return (DBAPIError, sqlite3.Error) if psycopg is None else (DBAPIError, sqlite3.Error, psycopg.Error)


class Store:
    """Connections to the workspace database; every query goes through here."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, **options)
        path = sqlite_file(self.engine)
        self.checkpointer = Checkpointer(path) if path is not None else None
        if self.engine.dialect.name == "sqlite":
            _WRITERS[self.engine] = _Writers(threading.RLock(), self.checkpointer)  # see write_transaction
        if self.checkpointer is not None:
            weakref.finalize(self, self.checkpointer.stop)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction: commits on success, rolls back on error."""
        with write_transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on both databases)."""
        with database_errors(self.engine), self.engine.connect() as conn, conn.begin():
            yield conn

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied."""
        from tailormail.store.migrations import migrate

        return [m.name for m in migrate(self.begin, self.dialect)]

    def close(self) -> None:
        """Stop the checkpoint thread and release every pooled connection."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
