"""Outbox delivery by destination: one worker per destination, a circuit breaker each.

A destination is where a row's effect goes: the SMTP server for emails, a calendar account
for calendar writes.  Each destination drains its own rows in its own thread, so a server
that hangs or is down delays only its own rows, never another destination's (DESIGN §6): with
the CalDAV server frozen, parents' emails still go out at once.  Within a destination rows go
in the outbox's order (one meeting's emails stay in order, see :mod:`ptm_sync.app.outbox.leases`).

After :data:`THRESHOLD` outages in a row (a timeout, a refused or dropped connection: the
errors marked retryable that say the server cannot be reached), a destination's breaker
opens: its remaining rows are left due, untried, and it is not tried again for a cooldown
(:data:`COOLDOWN`, doubling up to :data:`COOLDOWN_CAP`) instead of each row waiting out its
timeout.  After the cooldown one row tries the server again (half-open); a success closes the
breaker, a failure opens it for longer.

While workers run, a heartbeat renews this process's leases
(:func:`ptm_sync.app.outbox.leases.renew`),
so its rows stay its own however slow a server is, and a restart after a crash takes them
over at once (:class:`ptm_sync.app.outbox.leases.Owner`).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError

from ptm_sync.adapters.store import Database, Meeting, Outbox, Teacher
from ptm_sync.app import outbox
from ptm_sync.app.outbox.deliverers import CalendarDeliverer, EmailDeliverer, VideoDeliverer
from ptm_sync.app.sync import Connectors
from ptm_sync.config.settings import Config
from ptm_sync.core.errors import MailUnavailable, PtmError, Unavailable
from ptm_sync.ops.metrics import PROCESS

log = logging.getLogger(__name__)

#: Outages in a row that open a destination's breaker.
THRESHOLD = 3
#: How long an open breaker keeps a destination's rows waiting, at first and at most.
COOLDOWN = timedelta(seconds=30)
COOLDOWN_CAP = timedelta(minutes=10)
#: Rows a worker leases at a time: few, so that rows left behind by a breaker that opens are
#: free again at once and little waits on one worker.
BATCH = 20


def is_outage(exc: PtmError) -> bool:
    """True when ``exc`` says the server cannot be reached (not: it refused one row)."""
    return isinstance(exc, Unavailable | MailUnavailable)


@dataclass
class Breaker:
    """A circuit breaker for one destination (pure: the caller gives the time).

    ``failures`` counts outages in a row; from :data:`THRESHOLD` on, the breaker is open
    until ``open_until``.
    """

    threshold: int = THRESHOLD
    failures: int = 0
    open_until: datetime | None = None

    def allows(self, now: datetime) -> bool:
        return self.open_until is None or now >= self.open_until

    def record(self, *, outage: bool, now: datetime) -> bool:
        """Count one attempt's outcome; True when this outage opened the breaker."""
        if not outage:
            self.failures, self.open_until = 0, None
            return False
        self.failures += 1
        if self.failures < self.threshold:
            return False
        rounds = self.failures - self.threshold
        self.open_until = now + min(COOLDOWN * (2 ** min(rounds, 16)), COOLDOWN_CAP)
        return True


@dataclass(frozen=True)
class Destination:
    """Where rows go: ``name`` (stable, for logs and output: no personal data), the row
    ``kind`` and the SQL condition that picks its rows."""

    name: str
    kind: str
    where: Any = None


def _rows_of_accounts(accounts: Sequence[str]) -> Any:
    meetings = (
        select(Meeting.id)
        .join(Teacher, Teacher.id == Meeting.teacher_id)
        .where(Teacher.account.in_(list(accounts)))
    )
    return Outbox.meeting_id.in_(meetings)


def needs_zoom(config: Config) -> bool:
    """Whether any teacher's meetings may get Zoom links."""
    video = config.video
    return video.provider == "zoom" or (
        video.provider in ("auto", "teams", "meet") and video.fallback == "zoom"
    )


def destinations(config: Config) -> list[Destination]:
    """The SMTP server (when configured), each calendar account, the Zoom API (when links
    are made there), and a last one for calendar rows whose meeting is gone or names no
    configured account."""
    found: list[Destination] = []
    if config.mail is not None and config.mail.smtp is not None:
        smtp = config.mail.smtp
        found.append(Destination(f"SMTP server {smtp.host}:{smtp.port}", outbox.EMAIL))
    accounts = [a.id for a in config.accounts]
    for account in accounts:
        found.append(
            Destination(
                f"calendar account {account!r}", outbox.CALENDAR, _rows_of_accounts([account])
            )
        )
    if needs_zoom(config):
        found.append(Destination("Zoom API", outbox.VIDEO))
    found.append(
        Destination(
            "calendar rows of no account",
            outbox.CALENDAR,
            or_(Outbox.meeting_id.is_(None), ~_rows_of_accounts(accounts)),
        )
    )
    return found


