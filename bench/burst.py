"""Burst benchmark: requests and replies racing for popular slots, decided first come first served.

A school of 30 teachers with 100 families each opens booking, and 3,000 messages arrive in
a burst, ten for each of 300 popular slots (ten per teacher): half are "Propose new time"
answers to the time the family was offered (Outlook's COUNTER and Gmail's reply carrying
the time), half are invitations of the teacher's booking address (Gmail and Outlook
REQUESTs).  For each popular slot the first message decided wins and the nine others are
declined with free alternatives.  The messages arrive interleaved (seeded shuffle), on a
SQLite file as the service opens it (WAL, ``synchronous=FULL``), in process (DESIGN §9):

* ``burst_over_floor``: ``ptm_sync.app.channels.replies.process`` per message, one durable
  commit each — what ``ptm-sync mail deliver`` runs.  Target >= 0.5.
* ``burst_batched_over_floor``: ``ptm_sync.app.channels.replies.process_batch`` over batches
  of 50, one durable commit per batch, each message still all or nothing — the IMAP path.
  Target >= 1.0.
* ``burst_pg_over_floor`` and ``burst_pg_batched_over_floor``: the same two runs on
  PostgreSQL (each run on a copy of the school made with ``CREATE DATABASE … TEMPLATE``),
  against the floor with its commit on PostgreSQL.  Targets as on SQLite.
* ``double_bookings``: active meetings of one teacher that overlap, after every run.  Target 0.

The floor (DESIGN §9): the same messages parsed with ``email`` and ``icalendar`` plus one
durable single-row commit each, in this process, on the same database.  Ratios are floor
time over ours.

PostgreSQL is the server at ``PTM_BENCH_POSTGRES_URL``, else ``PTM_TEST_POSTGRES_URL``, else
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; the role needs CREATEDB (the bench
makes and drops the databases ``ptm_bench_burst*``).  When it cannot, the PostgreSQL
figures are left out and the reason printed.

Run from the repository root: ``.venv/bin/python bench/burst.py [--quick]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import psycopg
from _common import Figure, run, say
from _school import NOW, config_text
from inbound import floor, parsed_uid
from sqlalchemy import create_engine, func, make_url, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Calendar, Database, Guardian, Meeting, Outbox, Student, Teacher
from ptm_sync.adapters.video.providers import provider_for
from ptm_sync.app.booking import load
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.channels.replies import Outcome, process, process_batch
from ptm_sync.app.periods import ensure_periods
from ptm_sync.app.roster_import import import_roster
from ptm_sync.config import settings as config_mod
from ptm_sync.core.booking.events import Offer
from ptm_sync.core.booking.notices import email_of
from ptm_sync.core.model import ACTIVE_STATES
from ptm_sync.core.roster.tables import SourceFile
from ptm_sync.core.slots import grid
from ptm_sync.demo import organizers, parents

#: Four evenings of 15-minute slots: 64 per teacher, ten of them popular.
WINDOWS = (
    "2027-04-12T15:00/19:00",
    "2027-04-13T15:00/19:00",
    "2027-04-14T15:00/19:00",
    "2027-04-15T15:00/19:00",
)
POPULAR_PER_TEACHER = 10
FAMILIES_PER_SLOT = 10
BATCH = 50
SEED = 20270412
ARRIVED = NOW + timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class Burst:
    folder: Path
    snapshot: Path  # the SQLite file, or the PostgreSQL template database's URL
    config: config_mod.Config
    messages: list[bytes]
    popular: int
    postgres: str = ""  # the server's URL (any database) when the school is on PostgreSQL


def _school_text(database_url: str = "sqlite:///ptm.db") -> str:
    text = config_text(None)
    old = text[text.index("windows = [") :].split("\n", 1)[0]
    text = text.replace(old, "windows = [" + ", ".join(f'"{w}"' for w in WINDOWS) + "]")
    return text.replace('url = "sqlite:///ptm.db"', f"url = {json.dumps(database_url)}")


def _roster(teachers: int, families: int) -> tuple[SourceFile, SourceFile]:
    rows_t = ["email,name,account,calendar,room"]
    rows_t += [
        f"t{n:03d}@lincoln.example.org,Teacher {n:03d},district,/cal/t{n:03d}/,{100 + n}"
        for n in range(teachers)
    ]
    rows_f = ["student_id,student_name,guardian_email,guardian_name,teacher_email"]
    for n in range(teachers):
        for k in range(families):
            rows_f.append(
                f"S{n:03d}{k:03d},Kid {n:03d}{k:03d},p{n:03d}{k:03d}@families.example.net,"
                f"Parent {n:03d}{k:03d},t{n:03d}@lincoln.example.org"
            )
    as_bytes = lambda rows: ("\n".join(rows) + "\n").encode()  # noqa: E731
    return SourceFile("teachers.csv", as_bytes(rows_t)), SourceFile(
        "families.csv", as_bytes(rows_f)
    )


def burst(folder: Path, teachers: int, seed: int = SEED, database_url: str = "") -> Burst:
    """The school, the offers of the counter-proposing families, and the burst's messages
    (on ``database_url``, a SQLite file in ``folder`` by default)."""
    path = folder / "ptm-sync.toml"
    path.write_text(_school_text(database_url) if database_url else _school_text())
    config = config_mod.parse(path.read_text(), path)
    db = Database(config.database.url)
    db.migrate()
    families = POPULAR_PER_TEACHER * FAMILIES_PER_SLOT
    import_roster(db, _roster(teachers, families), [a.id for a in config.accounts])
    rng = random.Random(seed)
    applier = Applier(config, now=NOW, video=provider_for(config.video))
    messages: list[bytes] = []
    with db.write() as session:
        ensure_periods(session, config)
        for teacher in session.scalars(select(Teacher)):
            session.add(Calendar(teacher_id=teacher.id, account=teacher.account,
                                 url=teacher.calendar, synced_at=NOW))  # fmt: skip
    for n in range(teachers):
        with db.write() as session:
            messages += _teacher_burst(session, applier, config, n, rng, len(messages))
    db.dispose()  # checkpoints the WAL: the file alone is the snapshot
    rng.shuffle(messages)
    if database_url:
        return Burst(folder, Path(), config, messages, teachers * POPULAR_PER_TEACHER)
    snapshot = folder / "snapshot.db"
    shutil.copyfile(folder / "ptm.db", snapshot)
    return Burst(folder, snapshot, config, messages, teachers * POPULAR_PER_TEACHER)


def _teacher_burst(
    session: Session,
    applier: Applier,
    config: config_mod.Config,
    n: int,
    rng: random.Random,
    sent: int,
) -> list[bytes]:
    """Teacher ``n``'s hundred families: ten per popular slot, half proposing it instead of
    the quiet time they were offered, half inviting the booking address to it."""
    period = config.periods[0]
    cells = grid(period.windows, period.slot_minutes, period.buffer_minutes)
    teacher = session.scalars(select(Teacher).where(Teacher.key == f"t{n:03d}")).one()
    popular = rng.sample(range(len(cells)), POPULAR_PER_TEACHER)
    quiet = iter(i for i in range(len(cells)) if i not in popular)
    messages: list[bytes] = []
    for k in range(POPULAR_PER_TEACHER * FAMILIES_PER_SLOT):
        wanted = cells[popular[k % POPULAR_PER_TEACHER]]
        family = f"{n:03d}{k:03d}"
        at = ARRIVED + timedelta(seconds=sent + len(messages))
        if k % 2 == 0:
            offered = cells[next(quiet)]
            guardian = session.scalars(
                select(Guardian).where(Guardian.email == f"p{family}@families.example.net")
            ).one()
            student = session.scalars(
                select(Student).where(Student.student_id == f"S{family}")
            ).one()
            draft = load.draft(
                config, period, teacher, [guardian], [student], offered,
                fresh=applier.fresh(session, period.id),
            )  # fmt: skip
            made = applier.handle(session, draft, Offer(slot=offered))
            assert made.after is not None and made.after.id is not None
            invitation = _invitation(session, made.after.id)
            propose = parents.gmail_propose_new_time if k % 4 == 0 else parents.propose_new_time
            messages.append(propose(invitation, wanted.start, wanted.end, tz=config.tz, now=at))
        else:
            booking = organizers.Booking(
                parent=f"p{family}@families.example.net",
                parent_name=f"Parent {family}",
                booking_address=f"book+t{n:03d}@lincoln.example.org",
                start=wanted.start,
                end=wanted.end,
            )
            client = "gmail" if k % 4 == 1 else "outlook"
            messages.append(organizers.request(client, booking, tz=config.tz, now=at))
    return messages


def _invitation(session: Session, meeting_id: int) -> bytes:
    """The invitation the offer sent, as the parent's mail client received it."""
    row = session.scalars(
        select(Outbox).where(Outbox.meeting_id == meeting_id, Outbox.kind == "email")
    ).first()
    assert row is not None
    return email_of(json.loads(row.payload))


