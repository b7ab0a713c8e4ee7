"""Routing and pages: path in, (status, content type, body) out; no sockets here.

Paths (DESIGN §7, a contract): ``/``, ``/periods/<id>``, ``/periods/<id>/slots.json``,
``/periods/<id>/teachers/<teacher-key>.ics``, ``/healthz``, ``/metrics``, and the stylesheet
``/static/ptm.css``.  HTML comes from the autoescaping templates of
:mod:`~ptm_sync.interfaces.web.templating`.  Nothing served here
carries a guardian's or student's name or the title of a teacher's own event.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from urllib.parse import quote, unquote

from sqlalchemy import func, select

from ptm_sync.adapters.store import Calendar, Database, Teacher
from ptm_sync.adapters.store.db import database_outage, safe_traceback
from ptm_sync.app.booking.load import teacher_info
from ptm_sync.app.read import render
from ptm_sync.app.read.availability import SlotRow, period_slots
from ptm_sync.app.read.health import problems, read_state
from ptm_sync.config.settings import Config, PeriodConfig
from ptm_sync.core.booking.aftercare_text import zone_words
from ptm_sync.core.errors import ConfigError
from ptm_sync.interfaces.web.metrics import Exporter, MissingLibrary
from ptm_sync.interfaces.web.security import log_path, may_read_metrics, networks
from ptm_sync.interfaces.web.templating import render as render_page
from ptm_sync.interfaces.web.templating import static_files
from ptm_sync.ops.metrics import PROCESS, ProcessMetrics
from ptm_sync.ops.redact import mask_urls

HTML = "text/html; charset=utf-8"
JSON = "application/json"
ICS = "text/calendar; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
#: Seconds a browser keeps a static file (the stylesheet) before asking again.
STATIC_CACHE_SECONDS = 3600

#: What a page answers while the database cannot be reached: no details, no SQL.
UNAVAILABLE = "Temporarily unavailable, try again later.\n"
#: The /healthz problem while the database cannot be reached (the log line says more).
DATABASE_UNAVAILABLE = "database unavailable: cannot reach the database"
#: Seconds a /healthz answer is reused: a probe every second costs a few queries per 5 s.
HEALTH_CACHE_SECONDS = 5.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    cache_seconds: int = 60


class Site:
    """The public site of one school."""

    def __init__(
        self,
        config: Config,
        db: Database,
        clock: Callable[[], datetime],
        *,
        process: ProcessMetrics = PROCESS,
    ) -> None:
        """``process``: the counters and server states of the process serving the site."""
        self.config = config
        self.db = db
        self.clock = clock
        self.process = process
        imap = config.mail.imap if config.mail is not None else None
        self._imap = f"IMAP server {imap.host}:{imap.port}" if imap is not None else None
        self.exporter = Exporter(db, clock, process, imap=imap is not None)
        self.metrics_from = networks(config.web.metrics_from)
        self._health: tuple[float, Response] | None = None
        self._health_lock = threading.Lock()
        self.routes: list[tuple[re.Pattern[str], Callable[..., Response]]] = [
            (re.compile(r"/"), self.index),
            (re.compile(r"/healthz"), self.health),
            (re.compile(r"/metrics"), self.metrics),
            (re.compile(r"/periods/([^/]+)/?"), self.period_page),
            (re.compile(r"/periods/([^/]+)/slots\.json"), self.period_json),
            (re.compile(r"/periods/([^/]+)/teachers/([^/]+)\.ics"), self.teacher_feed),
            (re.compile(r"/static/([^/]+)"), self.static),
        ]

    def handle(self, path: str, *, client: str | None = None) -> Response:
        """The response to a GET of ``path`` (percent-encoded, with or without its query).

        ``client``: the address of the peer when served over the network (``""`` when it is
        unknown); ``None`` for a caller in this process (the tests, the CLI).  /metrics
        answers 403 to a peer outside ``[web] metrics_from``.

        A database outage (:func:`~ptm_sync.adapters.store.db.database_outage`) is no bug: the page
        answers 503 with a short plain text, and the log has one line (which database, what
        happened; no traceback, SQL or parameters).  Anything else is raised, for the
        server to log with its traceback and answer 500.
        """
        path = unquote(path.split("?", 1)[0])
        try:
            for pattern, view in self.routes:
                match = pattern.fullmatch(path)
                if match:
                    if (
                        view == self.metrics
                        and client is not None
                        and not may_read_metrics(client, self.metrics_from)
                    ):
                        return self.forbidden()
                    response: Response = view(*match.groups())
                    return response
            return self.not_found("no such page")
        except Exception as exc:
            outage = database_outage(exc)
            if outage is None:
                raise
            log.warning("serving %s: %s", mask_urls(log_path(path)), mask_urls(outage))
            return self.unavailable()

    def unavailable(self) -> Response:
        return Response(503, TEXT, UNAVAILABLE.encode(), cache_seconds=0)

    def forbidden(self) -> Response:
        return Response(403, TEXT, b"Forbidden.\n", cache_seconds=0)

    def not_found(self, what: str) -> Response:
        body = render_page("not_found.html", {"what": what})
        return Response(404, HTML, body, cache_seconds=0)

    def static(self, name: str) -> Response:
        """A file of the fixed list of :func:`~ptm_sync.interfaces.web.templating.static_files`
        (the stylesheet); any other name, ``..`` included, is 404."""
        found = static_files().get(name)
        if found is None:
            return self.not_found("no such file")
        content_type, body = found
        return Response(200, content_type, body, cache_seconds=STATIC_CACHE_SECONDS)

    def _period(self, period_id: str) -> PeriodConfig | None:
        try:
            return self.config.period(period_id)
        except ConfigError:
            return None

    def _slots(self, period: PeriodConfig) -> list[SlotRow]:
        with self.db.read() as session:
            return period_slots(session, self.config, period, now=self.clock())

    def index(self) -> Response:
        periods = [
            {"url": f"/periods/{quote(p.id)}", "title": p.title, "days": _span(p, self.config)}
            for p in self.config.periods
        ]
        body = render_page("index.html", {"school": self.config.school.name, "periods": periods})
        return Response(200, HTML, body)

    def period_page(self, period_id: str) -> Response:
        """Teachers and their free times grouped by day (local dates and times, the zone
        in words), how to book, each teacher's booking address when mail is configured;
        never a guardian's or student's name or a teacher's event title."""
        period = self._period(period_id)
        if period is None:
            return self.not_found(f"no period {period_id}")
        tz = self.config.tz
        by_teacher: OrderedDict[str, list[SlotRow]] = OrderedDict()
        with self.db.read() as session:
            teachers = list(
                session.scalars(
                    # Who left the roster offers no times (and is not listed).
                    select(Teacher).where(Teacher.retired_at.is_(None)).order_by(Teacher.name)
                )
            )
            read = set(
                session.scalars(select(Calendar.teacher_id).where(Calendar.synced_at.is_not(None)))
            )
        for t in teachers:
            by_teacher[t.key] = []
        for row in self._slots(period):
            by_teacher.setdefault(row.teacher_key, []).append(row)
        mail = self.config.mail is not None
        listed = []
        for t in teachers:
            rows = by_teacher[t.key]
            days = [
                {
                    "iso": day.isoformat(),
                    "label": f"{day:%A %d %B}",
                    "times": [f"{r.start:%H:%M}–{r.end:%H:%M}" for r in group],
                }
                for day, group in groupby(
                    sorted(rows, key=lambda r: r.start), key=lambda r: r.start.astimezone(tz).date()
                )
            ]
            listed.append(
                {
                    "name": t.name,
                    "room": t.room or "",
                    "address": teacher_info(self.config, t).booking_address if mail else "",
                    "days": days,
                    # Never read: we do not know the teacher's times yet; "full" would be a lie.
                    "published": t.id in read,
                    "feed": f"/periods/{quote(period.id)}/teachers/{quote(t.key)}.ics",
                }
            )
        context = {
            "title": period.title,
            "school": self.config.school.name,
            "days": _span(period, self.config),
            "zone": zone_words(tz),
            "minutes": period.slot_minutes,
            "contact": self.config.school.contact,
            "addresses": mail,
            "teachers": listed,
            "json": f"/periods/{quote(period.id)}/slots.json",
        }
        return Response(200, HTML, render_page("period.html", context))

    def period_json(self, period_id: str) -> Response:
        period = self._period(period_id)
        if period is None:
            return self.not_found(f"no period {period_id}")
        rows = [r.as_json() for r in self._slots(period)]
        return Response(200, JSON, (json.dumps(rows, indent=2) + "\n").encode())

    def teacher_feed(self, period_id: str, key: str) -> Response:
        period = self._period(period_id)
        if period is None:
            return self.not_found(f"no period {period_id}")
        with self.db.read() as session:
            exists = session.scalar(
                select(func.count()).where(Teacher.key == key, Teacher.retired_at.is_(None))
            )
        if not exists:  # unknown, or left the roster: the same answer
            return self.not_found(f"no teacher {key}")
        rows = [r for r in self._slots(period) if r.teacher_key == key]
        body = render.slots_ics(rows, title=f"{period.title}: free times", now=self.clock())
        return Response(200, ICS, body)

    def health(self) -> Response:
        """200 ``{"status": "ok", ...}``, or 503 ``{"status": "degraded", "problems":
        [...]}`` naming what is wrong in words (DESIGN §7); never raises.

        Degraded: the database cannot be read; calendars never synced or failing (per
        account); the school events feed failing; outbox rows dead-lettered; the IMAP
        server or a delivery destination unreachable from this process
        (:func:`ptm_sync.app.read.health.problems`).  Both answers also give ``database``,
        ``teachers`` (a count) and ``last_sync``.  An answer is reused for
        :data:`HEALTH_CACHE_SECONDS`.
        """
        with self._health_lock:
            if self._health is not None and time.monotonic() < self._health[0]:
                return self._health[1]
            response = self._read_health()
            self._health = (time.monotonic() + HEALTH_CACHE_SECONDS, response)
            return response

    def _read_health(self) -> Response:
        status: dict[str, object] = {"status": "ok"}
        try:
            with self.db.read() as session:
                last = session.scalar(select(func.max(Calendar.synced_at)))
                state = read_state(session, counts=False)
            teachers = sum(account.teachers for account in state.accounts.values())
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            outage = database_outage(exc)
            if outage is not None:
                log.warning("health check: %s", mask_urls(outage))
                problem, database = DATABASE_UNAVAILABLE, "unavailable"
            else:
                log.error("health check: reading the database failed\n%s", safe_traceback(exc))
                problem, database = "database error: reading it failed (see the log)", "error"
            status = {"status": "degraded", "problems": [problem], "database": database}
            return Response(503, JSON, json.dumps(status).encode(), cache_seconds=0)
        found = problems(state, self.process, imap=self._imap)
        if found:
            status = {"status": "degraded", "problems": found}
        status.update(
            database="ok",
            teachers=teachers,
            last_sync=last.isoformat() if last else None,
        )
        code = 503 if found else 200
        return Response(code, JSON, json.dumps(status).encode(), cache_seconds=0)

    def metrics(self) -> Response:
        """The Prometheus text format (:mod:`ptm_sync.interfaces.web.metrics`); a database outage
        answers 503 (:meth:`handle`), a missing prometheus-client 501."""
        try:
            body, content_type = self.exporter.scrape()
        except MissingLibrary as exc:
            log.error("/metrics: %s", str(exc).strip())
            return Response(501, TEXT, str(exc).encode(), cache_seconds=0)
        return Response(200, content_type, body, cache_seconds=0)


def _span(period: PeriodConfig, config: Config) -> str:
    days = sorted({w.start.astimezone(config.tz).date() for w in period.windows})
    return ", ".join(f"{d:%a %d %b %Y}" for d in days)
