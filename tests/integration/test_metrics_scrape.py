"""/metrics over real HTTP, parsed as Prometheus parses it (DESIGN §7: names ``ptm_sync_``).

The web server serves a store filled with what a running school leaves (meetings, outbox
rows, quarantine, calendars synced and not) and a process whose counters the real code paths
moved: an outbox delivery and a failure, inbound decisions, a sync pass.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from ptm_sync import __version__
from ptm_sync.adapters.store import Database, Inbound
from ptm_sync.app import outbox
from ptm_sync.config import settings as config_mod
from ptm_sync.core.errors import PtmError
from ptm_sync.interfaces.web.pages import Site
from ptm_sync.interfaces.web.server import WebServer
from ptm_sync.ops.metrics import (
    DELIVERIES,
    DELIVERY_FAILURES,
    INBOUND_DECISIONS,
    PROCESS,
    SYNC_PASSES,
    ProcessMetrics,
)
from tests.integration.test_health_store import CONFIG_TEXT, IMAP, NOW, outbox_row, teacher
from tests.support.factories import make_guardian, make_meeting, make_period

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> tuple[str, Samples, dict[str, str]]:
    """The content type, every sample (name, sorted labels) → value, and each family's type."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return content_type, samples, types


@pytest.fixture
def served(db: Database) -> Iterator[tuple[str, ProcessMetrics]]:
    with db.write() as s:
        ada = teacher(s, "ada", "m365", synced=True)
        teacher(s, "alan", "m365", synced=False)
        teacher(s, "emmy", "google", synced=True, error="503")
        make_period(s)
        guardian = make_guardian(s, "g@family.test")
        for i, state in enumerate(["proposed", "confirmed", "confirmed"]):
            start = NOW + timedelta(hours=i)
            make_meeting(s, teacher=ada, guardian=guardian, start=start, state=state, now=NOW)
        s.add(Inbound(digest="q", received_at=NOW, outcome="quarantined"))
        outbox_row(s, "old", "email", "pending", NOW - timedelta(minutes=10))
        outbox_row(s, "dead", "calendar", "dead", NOW)
    process = ProcessMetrics()
    site = Site(config_mod.parse(CONFIG_TEXT + IMAP), db, lambda: NOW, process=process)
    server = WebServer(site, "127.0.0.1:0")
    server.start()
    try:
        yield server.url, process
    finally:
        server.stop()


def test_the_store_is_exported_in_the_prometheus_text_format(
    served: tuple[str, ProcessMetrics],
) -> None:
    url, _ = served
    content_type, samples, types = scrape(url)
    assert content_type == CONTENT_TYPE_LATEST and content_type.startswith("text/plain;")
    assert all(name.startswith("ptm_sync_") for name in types), sorted(types)
    assert samples[("ptm_sync_build_info", (("version", __version__),))] == 1
    assert samples[("ptm_sync_meetings", (("state", "proposed"),))] == 1
    assert samples[("ptm_sync_meetings", (("state", "confirmed"),))] == 2
    assert samples[("ptm_sync_meetings", (("state", "cancelled"),))] == 0  # every state
    assert samples[("ptm_sync_quarantine_messages", ())] == 1
    assert samples[("ptm_sync_outbox_depth", (("kind", "email"),))] == 1
    assert samples[("ptm_sync_outbox_oldest_age_seconds", (("kind", "email"),))] == 600
    assert samples[("ptm_sync_outbox_depth", (("kind", "calendar"),))] == 0
    assert samples[("ptm_sync_outbox_dead", (("kind", "calendar"),))] == 1
    assert samples[("ptm_sync_calendars_not_synced", (("account", "m365"),))] == 1
    assert samples[("ptm_sync_calendars_failing", (("account", "google"),))] == 1
    assert samples[("ptm_sync_sync_lag_seconds", (("account", "m365"),))] == 300
    assert types["ptm_sync_meetings"] == "gauge" and types["ptm_sync_deliveries"] == "counter"
    # The process has not tried IMAP yet: no claim either way.
    assert not [key for key in samples if key[0] == "ptm_sync_imap_connected"]


def test_counters_and_server_states_follow_the_process(
    served: tuple[str, ProcessMetrics],
) -> None:
    url, process = served
    process.count(INBOUND_DECISIONS, outcome="applied")
    process.count(INBOUND_DECISIONS, outcome="applied")
    process.count(INBOUND_DECISIONS, outcome="quarantined")
    process.count(SYNC_PASSES)
    process.imap_connected(False)
    process.destination_reached("SMTP server 127.0.0.1:2525", False)
    _, samples, _ = scrape(url)
    assert samples[("ptm_sync_inbound_decisions_total", (("outcome", "applied"),))] == 2
    assert samples[("ptm_sync_inbound_decisions_total", (("outcome", "quarantined"),))] == 1
    assert samples[("ptm_sync_sync_passes_total", ())] == 1
    assert samples[("ptm_sync_imap_connected", ())] == 0
    assert (
        samples[("ptm_sync_destination_up", (("destination", "SMTP server 127.0.0.1:2525"),))] == 0
    )
    process.imap_connected(True)
    _, samples, _ = scrape(url)
    assert samples[("ptm_sync_imap_connected", ())] == 1


def test_two_sites_in_one_process_keep_their_own_series(db: Database) -> None:
    """A registry of each site's own: the library's global registry is never touched."""
    from prometheus_client import REGISTRY

    before = set(REGISTRY._names_to_collectors)
    first, second = ProcessMetrics(), ProcessMetrics()
    first.count(SYNC_PASSES, 3)
    config = config_mod.parse(CONFIG_TEXT)
    texts = [
        Site(config, db, lambda: NOW, process=p).handle("/metrics").body.decode()
        for p in (first, second)
    ]
    assert "ptm_sync_sync_passes_total 3.0" in texts[0]
    assert "ptm_sync_sync_passes_total 0.0" in texts[1]
    assert set(REGISTRY._names_to_collectors) == before


def test_the_outbox_counts_its_deliveries_and_failures(db: Database) -> None:
    """The real delivery path moves the process's counters (deltas: one process-wide set)."""
    with db.write() as s:
        outbox_row(s, "ok", "email", "pending", NOW - timedelta(minutes=1))
        outbox_row(s, "bad", "calendar", "pending", NOW - timedelta(minutes=1))

    def delivered(kind: str) -> float:
        return PROCESS.counts(DELIVERIES).get((("kind", kind),), 0)

    def failed(kind: str) -> float:
        return PROCESS.counts(DELIVERY_FAILURES).get((("kind", kind), ("result", "retry")), 0)

    def refuse(row: Any) -> None:
        error = PtmError("the server said no")
        error.retryable = True
        raise error

    before = delivered("email"), failed("calendar")
    report = outbox.deliver(db, {"email": lambda row: None, "calendar": refuse}, clock=lambda: NOW)
    assert (report.delivered, report.retried) == (1, 1)
    assert (delivered("email"), failed("calendar")) == (before[0] + 1, before[1] + 1)


def test_a_database_outage_is_a_503_not_a_traceback(tmp_path: Any) -> None:
    (tmp_path / "db").mkdir()
    gone = Database(f"sqlite:///{tmp_path / 'db' / 'ptm.db'}")
    (tmp_path / "db").rmdir()
    server = WebServer(
        Site(config_mod.parse(CONFIG_TEXT), gone, lambda: NOW, process=ProcessMetrics()),
        "127.0.0.1:0",
    )
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(server.url + "/metrics", timeout=10)
        assert answer.value.code == 503
    finally:
        server.stop()
        gone.dispose()