def _fresh_db(work: Burst) -> Database:
    if work.postgres:
        _copy_database(work.postgres, TEMPLATE, RUN)
        db = Database(work.config.database.url)
        db.ping()
        return db
    target = work.folder / "ptm.db"
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(work.snapshot, target)
    db = Database(work.config.database.url)
    db.ping()  # the connection is opened before the clock starts, as in a running daemon
    return db


# --- PostgreSQL ---------------------------------------------------------------------------

TEMPLATE = "ptm_bench_burst_school"
RUN = "ptm_bench_burst_run"
FLOOR = "ptm_bench_burst_floor"


def postgres_server() -> str:
    """The PostgreSQL server the bench may use (see the module's docstring)."""
    return (
        os.environ.get("PTM_BENCH_POSTGRES_URL")
        or os.environ.get("PTM_TEST_POSTGRES_URL")
        or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )


def _on(server: str, database: str) -> str:
    return make_url(server).set(database=database).render_as_string(hide_password=False)


def _admin(server: str, statements: list[str]) -> None:
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def _copy_database(server: str, template: str, target: str) -> None:
    _admin(
        server,
        [f"DROP DATABASE IF EXISTS {target}", f"CREATE DATABASE {target} TEMPLATE {template}"],
    )


def _drop_databases(server: str) -> None:
    _admin(server, [f"DROP DATABASE IF EXISTS {name}" for name in (RUN, FLOOR, TEMPLATE)])


