"""The daemon: calendar sync, outbox delivery, the IMAP watcher, the scheduled jobs of
:mod:`ptm_sync.app.jobs` at their cadences, the published pages, a clean stop on
SIGTERM/SIGINT.

Every job catches and logs its own failures; one calendar server being down never stops the
daemon.  Stopping finishes the job in progress, stops the web server and closes connections.

Under systemd (``Type=notify``, :mod:`ptm_sync.adapters.systemd`) it says ``READY=1`` once the
database is migrated, the config loaded and the web listener bound; ``WATCHDOG=1`` from the
main loop (a job that hangs the loop longer than ``WatchdogSec=`` gets the daemon
restarted); ``STATUS=`` lines with what it is doing; ``STOPPING=1`` when a stop begins.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType

import schedule
from sqlalchemy import func, select

from ptm_sync.adapters.mail.backoff import Backoff
from ptm_sync.adapters.mail.imap import ImapReader
from ptm_sync.adapters.store import Teacher
from ptm_sync.adapters.store.db import database_outage
from ptm_sync.adapters.store.locks import poller_lock
from ptm_sync.adapters.systemd import Notifier
from ptm_sync.app import jobs
from ptm_sync.app.context import App
from ptm_sync.app.outbox.dispatch import Dispatcher
from ptm_sync.app.services import process_inbox, video_provider
from ptm_sync.app.sync import Connectors, sync
from ptm_sync.config.settings import ImapConfig
from ptm_sync.core.errors import PtmError
from ptm_sync.interfaces.web.pages import Site
from ptm_sync.interfaces.web.server import WebServer

log = logging.getLogger(__name__)

#: Seconds between outbox passes (a reply's effects are also flushed right after it).  A
#: pass starts a worker for each idle destination and returns at once
#: (ptm_sync.app.outbox.dispatch).
OUTBOX_SECONDS = 15
#: Seconds between looks at which scheduled jobs are due (their cadences are a minute and
#: more: :data:`ptm_sync.app.jobs.JOBS`).
JOBS_SECONDS = 15
#: Seconds the IMAP watcher waits for new mail before it looks anyway.
IDLE_SECONDS = 600.0
#: Longest pause, in seconds, between attempts to reach a lost IMAP server again.
IMAP_RECONNECT_CAP = 300.0


class Daemon:
    def __init__(
        self,
        app: App,
        *,
        clock: Callable[[], datetime] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.app = app
        self.notify = notifier or Notifier()
        self.clock = clock or app.now
        self.stopping = threading.Event()
        self.scheduler = schedule.Scheduler()
        self.connectors = Connectors(app.config)
        # Delivery has connectors of its own: its workers run beside the sync job; calendar
        # writes wait while a sync pass compares the calendars with our meetings.
        self.delivery_connectors = Connectors(app.config)
        self.sync_pass = threading.Lock()
        self._dispatcher: Dispatcher | None = None
        self._dispatcher_made = threading.Lock()
        self.web: WebServer | None = None
        self.video = video_provider(app.config)
        self._threads: list[threading.Thread] = []
        self.passes = 0

    @property
    def dispatcher(self) -> Dispatcher:
        """The outbox's workers, made on first use: making them opens the database, which
        may be away when the daemon starts (the jobs then say so and try again)."""
        with self._dispatcher_made:
            if self._dispatcher is None:
                self._dispatcher = Dispatcher(
                    self.app.db,
                    self.app.config,
                    self.delivery_connectors,
                    self.clock,
                    calendar_guard=self.sync_pass,
                )
            return self._dispatcher

    def sync_job(self) -> None:
        with poller_lock(self.app.db, "sync") as mine:
            if not mine:
                log.debug("sync: another replica is syncing")
                return
            self.notify.status(f"syncing {self._calendar_count()} teachers' calendars")
            try:
                with self.sync_pass:
                    results = sync(
                        self.app.db,
                        self.app.config,
                        self.connectors,
                        now=self.clock(),
                        video=self.video,
                    )
            except PtmError as exc:
                log.error("sync pass failed: %s", exc)
                self.notify.status("idle: the last sync pass failed (see the log)")
                return
        failed = [r for r in results if r.error]
        self.passes += 1
        log.info("sync pass: %d calendars, %d failed", len(results), len(failed))
        minutes = self.app.config.sync.interval_minutes
        self.notify.status(
            f"idle: {len(results) - len(failed)} of {len(results)} calendars synced, "
            f"{len(failed)} failed; next pass in {minutes} min"
        )

    def _calendar_count(self) -> int:
        with self.app.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(Teacher)) or 0)

    def outbox_job(self) -> None:
        """Start delivery for every destination that is idle and reachable; returns at once:
        a hung or broken server holds up only its own rows (the workers log what they did)."""
        self.dispatcher.kick()

    def jobs_job(self) -> None:
        """Run every scheduled job that is due (:mod:`ptm_sync.app.jobs`: the registry and
        its cadences; each job's last run is in the database, so replicas share the
        schedule).  A job's failure is logged and recorded, and the others still run."""
        for job in jobs.due(self.app.db, self.clock()):
            self._guard(self._job_runner(job))()

    def _job_runner(self, job: jobs.Job) -> Callable[[], None]:
        def run_job() -> None:
            with poller_lock(self.app.db, job.name) as mine:
                if not mine:
                    log.debug("%s: another replica runs it", job.name)
                    return
                ran = jobs.run(
                    self.app.db, self.app.config, job, now=self.clock(), video=self.video
                )
            if ran.done is None:
                return
            if ran.done.problem:  # its words may name a family: `ptm-sync jobs` shows them
                log.warning("job %s: not all of it could be done; see `ptm-sync jobs`", job.name)
            if ran.done.queued:
                log.info("job %s: %s", job.name, ran.done.summary)
                self.outbox_job()

        run_job.__name__ = f"{job.name}_job"
        return run_job

    def mail_watcher(self) -> None:
        """Fetch replies, then wait with IDLE (or poll) until new mail or stop."""
        imap = self.app.config.mail.imap if self.app.config.mail else None
        assert imap is not None
        backoff = 5.0
        while not self.stopping.is_set():
            try:
                with poller_lock(self.app.db, "imap") as mine:
                    if mine:
                        backoff = self._watch(imap, backoff)
            except Exception as exc:  # noqa: BLE001 - the watcher outlives any one failure
                self._failed("IMAP watcher", exc)
                backoff = min(backoff * 2, 300.0)
            if not self.stopping.is_set():
                # Another replica watches the inbox (or we lost the connection): look again.
                self.stopping.wait(backoff)

    def _watch(self, imap: ImapConfig, backoff: float) -> float:
        """Watch the inbox until stop; returns the next retry delay.

        One reader for the whole watch: it reconnects by itself, with backoff, until the
        server answers again or the daemon stops, and it remembers by UID what it handed
        out, so a failure here (the database, a refused login) only pauses the watch.
        """
        reconnect = Backoff(first=1.0, cap=IMAP_RECONNECT_CAP, attempts=None)
        with ImapReader(imap, backoff=reconnect, stop=self.stopping) as reader:
            while not self.stopping.is_set():
                try:
                    if process_inbox(
                        reader,
                        self.app.db,
                        self.app.config,
                        clock=self.clock,
                        video=self.video,
                    ):
                        # Their effects go out at once: delivery has workers and
                        # connectors of its own, whatever the main loop is doing.
                        self.outbox_job()
                    # IDLE is re-issued every 10 minutes, well inside RFC 2177's 29;
                    # without IDLE the reader polls every poll_seconds.
                    reader.idle(timeout=IDLE_SECONDS, stop=self.stopping)
                    backoff = 5.0
                except PtmError as exc:
                    if self.stopping.is_set():
                        break
                    log.warning("IMAP: %s; retrying in %.0f s", exc, backoff)
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, 300.0)
                except Exception as exc:  # noqa: BLE001 - logged; the watch goes on
                    self._failed("IMAP watcher", exc)
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, 300.0)
        return backoff

    def _guard(self, job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - logged; the next run tries again
                self._failed(f"job {getattr(job, '__name__', job)}", exc)

        return run

    def _failed(self, what: str, exc: Exception) -> None:
        """Log a failure: an outage in one line (which database, what happened; no SQL,
        no parameters), anything else as the bug it is, with its traceback (statement
        parameters are hidden by the engine, URL passwords by the log format)."""
        outage = database_outage(exc)
        if outage is not None:
            log.warning("%s: %s; trying again later", what, outage)
            self.notify.status(f"{outage}; trying again later")
        else:
            log.exception("%s failed", what)

    def start(self) -> str:
        """Start the web server and schedule the jobs; returns the pages' URL."""
        self.app.db  # noqa: B018 - open and migrate before anything else
        self.web = WebServer(
            Site(self.app.config, self.app.db, self.clock), self.app.config.web.listen
        )
        self.web.start()
        self.dispatcher.start()
        minutes = self.app.config.sync.interval_minutes
        self.scheduler.every(minutes).minutes.do(self._guard(self.sync_job))
        self.scheduler.every(OUTBOX_SECONDS).seconds.do(self._guard(self.outbox_job))
        self.scheduler.every(JOBS_SECONDS).seconds.do(self._guard(self.jobs_job))
        mail = self.app.config.mail
        if mail is not None and mail.imap is not None:
            self._threads.append(
                threading.Thread(target=self.mail_watcher, name="imap", daemon=True)
            )
        for thread in self._threads:
            thread.start()
        return self.web.url

    def loop(self) -> None:
        """Run jobs until :meth:`stop` (or a signal)."""
        # Delivery first: what a stopped process left unfinished resumes at once, and a
        # calendar server that hangs the first sync holds up no email.
        self.notify.watchdog()
        self._guard(self.outbox_job)()
        self._guard(self.sync_job)()
        self._guard(self.jobs_job)()  # what is due (a period's opening, the digest) at once
        while not self.stopping.is_set():
            self.notify.watchdog()
            self.scheduler.run_pending()
            idle = self.scheduler.idle_seconds
            wake = min(idle if idle is not None else 1.0, 1.0, self.notify.watchdog_seconds or 1.0)
            self.stopping.wait(timeout=max(0.1, wake))

    def stop(self, *_: object) -> None:
        if not self.stopping.is_set():
            self.notify.stopping("stopping: finishing the job in progress")
        self.stopping.set()

    def close(self) -> None:
        self.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.web is not None:
            self.web.stop()
        if self._dispatcher is not None:
            self._dispatcher.close()
        self.connectors.close()
        self.delivery_connectors.close()
        self.scheduler.clear()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def run(app: App) -> int:
    daemon = Daemon(app)
    daemon.install_signal_handlers()
    try:
        url = daemon.start()
    except Exception as exc:
        daemon.close()
        # The last STATUS= is what `systemctl status` keeps showing: why it did not start.
        daemon.notify.status(f"cannot start: {database_outage(exc) or 'see the log'}")
        daemon.notify.close()
        raise
    print(f"ptm-sync running: published pages at {url}/ (Ctrl-C or SIGTERM to stop)", flush=True)
    daemon.notify.ready(f"serving {url}/; first sync pass")
    try:
        daemon.loop()
    finally:
        daemon.close()
        daemon.notify.close()
    print("ptm-sync stopped", flush=True)
    return 0
