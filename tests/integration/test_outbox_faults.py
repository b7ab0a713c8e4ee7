"""One destination's outage delays nobody else's work (DESIGN §6), and delivery catches up.

Real servers behind the fault-injecting proxy: Radicale for the teachers' calendars and an
aiosmtpd sink for the parents' email, on SQLite and PostgreSQL.  With the calendar server
frozen (it accepts connections and never answers), every email still goes out while the
calendar write hangs; with the mail server half-open, every calendar write still happens
while an email hangs.  When the frozen server starts refusing, its breaker opens after
:data:`~ptm_sync.app.outbox.dispatch.THRESHOLD` outages and its other rows wait untried instead of
each
waiting out a timeout.  When the fault clears, the next pass delivers the rest: the sink and
Radicale then hold exactly what the database says, each email once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from connectors import caldav_http
from ptm_sync.adapters.store import Database
from ptm_sync.app import outbox
from ptm_sync.app.context import App
from ptm_sync.app.outbox.dispatch import THRESHOLD, Dispatcher
from ptm_sync.app.services import send_now
from ptm_sync.app.sync import opened
from ptm_sync.interfaces.daemon import Daemon
from tests.support.booking import PAT, SAM
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.faultproxy import FaultProxy
from tests.support.mailservers import SmtpSink
from tests.support.wired import GUARD, NEVER, Wired, wait_until, wire

pytestmark = pytest.mark.radicale


@pytest.fixture
def wired(
    db: Database,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
    fault_proxy: Callable[[tuple[str, int]], FaultProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Wired]:
    monkeypatch.setattr(caldav_http, "READ_SECONDS", NEVER)
    yield wire(db, radicale_server, smtp_sink(), fault_proxy)


def test_a_frozen_calendar_server_holds_up_no_email(wired: Wired) -> None:
    calendar_rows = len(wired.rows(outbox.CALENDAR))
    emails = len(wired.rows(outbox.EMAIL))
    assert calendar_rows > THRESHOLD
    assert min(r.id for r in wired.rows(outbox.CALENDAR)) < max(
        r.id for r in wired.rows(outbox.EMAIL)
    )
    wired.caldav.freeze()
    flushing = wired.flush_in_background()
    wired.caldav.wait_stalled(1)  # a calendar write hangs on the frozen server...
    # ...and every email goes out meanwhile (a meeting's next email after its first).
    wait_until("every email sent", lambda: len(wired.sink.received) == emails)
    assert flushing.is_alive() and wired.caldav.stalled >= 1
    assert all(r.attempts == 0 for r in wired.rows(outbox.CALENDAR))  # nothing gave up yet

    wired.caldav.reset()  # the server now cuts every connection: outages, in a row
    flushing.join(GUARD)
    assert not flushing.is_alive()
    report = wired.reports[-1]
    tried = [r for r in wired.rows(outbox.CALENDAR) if r.attempts]
    assert len(tried) == THRESHOLD  # then the breaker opened: the rest were not tried
    assert report.deferred == {"calendar account 'dav'": calendar_rows - THRESHOLD}
    assert report.delivered == emails

    wired.caldav.clear()
    assert wired.flush().delivered == calendar_rows
    wired.assert_caught_up()


def test_a_half_open_mail_server_holds_up_no_calendar_write(wired: Wired) -> None:
    wired.smtp.half_open()
    flushing = wired.flush_in_background()
    wired.smtp.wait_stalled(1)  # an email hangs on a server that never answers...
    # ...and every calendar write is done meanwhile.
    wait_until(
        "every calendar row delivered",
        lambda: all(r.state == outbox.DONE for r in wired.rows(outbox.CALENDAR)),
    )
    assert flushing.is_alive() and wired.smtp.stalled >= 1
    assert set(wired.events()) == wired.confirmed_uids()
    assert wired.sink.received == []

    wired.smtp.reset()
    flushing.join(GUARD)
    assert not flushing.is_alive()
    report = wired.reports[-1]
    assert len([r for r in wired.rows(outbox.EMAIL) if r.attempts]) == THRESHOLD
    smtp_name = f"SMTP server {wired.smtp.host}:{wired.smtp.port}"
    assert list(report.deferred) == [smtp_name]
    assert report.deferred[smtp_name] > 0

    wired.smtp.clear()
    while any(r.state == outbox.PENDING for r in wired.rows(outbox.EMAIL)):
        assert wired.flush().delivered > 0  # each pass sends the next email of each meeting
    wired.assert_caught_up()


def test_a_slow_server_delays_but_loses_nothing(wired: Wired) -> None:
    wired.caldav.delay(0.05)
    wired.smtp.delay(0.05)
    while any(r.state == outbox.PENDING for r in wired.rows(outbox.EMAIL)):
        report = wired.flush()
        assert report.dead == 0 and report.deferred == {}
    wired.assert_caught_up()


@pytest.mark.postgres
def test_the_database_cut_mid_delivery_stops_a_worker_quietly_and_its_rows_resume(
    postgres_url: str,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
    fault_proxy: Callable[[tuple[str, int]], FaultProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL behind the proxy, delivery as the daemon runs it (workers of their own)."""
    where = urlsplit(postgres_url)
    pg = fault_proxy((where.hostname or "127.0.0.1", where.port or 5432))
    db = Database(where._replace(netloc=f"{where.username}@{pg.host}:{pg.port}").geturl())
    db.migrate()
    try:
        wired = wire(db, radicale_server, smtp_sink(), fault_proxy)
        config = wired.school.config
        wired.clock_at += timedelta(hours=1)  # every row due
        with opened(config) as connectors:
            dispatcher = Dispatcher(db, config, connectors, wired.clock)
            dispatcher.start()
            wired.smtp.half_open()
            dispatcher.kick()
            wired.smtp.wait_stalled(1)  # an email in flight...
            wait_until(
                "the calendar rows delivered",
                lambda: all(r.state == outbox.DONE for r in wired.rows(outbox.CALENDAR)),
            )
            pg.reset()  # ...when the database goes away, and the mail server fails too
            wired.smtp.reset()
            wait_until("the workers stopped", dispatcher.idle)
            pg.clear()
            wired.smtp.clear()
            # Same process, same clock: the rows the stopped worker held are free again
            # at once, not when their lease runs out.
            dispatcher.kick()
            wait_until(
                "every email sent",
                lambda: all(r.state == outbox.DONE for r in wired.rows(outbox.EMAIL)),
            )
            wait_until("the workers stopped", dispatcher.idle)
            dispatcher.close()
        wired.assert_caught_up()
    finally:
        db.dispose()
    assert "Traceback" not in caplog.text
    for private in (PAT, SAM, "Pat Johnson", "Sam Smith", "Mia Johnson"):
        assert private not in caplog.text
    assert any("stopped: OperationalError" in r.getMessage() for r in caplog.records)


