"""``/metrics``: the Prometheus text exposition format, names ``ptm_sync_*``.

A custom collector (prometheus_client "Custom Collectors") reads, at each scrape, what the
store says (:func:`ptm_sync.app.read.health.read_state`: a few aggregate queries) and what this
process counted (the prometheus_client counters of :data:`ptm_sync.ops.metrics.PROCESS`), into
a registry of its own (never the library's global one, so two sites in one process, or tests,
never share a series):

==========================================  =====  ==========================================
metric                                      type   labels, meaning
==========================================  =====  ==========================================
``ptm_sync_build_info``                     info   ``version``
``ptm_sync_meetings``                       gauge  ``state``: meetings in each state
``ptm_sync_quarantine_messages``            gauge  inbound messages in quarantine
``ptm_sync_outbox_depth``                   gauge  ``kind``: rows waiting (due or not)
``ptm_sync_outbox_oldest_age_seconds``      gauge  ``kind``: age of the oldest waiting row
``ptm_sync_outbox_dead``                    gauge  ``kind``: dead-lettered rows
``ptm_sync_teachers``                       gauge  ``account``: teachers on the account
``ptm_sync_calendars_not_synced``           gauge  ``account``: calendars waiting for a first read
``ptm_sync_calendars_failing``              gauge  ``account``: calendars whose last read failed
``ptm_sync_calendars_by_problem``          gauge  ``account``, ``problem``: calendars by the kind
                                                   of their last read's problem (DESIGN §5)
``ptm_sync_sync_lag_seconds``               gauge  ``account``: now − the oldest successful read
``ptm_sync_inbound_decisions_total``        count  ``outcome``
``ptm_sync_deliveries_total``               count  ``kind``
``ptm_sync_delivery_failures_total``        count  ``kind``, ``result`` (retry, dead)
``ptm_sync_sync_passes_total``              count  passes over every calendar
``ptm_sync_sync_requests_total``            count  ``account``, ``result``: calendar reads
``ptm_sync_calendar_problems_total``        count  ``account``, ``problem``: reads that failed or
                                                   had spans without data, by kind
``ptm_sync_imap_connected``                 gauge  1 while this process's inbox watch is
                                                   logged in, 0 when it cannot connect; absent
                                                   when this process does not watch the inbox
``ptm_sync_destination_up``                 gauge  ``destination``: 1 when the last delivery
                                                   reached the server, 0 when it could not
==========================================  =====  ==========================================

``prometheus-client`` is imported when the first scrape comes; without it ``/metrics``
answers 501 with a one-line reason (the rest of the site works).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from ptm_sync import __version__
from ptm_sync.adapters.store import Database
from ptm_sync.app.read.health import StoreState, read_state
from ptm_sync.core.errors import CalendarProblem
from ptm_sync.core.model import MeetingState
from ptm_sync.ops.metrics import ProcessMetrics

#: Why /metrics cannot answer when the library is absent.
MISSING = "prometheus-client is not installed: pip install 'prometheus-client>=0.20,<1'\n"
PREFIX = "ptm_sync_"


class MissingLibrary(Exception):
    """``prometheus_client`` cannot be imported."""


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())


def families(
    state: StoreState, process: ProcessMetrics, *, now: datetime, imap: bool
) -> Iterator[Any]:
    """The metric families of one scrape (prometheus_client ``*MetricFamily`` objects).

    ``imap``: [mail.imap] is configured (the IMAP gauge is given only then, and only once
    this process has tried to connect).
    """
    from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

    yield InfoMetricFamily(f"{PREFIX}build", "ptm-sync's version", value={"version": __version__})
    meetings = GaugeMetricFamily(
        f"{PREFIX}meetings", "Meetings in each state (DESIGN §3)", labels=["state"]
    )
    for meeting_state in MeetingState:
        meetings.add_metric([meeting_state.value], state.meetings.get(meeting_state.value, 0))
    yield meetings
    yield GaugeMetricFamily(
        f"{PREFIX}quarantine_messages",
        "Inbound messages in quarantine (ptm-sync quarantine)",
        value=state.quarantined,
    )
    depth = GaugeMetricFamily(
        f"{PREFIX}outbox_depth", "Outbox rows waiting to be delivered", labels=["kind"]
    )
    oldest = GaugeMetricFamily(
        f"{PREFIX}outbox_oldest_age_seconds",
        "Age of the oldest outbox row waiting, 0 when none waits",
        labels=["kind"],
    )
    dead = GaugeMetricFamily(f"{PREFIX}outbox_dead", "Dead-lettered outbox rows", labels=["kind"])
    for kind in sorted({"email", "calendar", *state.outbox}):
        rows = state.outbox.get(kind)
        depth.add_metric([kind], rows.waiting if rows else 0)
        oldest.add_metric([kind], _age(now, rows.oldest_waiting) if rows else 0.0)
        dead.add_metric([kind], rows.dead if rows else 0)
    yield from (depth, oldest, dead)
    teachers = GaugeMetricFamily(
        f"{PREFIX}teachers", "Teachers in the roster, by account", labels=["account"]
    )
    never = GaugeMetricFamily(
        f"{PREFIX}calendars_not_synced",
        "Teachers whose calendar was never read, waiting for a first read (a calendar whose "
        "reads all failed is counted as failing)",
        labels=["account"],
    )
    failing = GaugeMetricFamily(
        f"{PREFIX}calendars_failing",
        "Calendars whose last read failed (those never read successfully offer no slots; "
        "the others keep their last busy times)",
        labels=["account"],
    )
    problems = GaugeMetricFamily(
        f"{PREFIX}calendars_by_problem",
        "Calendars by account and the kind of their last read's problem (not_found, "
        "access_denied, no_data, auth, unavailable, failed)",
        labels=["account", "problem"],
    )
    lag = GaugeMetricFamily(
        f"{PREFIX}sync_lag_seconds",
        "Seconds since the oldest successful calendar read of the account",
        labels=["account"],
    )
    for account, sync in sorted(state.accounts.items()):
        teachers.add_metric([account], sync.teachers)
        never.add_metric([account], sync.never_synced)
        failing.add_metric([account], sync.failing)
        for kind in CalendarProblem:
            problems.add_metric([account, kind.value], sync.problems.get(kind.value, 0))
        if sync.oldest_sync is not None:
            lag.add_metric([account], _age(now, sync.oldest_sync))
    yield from (teachers, never, failing, problems, lag)
    yield from process.registry.collect()  # the counters (ptm_sync_*_total)
    if imap and process.imap is not None:
        yield GaugeMetricFamily(
            f"{PREFIX}imap_connected",
            "1 while this process's inbox watch is logged in to the IMAP server, else 0",
            value=1 if process.imap else 0,
        )
    up = GaugeMetricFamily(
        f"{PREFIX}destination_up",
        "1 when the last outbox delivery to the destination reached its server, else 0",
        labels=["destination"],
    )
    for destination, reached in sorted(process.destinations.items()):
        up.add_metric([destination], 1 if reached else 0)
    yield up


class Exporter:
    """The registry of one site: :meth:`scrape` gives the body and its content type.

    Raises (from :meth:`scrape`):
        MissingLibrary: prometheus-client is not installed.
        sqlalchemy.exc.DBAPIError: the database cannot be read (the site answers 503).
    """

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        process: ProcessMetrics,
        *,
        imap: bool,
    ) -> None:
        self.db, self.clock, self.process, self.imap = db, clock, process, imap
        self._registry: Any = None

    def collect(self) -> Iterator[Any]:
        """The prometheus_client Collector protocol: called by the registry per scrape."""
        with self.db.read() as session:
            state = read_state(session)
        yield from families(state, self.process, now=self.clock(), imap=self.imap)

    def scrape(self) -> tuple[bytes, str]:
        try:
            from prometheus_client import CollectorRegistry
            from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
        except ImportError as exc:
            raise MissingLibrary(MISSING) from exc
        if self._registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(self)
            self._registry = registry
        return generate_latest(self._registry), CONTENT_TYPE_LATEST
