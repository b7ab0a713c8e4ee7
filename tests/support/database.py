"""Database fixtures: SQLite files and PostgreSQL: ``PTM_TEST_POSTGRES_URL`` (CI sets it), or
else the machine's own PostgreSQL when it answers at :data:`LOCAL_POSTGRES` (DESIGN §9: a
newcomer's ``make test`` runs the PostgreSQL tests too).  ``PTM_TEST_POSTGRES_URL=off``
skips them.

Each PostgreSQL test gets its own schema (dropped afterwards), so tests never see each
other's rows and need no superuser beyond what the migration's btree_gist extension needs.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from ptm_sync.adapters.store import Database
from tests.support.servers import require

#: Where DESIGN §9 expects a developer's PostgreSQL: trust authentication, database ``test``.
LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@functools.cache
def found_postgres() -> str | None:
    """The PostgreSQL the tests use: ``PTM_TEST_POSTGRES_URL``, else the local one when it
    answers within a second; None when there is none (or the variable says ``off``)."""
    url = os.environ.get("PTM_TEST_POSTGRES_URL", "")
    if url:
        return None if url == "off" else url
    engine = create_engine(LOCAL_POSTGRES, connect_args={"connect_timeout": 1})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means: no PostgreSQL here
        return None
    finally:
        engine.dispose()
    return LOCAL_POSTGRES


def postgres_base_url() -> str:
    url = found_postgres()
    if url is None:
        require(
            f"no PostgreSQL: PTM_TEST_POSTGRES_URL is not set and none answers at "
            f"{LOCAL_POSTGRES} (CI sets it)"
        )
    return url


def postgres_schema_url(base: str, schema: str) -> str:
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}options={quote(f'-csearch_path={schema}')}"


#: Ends the server sessions that hold a lock on a relation of the schema.
_END_HOLDERS = """
SELECT pg_terminate_backend(l.pid)
FROM pg_locks l
JOIN pg_class c ON c.oid = l.relation
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND l.pid <> pg_backend_pid()
"""


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to an empty PostgreSQL schema of its own."""
    base = postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL here
        admin.dispose()
        require(f"PostgreSQL at {base} does not answer: {exc}")
    try:
        yield postgres_schema_url(base, schema)
    finally:
        with admin.begin() as conn:
            # A connection a fault test cut may still hold locks in the schema on the
            # server's side: end it, so that the DROP never waits for it.
            conn.execute(text(_END_HOLDERS), {"schema": schema})
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ptm.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Both backends: the same test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()
