"""Databases for the stateful property tests (tests/property): one fresh store per example.

A *store maker* returns ``(url, cleanup)``: an SQLite file in a temporary folder, or a schema
of its own on the test PostgreSQL (with ``btree_gist`` for the exclusion constraint) that
``cleanup`` drops.  :func:`run_model` runs a Hypothesis state machine whose ``database`` is
such a maker; the machine's rules and invariants hold the assertions.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from sqlalchemy import create_engine, text

from tests.support.database import postgres_base_url, postgres_schema_url

#: Returns ``(database URL, cleanup)``.
StoreMaker = Callable[[], tuple[str, Callable[[], None]]]


def sqlite_store(prefix: str) -> StoreMaker:
    """A maker of SQLite files in fresh temporary folders named ``prefix…``."""

    def make() -> tuple[str, Callable[[], None]]:
        folder = tempfile.TemporaryDirectory(prefix=prefix)
        return f"sqlite:///{Path(folder.name) / 'ptm.db'}", folder.cleanup

    return make


def postgres_store(prefix: str) -> StoreMaker:
    """A maker of schemas ``<prefix><random>`` on the test PostgreSQL, each dropped by its
    cleanup (skips, or fails in CI, without PostgreSQL)."""

    def make() -> tuple[str, Callable[[], None]]:
        base = postgres_base_url()
        schema = f"{prefix}{uuid.uuid4().hex[:12]}"
        admin = create_engine(base)
        with admin.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))

        def drop() -> None:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()

        return postgres_schema_url(base, schema), drop

    return make


def run_model(
    machine: type[RuleBasedStateMachine], store: StoreMaker, examples: int, steps: int
) -> None:
    """Run state machine ``machine`` with ``store`` as its ``database`` maker."""
    bound = type("Model", (machine,), {"database": staticmethod(store)})
    run_state_machine_as_test(
        bound,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
