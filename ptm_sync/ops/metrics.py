"""What this process counted and saw, for ``/metrics`` and ``/healthz``.

The jobs count events here as they happen — inbound decisions by outcome, deliveries and
failures by kind, sync passes, calendar reads by account and result — and note the state of
the servers they talk to (the IMAP connection; each outbox destination: reachable or not).
:mod:`ptm_sync.interfaces.web.metrics` exports it in the Prometheus text format beside what the
database says at scrape time (meetings by state, outbox depth, sync lag), and
:mod:`ptm_sync.app.read.health` reads the server states.

Counts are ``prometheus_client`` counters on a registry of their own (never the library's
global one, so two sites or two tests in one process never share a series): they live in
one process (:data:`PROCESS`) and start at zero with it.  Labels are small fixed sets
(outcomes, kinds, configured account ids, configured destinations): never an address, a
name or a message text.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

#: A label set: (name, value) pairs, sorted by name.
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """One counter: its name without the ``ptm_sync_`` prefix and ``_total`` suffix, its
    help text and label names."""

    name: str
    help: str
    labels: tuple[str, ...] = ()


INBOUND_DECISIONS = CounterSpec(
    "inbound_decisions",
    "Inbound messages decided, by outcome (applied, quarantined, ...)",
    ("outcome",),
)
DELIVERIES = CounterSpec("deliveries", "Outbox rows delivered, by kind", ("kind",))
DELIVERY_FAILURES = CounterSpec(
    "delivery_failures",
    "Outbox delivery attempts that failed, by kind and what follows (retry, dead)",
    ("kind", "result"),
)
SYNC_PASSES = CounterSpec("sync_passes", "Sync passes run over every teacher's calendar")
SYNC_REQUESTS = CounterSpec(
    "sync_requests",
    "Calendar reads by the sync, one per teacher per pass, by account and result (ok, failed)",
    ("account", "result"),
)

CALENDAR_PROBLEMS = CounterSpec(
    "calendar_problems",
    "Calendar reads by the sync that failed or had spans without data, by account and kind "
    "(not_found, access_denied, no_data, auth, unavailable, failed)",
    ("account", "problem"),
)

COUNTERS: tuple[CounterSpec, ...] = (
    INBOUND_DECISIONS,
    DELIVERIES,
    DELIVERY_FAILURES,
    SYNC_PASSES,
    SYNC_REQUESTS,
    CALENDAR_PROBLEMS,
)


def _labels(spec: CounterSpec, given: Mapping[str, str]) -> Labels:
    if set(given) != set(spec.labels):
        raise ValueError(f"counter {spec.name} takes labels {spec.labels}, got {sorted(given)}")
    return tuple(sorted((k, str(v)) for k, v in given.items()))


class ProcessMetrics:
    """Counters and server states of one process; thread-safe.

    ``registry``: the counters' own ``CollectorRegistry`` (``ptm_sync_<name>_total``), which
    the site's ``/metrics`` collects beside what the store says.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters = {
            spec.name: Counter(
                spec.name, spec.help, spec.labels, namespace="ptm_sync", registry=self.registry
            )
            for spec in COUNTERS
        }
        self._imap: bool | None = None
        self._destinations: dict[str, bool] = {}

    def count(self, spec: CounterSpec, amount: float = 1, **labels: str) -> None:
        """Add ``amount`` (>= 0) to ``spec``'s counter for ``labels``.

        Raises:
            ValueError: the labels are not the counter's, or ``amount`` is negative.
        """
        if amount < 0:
            raise ValueError("a counter only goes up")
        _labels(spec, labels)
        counter = self._counters[spec.name]
        (counter.labels(**labels) if spec.labels else counter).inc(amount)

    def counts(self, spec: CounterSpec) -> dict[Labels, float]:
        """``spec``'s counter now: label set → count (a counter without labels: ``()``)."""
        total = f"ptm_sync_{spec.name}_total"
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for family in self._counters[spec.name].collect()
            for sample in family.samples
            if sample.name == total
        }

    def imap_connected(self, connected: bool) -> None:
        """Note whether this process holds a logged-in IMAP session now."""
        with self._lock:
            self._imap = connected

    @property
    def imap(self) -> bool | None:
        """True: connected; False: the last attempt failed or the connection was lost;
        None: this process never tried (no [mail.imap], or another replica watches)."""
        with self._lock:
            return self._imap

    def destination_reached(self, destination: str, reached: bool) -> None:
        """Note whether the last delivery to ``destination`` (a name from
        :func:`ptm_sync.app.outbox.dispatch.destinations`: "SMTP server host:port", "calendar
        account 'id'") reached the server (an error from the server counts as reached)."""
        with self._lock:
            self._destinations[destination] = reached

    @property
    def destinations(self) -> dict[str, bool]:
        """Destination → whether its last delivery attempt reached the server."""
        with self._lock:
            return dict(self._destinations)


#: This process's metrics.
PROCESS = ProcessMetrics()
