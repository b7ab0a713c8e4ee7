"""Fuzzing the inbound path (issue 7, item 11): every message is decided or quarantined.

Structured mutations of real mail (:mod:`tests.fuzz.mutations`) go through the real
pipeline, :func:`ptm_sync.app.channels.replies.process`, on a seeded school in SQLite and
PostgreSQL,
and a handful through `mail deliver` (the command line's entry point, stdin to exit
code: :mod:`tests.support.cli`).  For every input:

* it is applied, recorded (bounce, auto-reply, read receipt), found a duplicate or stale,
  or quarantined with a short stable reason — never an exception (which `mail deliver`
  turns into exit 75, the MTA's "try again": a poison message), and never
  ``internal-error`` (a bug caught by the pipeline's safety net);
* it finishes within :data:`HANG_GUARD` seconds (a hang guard, not a timing assertion);
* its memory stays under :data:`MEMORY_CAP` (tracemalloc's peak while it is processed).

The short run (a fixed number of examples, derandomized) is part of `make test`; `make
fuzz` runs many more with random seeds (``PTM_FUZZ_EXAMPLES``) and saves the smallest
failing input it finds into ``tests/fuzz/corpus/`` (``PTM_FUZZ_SAVE=1``), which
:func:`test_the_saved_corpus_is_decided_or_quarantined` replays from then on.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import create_engine, text

from ptm_sync.adapters.store import Database
from ptm_sync.app.channels.replies import Outcome
from ptm_sync.app.channels.reply_decision import RECORDED_KINDS
from ptm_sync.core.booking.rows import APPLIED, DUPLICATE, QUARANTINED, STALE
from tests.fuzz.mutations import CORPUS, corpus_messages, fixture_messages, messages
from tests.support.booking import ADA, ALAN, PAT, SAM, SeededSchool, config_text
from tests.support.booking_address import booking_request
from tests.support.cli import ptm_sync
from tests.support.database import postgres_base_url, postgres_schema_url

#: Seconds one message may take before the test calls it a hang (machines are slow and
#: shared: a normal message takes milliseconds).
HANG_GUARD = 5.0
#: Bytes of Python memory one message may allocate at its peak.
MEMORY_CAP = 256 * 1024 * 1024
OUTCOMES = {APPLIED, DUPLICATE, QUARANTINED, STALE, *RECORDED_KINDS.values()}
REASON = re.compile(r"[a-z0-9][a-z0-9-]{1,40}")
#: Examples per run: the short run's by default; `make fuzz` sets more.
EXAMPLES = int(os.environ.get("PTM_FUZZ_EXAMPLES", "0")) or None
LONG_RUN = EXAMPLES is not None
SAVE = os.environ.get("PTM_FUZZ_SAVE") == "1"

_failing: list[bytes] = []


class Hang(Exception):
    """Raised in the test when one message took longer than :data:`HANG_GUARD`."""


@contextmanager
def guarded() -> Iterator[None]:
    """Hang guard and memory measure around processing one message."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Hang(f"one message took over {HANG_GUARD} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, HANG_GUARD)
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
        assert peak < MEMORY_CAP, f"one message took {peak // 2**20} MiB"
    finally:
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check(outcome: Outcome) -> None:
    assert outcome.outcome in OUTCOMES, outcome
    if outcome.outcome == QUARANTINED:
        assert REASON.fullmatch(outcome.reason), outcome
        assert outcome.reason != "internal-error", "the pipeline's safety net caught a bug"


def seeds_for(school: SeededSchool) -> list[bytes]:
    """The fixtures, and real answers to the school's own meetings (signed UIDs), so that
    mutations reach the booking engine as well as the reader."""
    made: list[bytes] = []
    meetings = [
        school.propose(ADA, PAT, slot=0),
        school.propose(ALAN, PAT, slot=2),
        school.propose(ADA, SAM, slot=4),
    ]
    for meeting, client in zip(
        meetings * 2, ["outlook", "gmail", "apple", "thunderbird", "proton", "outlook"], strict=True
    ):
        made.append(school.reply(meeting, "ACCEPTED", client=client, comment="Bis dann, Grüße"))
        made.append(school.reply(meeting, "DECLINED", client=client))
    made.append(school.counter(meetings[0], slot=6))
    made.append(school.counter(meetings[1], slot=7, client="gmail"))
    made.append(booking_request(school, SAM, ALAN, slot=5))
    made.append(booking_request(school, PAT, ADA, slot=5, client="outlook", name="Pät Jöhnson"))
    return made + fixture_messages()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_school(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SeededSchool, list[bytes]]]:
    """One seeded school for the whole run (messages change it as they would in life)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'ptm.db'}"
        admin = None
    else:
        base = postgres_base_url()
        schema = f"t_fuzz_{uuid.uuid4().hex[:10]}"
        admin = create_engine(base)
        with admin.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = postgres_schema_url(base, schema)
    db = Database(url)
    db.migrate()
    school = SeededSchool.create(db)
    try:
        yield school, seeds_for(school)
    finally:
        db.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            admin.dispose()


@pytest.fixture(scope="module", autouse=True)
def save_the_smallest_failure() -> Iterator[None]:
    """`make fuzz`: keep the last failing input (after shrinking, the smallest) as a test."""
    yield
    if SAVE and _failing:
        CORPUS.mkdir(exist_ok=True)
        raw = _failing[-1]
        (CORPUS / f"found-{hashlib.sha256(raw).hexdigest()[:16]}.eml").write_bytes(raw)


def _deliver(school: SeededSchool, raw: bytes) -> None:
    try:
        with guarded():
            outcome = school.deliver(raw)
        check(outcome)
    except BaseException:
        _failing.append(raw)
        raise


def _examples(short: int) -> int:
    return EXAMPLES or short


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_mutated_message_is_decided_or_quarantined(
    fuzz_school: tuple[SeededSchool, list[bytes]],
) -> None:
    school, seeds = fuzz_school
    short = 300 if school.db.engine.dialect.name == "sqlite" else 150

    @settings(
        max_examples=_examples(short),
        deadline=None,
        derandomize=not LONG_RUN,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(raw=messages(seeds))
    def run(raw: bytes) -> None:
        _deliver(school, raw)

    run()


@pytest.mark.parametrize(
    ("name", "raw"),
    corpus_messages()
    or [pytest.param("", b"", marks=pytest.mark.skip(reason="no saved inputs yet"))],
)
def test_the_saved_corpus_is_decided_or_quarantined(db: Database, name: str, raw: bytes) -> None:
    """Inputs `make fuzz` once failed on, replayed on both databases."""
    _deliver(SeededSchool.create(db), raw)


@pytest.mark.slow
def test_mail_deliver_exits_0_for_mutated_messages(tmp_path: Path, sqlite_url: str) -> None:
    """A handful through the command an MTA runs: exit 0 and one line, never 75."""
    db = Database(sqlite_url)
    db.migrate()
    school = SeededSchool.create(db)
    seeds = seeds_for(school)
    db.dispose()
    config = tmp_path / "ptm-sync.toml"
    config.write_text(config_text() + f'\n[database]\nurl = "{sqlite_url}"\n', encoding="utf-8")
    found: list[bytes] = []

    @settings(max_examples=6, deadline=None, derandomize=True, database=None)
    @given(raw=messages(seeds))
    def collect(raw: bytes) -> None:
        found.append(raw)

    collect()
    for raw in found:
        proc = ptm_sync(config, "mail", "deliver", stdin=raw, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        line = proc.stdout.strip()
        assert line.split(" ", 1)[0] in OUTCOMES and "internal-error" not in line, line
