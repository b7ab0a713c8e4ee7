"""What is degraded, read from the store and this process: for ``/healthz`` and ``/metrics``.

:func:`read_state` takes a few indexed aggregate queries (no row is loaded): calendars never
synced or failing per account, the school events feeds that fail, outbox depth, oldest age
and dead letters per kind, meetings by state, the quarantine's size.  :func:`problems` turns
a :class:`StoreState` and the process's server states (:mod:`ptm_sync.ops.metrics`) into the
``/healthz`` problem lines (DESIGN §7): counts per account and problem kind (DESIGN §5:
``not_found``, ``access_denied``, ``no_data``, ``auth``, ``unavailable``), account ids and
server names only — never a teacher's, parent's or student's name or address.  An account's
refusal of our credentials is the one sentence ``check`` and ``sync`` give (it names the
account and its server).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Calendar, Inbound, Meeting, Outbox, SchoolFeed, Teacher
from ptm_sync.app.outbox.queue import DEAD, PENDING
from ptm_sync.core.booking.rows import QUARANTINED
from ptm_sync.core.errors import CalendarProblem
from ptm_sync.ops.failures import names_account
from ptm_sync.ops.metrics import ProcessMetrics


@dataclass(frozen=True, slots=True)
class AccountSync:
    """One calendar account's teachers as the sync left them."""

    teachers: int = 0
    #: Teachers whose calendar was never read successfully (they offer no slots).
    never_synced: int = 0
    #: Calendars whose last read failed: those read successfully before keep their last busy
    #: times; ``failing_unread`` of them were never read (their teachers offer no slots).
    failing: int = 0
    #: The oldest successful read among the account's calendars (UTC), None if none.
    oldest_sync: datetime | None = None
    #: Calendars by the kind of their last read's problem (``not_found``, ``access_denied``,
    #: ``no_data``, ``auth``, ``unavailable``, ``failed``); kinds with none are left out.
    problems: dict[str, int] = field(default_factory=dict)
    #: The account's own refusal (an ``auth`` problem), told as ``check`` and ``sync`` tell
    #: it: it names the account and its server, never a teacher.
    refusal: str = ""
    failing_unread: int = 0


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    """The outbox rows of one kind (``email``, ``calendar``, ``video``)."""

    waiting: int = 0  # pending rows, due or not
    dead: int = 0
    oldest_waiting: datetime | None = None  # created_at of the oldest pending row (UTC)


@dataclass(frozen=True, slots=True)
class StoreState:
    """What the store says at one instant."""

    accounts: dict[str, AccountSync] = field(default_factory=dict)
    failing_feeds: list[str] = field(default_factory=list)  # account ids of school feeds
    outbox: dict[str, OutboxCounts] = field(default_factory=dict)
    meetings: dict[str, int] = field(default_factory=dict)  # state -> count
    quarantined: int = 0