@dataclass
class _Worker:
    destination: Destination
    breaker: Breaker = field(default_factory=Breaker)
    thread: threading.Thread | None = None
    #: Rows came in while the worker ran: it looks once more before it stops.
    again: bool = False

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class Dispatcher:
    """Delivers the outbox by destination (see the module docstring).

    One dispatcher per process; its breakers remember outages from one pass to the next.
    ``connectors`` must not be used by another thread while workers run (the daemon gives
    the dispatcher its own).
    """

    def __init__(
        self,
        db: Database,
        config: Config,
        connectors: Connectors,
        clock: Callable[[], datetime],
        *,
        tls_context: ssl.SSLContext | None = None,
        calendar_guard: AbstractContextManager[object] | None = None,
        patience: int = THRESHOLD,
    ) -> None:
        """``patience``: outages in a row before a destination's breaker opens (a command
        a person waits for passes 1: one server's timeout at most, then its rows wait for
        the daemon or ``outbox flush``)."""
        self.db, self.config, self.clock = db, config, clock
        #: Held around each calendar write: the daemon's sync holds it for a whole pass, so
        #: no write of ours lands between the sync's read of a calendar and its comparison
        #: of that read with our meetings (which would take our new event for one the
        #: teacher deleted).  Emails never wait for it.
        self.calendar_guard = calendar_guard
        self.calendar = CalendarDeliverer(db, config, connectors, clock)
        self.video = VideoDeliverer(db, config, clock)
        self.tls_context = tls_context
        self.stopping = threading.Event()
        self._workers = [_Worker(d, Breaker(threshold=patience)) for d in destinations(config)]
        self._lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        #: Rows claimed and not yet finished: the heartbeat renews these only.
        self._in_hand: set[int] = set()
        #: Rows a stopped worker left claimed (the database was away): given back first.
        self._orphans: set[int] = set()

    # --- one pass, waited for (`outbox flush`, commands) ----------------------------------

    def flush(self) -> outbox.FlushReport:
        """Drain every destination in parallel until nothing is due or its breaker opens.

        A delivery can make rows of another destination (the calendar write that made a
        Teams link sends the confirmation that waited for it): rounds repeat while the last
        one delivered anything, so the command leaves nothing due behind.
        """
        total = outbox.FlushReport()
        while True:
            done = self._flush_round()
            total.add(done)
            if not done.delivered:
                # What waits is what the last round left (a destination that cannot be
                # reached defers the same rows in every round: count them once).
                total.deferred = dict(done.deferred)
                return total

    def _flush_round(self) -> outbox.FlushReport:
        reports: list[outbox.FlushReport] = []
        failures: list[BaseException] = []
        threads = []

        def drain(worker: _Worker, report: outbox.FlushReport) -> None:
            try:
                self._drain(worker, report)
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                failures.append(exc)

        for worker in self._workers:
            report = outbox.FlushReport()
            reports.append(report)
            threads.append(
                threading.Thread(
                    target=drain,
                    args=(worker, report),
                    name=f"outbox {worker.destination.name}",
                    daemon=True,
                )
            )
        with self._beating():
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if failures:
            # What the caller would have seen without the threads (the database is away,
            # a secret cannot be read): the command reports it as it always did.
            raise failures[0]
        total = outbox.FlushReport()
        for report in reports:
            total.add(report)
        return total

    # --- the daemon: workers that run on their own ----------------------------------------

    def start(self) -> None:
        """Start the heartbeat for :meth:`kick`'s workers."""
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(
                target=self._beat, args=(self.stopping,), name="outbox heartbeat", daemon=True
            )
            self._heartbeat.start()

    def kick(self) -> None:
        """Start a worker for every destination that is idle and whose breaker allows it;
        returns at once (a busy or broken destination holds up nothing)."""
        now = self.clock()
        with self._lock:
            for worker in self._workers:
                if self.stopping.is_set() or not worker.breaker.allows(now):
                    continue
                if worker.busy:
                    worker.again = True
                    continue
                worker.thread = threading.Thread(
                    target=self._drain_and_log,
                    args=(worker,),
                    name=f"outbox {worker.destination.name}",
                    daemon=True,
                )
                worker.thread.start()

    def idle(self) -> bool:
        """True when no worker runs."""
        with self._lock:
            return not any(worker.busy for worker in self._workers)

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the rows in flight; waits up to ``timeout`` seconds in all (a row
        still hanging then is left to its lease: the next start takes it over)."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [w.thread for w in self._workers if w.thread is not None]
        if self._heartbeat is not None:
            threads.append(self._heartbeat)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- the work -------------------------------------------------------------------------

    def _drain_and_log(self, worker: _Worker) -> None:
        report = outbox.FlushReport()
        while True:
            try:
                self._drain(worker, report)
            except (PtmError, SQLAlchemyError) as exc:
                # The database went away (or a config secret cannot be read): the next
                # pass tries again.  The error's kind only: its text can hold SQL parameters.
                log.warning("outbox %s: stopped: %s", worker.destination.name, type(exc).__name__)
            except Exception:
                log.exception("outbox worker for %s failed (a bug)", worker.destination.name)
            with self._lock:
                if not worker.again or self.stopping.is_set():
                    worker.thread = None
                    break
                worker.again = False
        if report.delivered and worker.destination.kind != outbox.EMAIL:
            # A calendar write or a Zoom room can have sent a letter on its way (the
            # confirmation that waited for the link): the other workers look now.
            self.kick()
        if report.delivered or report.retried or report.dead or report.dropped:
            log.info(
                "outbox %s: %d delivered, %d to retry, %d dead, %d dropped (no longer wanted)",
                worker.destination.name,
                report.delivered,
                report.retried,
                report.dead,
                report.dropped,
            )
        for where, count in report.deferred.items():
            log.warning("outbox %s: %d not delivered yet (unreachable)", where, count)

    def _drain(self, worker: _Worker, report: outbox.FlushReport) -> None:
        destination, breaker = worker.destination, worker.breaker
        guard: AbstractContextManager[object] = nullcontext()
        if destination.kind == outbox.EMAIL:
            email = EmailDeliverer(self.db, self.config, self.clock, tls_context=self.tls_context)
            deliverer: outbox.Deliverer = email
        elif destination.kind == outbox.VIDEO:
            email, deliverer = None, self.video
        else:
            email, deliverer = None, self.calendar
            if self.calendar_guard is not None:
                guard = self.calendar_guard
        unfinished: list[int] = []
        try:
            self._release_orphans()
            while not self.stopping.is_set() and breaker.allows(self.clock()):
                claimed = outbox.claim_batch(
                    self.db,
                    now=self.clock(),
                    limit=BATCH,
                    kinds=[destination.kind],
                    where=destination.where,
                )
                if not claimed.rows:
                    return
                report.resumed += claimed.resumed
                unfinished = [r.id for r in claimed.rows]
                with self._lock:
                    self._in_hand.update(unfinished)
                for row in claimed.rows:
                    if self.stopping.is_set() or not breaker.allows(self.clock()):
                        outbox.release(self.db, unfinished)
                        unfinished = []
                        break
                    with guard:
                        failure = outbox.deliver_one(
                            self.db, row, deliverer, clock=self.clock, report=report
                        )
                    unfinished.remove(row.id)
                    with self._lock:
                        self._in_hand.discard(row.id)
                    outage = failure is not None and is_outage(failure)
                    PROCESS.destination_reached(destination.name, not outage)  # metrics, health
                    if breaker.record(outage=outage, now=self.clock()):
                        log.warning(
                            "outbox: %s unreachable (%d failures in a row); its rows wait until "
                            "%s UTC",
                            destination.name,
                            breaker.failures,
                            f"{breaker.open_until:%Y-%m-%d %H:%M:%S}",
                        )
        finally:
            with self._lock:
                self._in_hand.difference_update(unfinished)
                self._orphans.update(unfinished)
            if email is not None:
                email.close()
            if not breaker.allows(self.clock()):
                left = outbox.count_due(
                    self.db, now=self.clock(), kinds=[destination.kind], where=destination.where
                )
                if left:
                    report.deferred[destination.name] = left

    def _release_orphans(self) -> None:
        with self._lock:
            orphans, self._orphans = set(self._orphans), set()
        try:
            outbox.release(self.db, orphans)
        except BaseException:
            with self._lock:
                self._orphans.update(orphans)
            raise

    @contextmanager
    def _beating(self) -> Iterator[None]:
        done = threading.Event()
        beat = threading.Thread(target=self._beat, args=(done,), name="outbox heartbeat")
        beat.daemon = True
        beat.start()
        try:
            yield
        finally:
            done.set()
            beat.join()

    def _beat(self, done: threading.Event) -> None:
        while not done.wait(outbox.HEARTBEAT.total_seconds()):
            with self._lock:
                in_hand = set(self._in_hand)
            try:
                outbox.renew(self.db, now=self.clock(), ids=in_hand)
            except (PtmError, SQLAlchemyError) as exc:  # the database is away: beat again
                log.warning("outbox: could not renew our leases: %s", type(exc).__name__)