def test_in_the_daemon_calendar_writes_wait_for_a_sync_pass_and_emails_do_not(
    wired: Wired,
) -> None:
    """A sync pass compares what it read of the calendars with our meetings: a write of ours
    landing in between would look like an event the teacher deleted (and cancel a meeting)."""
    wired.clock_at += timedelta(hours=1)  # every row due
    daemon = Daemon(App(wired.school.config, wired.db), clock=wired.clock)
    try:
        with daemon.sync_pass:  # a sync pass is under way
            daemon.outbox_job()
            wait_until(
                "every email sent",
                lambda: all(r.state == outbox.DONE for r in wired.rows(outbox.EMAIL)),
            )
            assert all(
                r.state == outbox.PENDING and r.attempts == 0 for r in wired.rows(outbox.CALENDAR)
            )
        wait_until(
            "every calendar row delivered",
            lambda: all(r.state == outbox.DONE for r in wired.rows(outbox.CALENDAR)),
        )
    finally:
        daemon.close()
    wired.assert_caught_up()


def test_a_command_waits_for_one_timeout_of_a_server_that_does_not_answer(
    db: Database,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
    fault_proxy: Callable[[tuple[str, int]], FaultProxy],
) -> None:
    """A staff command sends what it queued at once (send_now), but a person waits for it:
    a mail server that accepts and never answers costs one timeout, not one per email,
    and the reason kept says it did not answer (smtplib calls it a closed connection)."""
    wired = wire(db, radicale_server, smtp_sink(), fault_proxy, smtp_timeout=0.5)
    wired.smtp.half_open()

    report = send_now(wired.db, wired.school.config, wired.clock)

    assert report is not None and report.deferred  # said, not hidden
    tried = [r for r in wired.rows(outbox.EMAIL) if r.attempts]
    assert len(tried) == 1  # the breaker opened at the first outage: the rest wait, due
    assert tried[0].last_error == (
        f"SMTP server {wired.smtp.host}:{wired.smtp.port} did not answer within 0.5 s"
    )
    assert wired.sink.received == []

    wired.smtp.clear()
    while any(r.state == outbox.PENDING for r in wired.rows(outbox.EMAIL)):
        assert wired.flush().delivered > 0
    wired.assert_caught_up()