def postgres_floor(messages: list[bytes], server: str) -> float:
    """The floor with its durable single-row commits on PostgreSQL (a database of its own)."""
    _admin(server, [f"DROP DATABASE IF EXISTS {FLOOR}", f"CREATE DATABASE {FLOOR}"])
    url = make_url(_on(server, FLOOR)).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as connection:
        connection.execute("CREATE TABLE t (uid TEXT)")
        connection.commit()
        began = time.perf_counter()
        for raw in messages:
            connection.execute("INSERT INTO t VALUES (%s)", (parsed_uid(raw),))
            connection.commit()
        elapsed = time.perf_counter() - began
    return elapsed


def _decide(
    work: Burst, run_all: Callable[[Database], list[Outcome]]
) -> tuple[float, Counter[str], int]:
    db = _fresh_db(work)
    began = time.perf_counter()
    outcomes = run_all(db)
    elapsed = time.perf_counter() - began
    kinds = Counter(o.reason.split(":")[0] for o in outcomes)
    doubles = double_bookings(db)
    won = kinds["counter accepted"] + kinds["booked"]
    db.dispose()
    assert len(outcomes) == len(work.messages), len(outcomes)
    assert won == work.popular, kinds  # every popular slot went to exactly one family
    return elapsed, kinds, doubles


def double_bookings(db: Database) -> int:
    """Pairs of active meetings of one teacher whose times overlap."""
    with db.read() as session:
        rows = session.execute(
            select(Meeting.teacher_id, Meeting.start, Meeting.end)
            .where(Meeting.state.in_([s.value for s in ACTIVE_STATES]))
            .order_by(Meeting.teacher_id, Meeting.start)
        ).all()
        count = session.scalar(select(func.count()).select_from(Meeting))
    assert count
    clashes = 0
    for (t1, _, e1), (t2, s2, _) in itertools.pairwise(rows):
        if t1 == t2 and s2 < e1:
            clashes += 1
    return clashes


def _one_by_one(work: Burst) -> Callable[[Database], list[Outcome]]:
    video = provider_for(work.config.video)
    return lambda db: [
        process(db, work.config, raw, now=ARRIVED, video=video) for raw in work.messages
    ]


def _batched(work: Burst) -> Callable[[Database], list[Outcome]]:
    video = provider_for(work.config.video)

    def go(db: Database) -> list[Outcome]:
        out: list[Outcome] = []
        for i in range(0, len(work.messages), BATCH):
            out += process_batch(
                db, work.config, work.messages[i : i + BATCH], now=ARRIVED, video=video
            )
        return out

    return go


_STATE: dict[str, object] = {"doubles": 0}


def _teachers(options: argparse.Namespace) -> int:
    return 3 if options.quick else 30


def _set_up(where: str, make: Callable[[], Burst]) -> Burst:
    say(f"burst on {where}: setting up ...")
    began = time.perf_counter()
    work = make()
    say(
        f"  {len(work.messages)} messages for {work.popular} slots, set up in "
        f"{time.perf_counter() - began:.1f} s"
    )
    return work


