"""Shared fixtures: a real database per test (SQLite, or PostgreSQL when asked)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tailormail.clock import ManualClock
from tailormail.runtime import Runtime, open_runtime
from tailormail.workspace import init_workspace

PG_URL = os.environ.get("TAILORMAIL_TEST_DATABASE_URL", "")
IN_CI = bool(os.environ.get("CI") or os.environ.get("TAILORMAIL_CI"))
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
"""The moment every test's clock starts at (a Monday, noon UTC)."""

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def _pg_available(url: str) -> bool:
    try:
        engine = create_engine(_sa_url(url))
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def _sa_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


def postgres_url_or_skip() -> str:
    """The PostgreSQL test URL; skip (never in CI) when it is absent or down."""
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI must run PostgreSQL tests: set TAILORMAIL_TEST_DATABASE_URL")
        pytest.skip("PostgreSQL not configured: set TAILORMAIL_TEST_DATABASE_URL")
    if not _pg_available(PG_URL):
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_URL} is not answering")
        pytest.skip(f"PostgreSQL at {PG_URL} is not answering")
    return PG_URL


def fresh_pg_schema(base_url: str) -> tuple[str, str]:
    """Create an empty schema; return (url whose search_path is it, schema name)."""
    name = "t_" + uuid.uuid4().hex[:12]
    engine = create_engine(_sa_url(base_url))
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    engine.dispose()
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{name}", name


def drop_pg_schema(base_url: str, name: str) -> None:
    """Drop a schema made by fresh_pg_schema."""
    engine = create_engine(_sa_url(base_url))
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh empty database: SQLite in tmp_path, or a new PostgreSQL schema."""
    if PG_URL:
        url, name = fresh_pg_schema(postgres_url_or_skip())
        yield url
        drop_pg_schema(PG_URL, name)
    else:
        yield f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def clock() -> ManualClock:
    """A clock that starts at T0 and moves only when a test moves it."""
    return ManualClock(T0)


@pytest.fixture
def workspace(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialised workspace whose database is the test database."""
    monkeypatch.setenv("TAILORMAIL_DATABASE_URL", database_url)
    root = tmp_path / "ws"
    init_workspace(root)
    return root


@pytest.fixture
def runtime(workspace: Path, clock: ManualClock) -> Iterator[Runtime]:
    """The opened test workspace with the manual clock."""
    rt = open_runtime(workspace, clock=clock)
    yield rt
    rt.close()
