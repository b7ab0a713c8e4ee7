"""A failed statement leaks no family's data, on SQLite and PostgreSQL (issue 7, item 4).

SQLAlchemy writes a statement's parameters into its exceptions and PostgreSQL quotes the
offending values in ``DETAIL: Key (email)=(…)``.  The engines hide parameters, and what the
command line prints and the daemon logs cuts a database error to its first line.
"""

from __future__ import annotations

import io
import logging
from contextlib import redirect_stderr

import pytest
from sqlalchemy import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from ptm_sync.adapters.store import Database
from ptm_sync.adapters.store.db import database_outage, safe_traceback
from ptm_sync.adapters.store.tables import Guardian
from ptm_sync.interfaces.cli.exits import FAILED, handle_error
from ptm_sync.interfaces.cli.output import LOG_FORMAT, MaskingFormatter
from tests.support.database import postgres_base_url
from tests.support.servers import free_port

NAME, EMAIL = "Pat Johnson-Privacy", "pat.privacy@example.net"


def duplicate_guardian(db: Database) -> IntegrityError:
    with db.write() as session:
        session.add(Guardian(email=EMAIL, name=NAME))
    with pytest.raises(IntegrityError) as raised, db.write() as session:
        session.add(Guardian(email=EMAIL, name=NAME + " again"))
    return raised.value


def test_a_failed_statement_carries_no_parameters(db: Database) -> None:
    error = duplicate_guardian(db)
    assert NAME not in str(error)  # hide_parameters: SQLAlchemy's "[parameters: …]" is gone
    assert database_outage(error) is None  # a constraint is no outage


def test_what_is_printed_and_logged_of_it_names_nobody(db: Database) -> None:
    error = duplicate_guardian(db)
    traceback_text = safe_traceback(error)
    assert "Traceback" in traceback_text and "duplicate_guardian" in traceback_text  # frames
    err = io.StringIO()
    with redirect_stderr(err):
        assert handle_error(error) == FAILED
    assert err.getvalue().startswith("ptm-sync: the database cannot be used: ")
    assert len(err.getvalue().splitlines()) == 1
    record = logging.LogRecord(
        "ptm_sync.interfaces.daemon", logging.ERROR, __file__, 1, "job failed", (), None
    )
    record.exc_info = (type(error), error, error.__traceback__)
    logged = MaskingFormatter(LOG_FORMAT).format(record)
    assert "Traceback" in logged
    for text in (traceback_text, err.getvalue(), logged):
        assert NAME not in text and EMAIL not in text, text


def test_a_missing_postgresql_database_is_a_mistake_and_a_refused_port_an_outage() -> None:
    base = make_url(postgres_base_url())
    missing = Database(base.set(database="ptm_no_such_database").render_as_string(False))
    refused = Database(base.set(port=free_port()).render_as_string(False))
    try:
        with pytest.raises(OperationalError) as mistake:
            missing.ping()
        with pytest.raises(OperationalError) as outage:
            refused.ping()
    finally:
        missing.dispose()
        refused.dispose()
    assert database_outage(mistake.value) is None  # fix the URL: not "try again later"
    line = database_outage(outage.value)
    assert line is not None and line.startswith("database postgresql+psycopg://"), line