def read_state(session: Session, *, counts: bool = True) -> StoreState:
    """Read :class:`StoreState` (six aggregate queries; four with ``counts=False``, which
    leaves ``meetings`` and ``quarantined`` empty: /healthz needs neither, and the
    quarantine count reads the whole inbound table).

    Raises:
        sqlalchemy.exc.DBAPIError: the database cannot be read.
    """
    unread = Calendar.synced_at.is_(None)
    # One query, grouped by account and problem kind (summed per account below): the
    # health check stays one read of the teachers however many kinds there are.
    rows = session.execute(
        select(
            Teacher.account,
            Calendar.problem,
            func.count(Teacher.id),
            func.count(Calendar.synced_at),
            func.count(Calendar.id).filter(Calendar.error.is_not(None)),
            func.count(Calendar.id).filter(unread, Calendar.error.is_not(None)),
            func.min(Calendar.synced_at),
            func.min(Calendar.error),
        )
        .outerjoin(Calendar, Calendar.teacher_id == Teacher.id)
        .group_by(Teacher.account, Calendar.problem)
    )
    totals: dict[str, list[int]] = {}
    oldest_of: dict[str, datetime] = {}
    kinds: dict[str, dict[str, int]] = {}
    refusals: dict[str, str] = {}
    for account, problem, teachers, read, failing, failing_unread, oldest, error in rows:
        total = totals.setdefault(account, [0, 0, 0, 0])
        for i, n in enumerate((teachers, read, failing, failing_unread)):
            total[i] += int(n)
        if oldest is not None and (account not in oldest_of or oldest < oldest_of[account]):
            oldest_of[account] = oldest
        if problem is not None:
            kinds.setdefault(account, {})[str(problem)] = int(teachers)
        if problem == CalendarProblem.AUTH and error:
            refusals[account] = _first_line(error)
    accounts: dict[str, AccountSync] = {}
    for account, (teachers, read, failing, failing_unread) in totals.items():
        # A calendar whose every read failed is failing (fix something), not "never synced"
        # (wait for the next pass).
        never = teachers - read - failing_unread
        accounts[account] = AccountSync(
            teachers,
            never,
            failing,
            oldest_of.get(account),
            problems=kinds.get(account, {}),
            refusal=refusals.get(account, ""),
            failing_unread=failing_unread,
        )
    feeds = list(
        session.scalars(
            select(SchoolFeed.account)
            .where(SchoolFeed.error.is_not(None))
            .order_by(SchoolFeed.account)
        )
    )
    waiting = {
        kind: (count, oldest)
        for kind, count, oldest in session.execute(
            select(Outbox.kind, func.count(), func.min(Outbox.created_at))
            .where(Outbox.state == PENDING)
            .group_by(Outbox.kind)
        )
    }
    dead = dict(
        session.execute(
            select(Outbox.kind, func.count()).where(Outbox.state == DEAD).group_by(Outbox.kind)
        ).all()
    )
    outbox = {
        str(kind): OutboxCounts(
            waiting=waiting.get(kind, (0, None))[0],
            dead=dead.get(kind, 0),
            oldest_waiting=waiting.get(kind, (0, None))[1],
        )
        for kind in sorted(set(waiting) | set(dead))
    }
    if not counts:
        return StoreState(accounts, feeds, outbox)
    meetings = {
        str(state): count
        for state, count in session.execute(
            select(Meeting.state, func.count()).group_by(Meeting.state)
        ).all()
    }
    quarantined = session.scalar(
        select(func.count()).select_from(Inbound).where(Inbound.outcome == QUARANTINED)
    )
    return StoreState(accounts, feeds, outbox, meetings, quarantined or 0)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _calendars(n: int) -> str:
    return f"{n} calendar{'s' if n != 1 else ''}"


def problems(state: StoreState, process: ProcessMetrics, *, imap: str | None = None) -> list[str]:
    """The ``/healthz`` problem lines, in a fixed order; empty when all is well.

    ``imap``: the IMAP server's name ("IMAP server host:port") when [mail.imap] is
    configured; its state is this process's own (a replica that does not hold the inbox
    watch has none, and says nothing about it).
    """
    found: list[str] = []
    if not state.accounts:
        found.append(
            "no teachers in the roster: nothing is offered (a new school imports its roster; "
            "an established one may be reading the wrong database: check [database] url)"
        )
    for account, sync in sorted(state.accounts.items()):
        if sync.never_synced:
            found.append(
                f"{_calendars(sync.never_synced)} never synced on account {account!r} "
                "(those teachers offer no slots; see `ptm-sync check`)"
            )
        if sync.refusal:  # the sentence `sync` tells, naming the account once
            refusal = sync.refusal
            found.append(
                refusal if names_account(refusal, account) else f"account {account!r}: {refusal}"
            )
        if sync.failing:
            told = [
                f"{kind}: {n}"
                for kind, n in sorted(sync.problems.items())
                if kind != CalendarProblem.NO_DATA
            ]
            if sync.failing_unread:
                told.append(f"{sync.failing_unread} never read: no slots offered")
            if sync.failing - sync.failing_unread:
                told.append(
                    f"{sync.failing - sync.failing_unread} read before: last busy times kept"
                )
            found.append(
                f"{_calendars(sync.failing)} failing on account {account!r} "
                f"({'; '.join(told)}; see `ptm-sync check`)"
            )
        no_data = sync.problems.get(CalendarProblem.NO_DATA, 0)
        if no_data:
            found.append(
                f"{_calendars(no_data)} on account {account!r} without free/busy data for part "
                "of the time (no_data: no slots offered there; see `ptm-sync check`)"
            )
    for account in state.failing_feeds:
        found.append(f"the school events feed of account {account!r} is failing")
    dead = sum(kind.dead for kind in state.outbox.values())
    if dead:
        found.append(
            f"{dead} outbox row{'s' if dead != 1 else ''} dead-lettered "
            "(see `ptm-sync outbox`; `ptm-sync outbox retry ID` requeues)"
        )
    if imap is not None and process.imap is False:
        found.append(f"mail unreachable: {imap} (the inbox watch cannot connect or log in)")
    for destination, reached in sorted(process.destinations.items()):
        if not reached:
            found.append(f"{destination} unreachable: the last delivery could not connect")
    return found