def _work(options: argparse.Namespace) -> Burst:
    """The school on a SQLite file (made once, copied for every run)."""
    if "work" not in _STATE:
        teachers = _teachers(options)
        temp = Path(tempfile.mkdtemp(prefix="ptm-bench-burst-", dir=Path.cwd()))
        say(
            f"burst: {teachers} teachers x {POPULAR_PER_TEACHER} popular slots x "
            f"{FAMILIES_PER_SLOT} families"
        )
        _STATE.update(temp=temp, work=_set_up("SQLite", lambda: burst(temp, teachers)))
    work = _STATE["work"]
    assert isinstance(work, Burst)
    return work


def _pg_work(options: argparse.Namespace) -> Burst:
    """The school in a PostgreSQL database used as the template of every run's copy."""
    if "pg_work" not in _STATE:
        server = postgres_server()
        temp = _work(options).folder / "postgresql"
        temp.mkdir()
        _drop_databases(server)
        _admin(server, [f"CREATE DATABASE {TEMPLATE}"])
        made = _set_up(
            "PostgreSQL",
            lambda: burst(temp, _teachers(options), database_url=_on(server, TEMPLATE)),
        )
        run_on = replace(made.config.database, url=_on(server, RUN))
        _STATE["pg_work"] = replace(
            made, config=replace(made.config, database=run_on), postgres=server
        )
    work = _STATE["pg_work"]
    assert isinstance(work, Burst)
    return work


def postgres_unusable() -> str:
    """Why the PostgreSQL figures cannot be measured here ("" when they can)."""
    server = postgres_server()
    try:
        _admin(server, [f"DROP DATABASE IF EXISTS {FLOOR}", f"CREATE DATABASE {FLOOR}"])
    except SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        return f"PostgreSQL at {make_url(server).render_as_string()}: {first}"
    return ""


def _figure(
    options: argparse.Namespace,
    name: str,
    how: str,
    make: Callable[[Burst], Callable[[Database], list[Outcome]]],
    target: float,
    work: Burst,
) -> Figure:
    """Ours and the floor, measured in turns (floor, ours, floor, ours…), best of each: a
    machine whose speed drifts during the run disturbs both alike."""
    best = best_floor = float("inf")
    kinds: Counter[str] = Counter()
    for _ in range(max(1, options.repeat or 2)):
        if work.postgres:
            best_floor = min(best_floor, postgres_floor(work.messages, work.postgres))
        else:
            best_floor = min(best_floor, floor(work.messages, work.folder))
        elapsed, kinds, doubles = _decide(work, make(work))
        best = min(best, elapsed)
        _STATE["doubles"] = int(_STATE["doubles"]) + doubles  # type: ignore[call-overload]
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
    count = len(work.messages)
    say(f"  {how}: {best:8.3f} s  {count / best:8.0f} decisions/s  ({shown})")
    say(f"  floor (email+icalendar parse, 1-row commit): {best_floor:8.3f} s  "
        f"{count / best_floor:8.0f} messages/s")  # fmt: skip
    return Figure(name, best_floor / best, ">=", target)


ONE = "ours, one commit per message "
BATCHED = f"ours, one commit per {BATCH}     "


def burst_over_floor(options: argparse.Namespace) -> Figure:
    return _figure(options, "burst_over_floor", ONE, _one_by_one, 0.5, _work(options))


def burst_batched_over_floor(options: argparse.Namespace) -> Figure:
    return _figure(options, "burst_batched_over_floor", BATCHED, _batched, 1.0, _work(options))


def burst_pg_over_floor(options: argparse.Namespace) -> Figure:
    return _figure(options, "burst_pg_over_floor", ONE, _one_by_one, 0.5, _pg_work(options))


def burst_pg_batched_over_floor(options: argparse.Namespace) -> Figure:
    work = _pg_work(options)
    return _figure(options, "burst_pg_batched_over_floor", BATCHED, _batched, 1.0, work)


def double_bookings_figure(options: argparse.Namespace) -> Figure:
    _work(options)
    shutil.rmtree(_STATE["temp"], ignore_errors=True)  # type: ignore[arg-type]
    if "pg_work" in _STATE:
        _drop_databases(postgres_server())
    return Figure("double_bookings", float(_STATE["doubles"]), "<=", 0)  # type: ignore[arg-type]


def figures() -> list[Callable[[argparse.Namespace], Figure]]:
    """Every figure this machine can measure; says why the PostgreSQL ones are left out."""
    found: list[Callable[[argparse.Namespace], Figure]] = [
        burst_over_floor,
        burst_batched_over_floor,
    ]
    why_not = postgres_unusable()
    if why_not:
        say(f"burst: the PostgreSQL figures are left out: {why_not}")
    else:
        found += [burst_pg_over_floor, burst_pg_batched_over_floor]
    return [*found, double_bookings_figure]


if __name__ == "__main__":
    raise SystemExit(run(__doc__, figures()))
