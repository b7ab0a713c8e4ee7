"""Test-wide fixtures, gathered from tests/support/ (one module per server or concern),
and the ``serial`` mark.

``make test`` runs the suite in two phases: everything not marked ``serial`` in parallel
(pytest-xdist, a worker per core), then the ``serial`` files alone.  Those files inject
faults into live connections (tests/support/faultproxy.py), race processes, or run the
daemon and wait on it: their hang guards assume a machine that no other worker loads (on
two busy cores a database cut mid-delivery was seen to outlast its 60-second guard).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.database",
    "tests.support.caldav_servers",
    "tests.support.mailservers",
    "tests.support.imap_relay",
    "tests.support.faultproxy",
    "tests.support.feed_server",
    "tests.support.fake_zoom",
    "tests.support.school",
]

#: Test files (relative to tests/) that run alone, after the parallel phase.
SERIAL = frozenset(
    {
        "e2e/test_admin_cli_sync.py",
        "e2e/test_crash_points.py",
        "e2e/test_daemon.py",
        "e2e/test_daemon_digest.py",
        "e2e/test_daemon_mail.py",
        "e2e/test_database_outage.py",
        "e2e/test_first_come.py",
        "e2e/test_health_cli.py",
        "e2e/test_jobs_daemon.py",
        "e2e/test_jobs_replicas.py",
        "e2e/test_outbox_faults_cli.py",
        "e2e/test_replicas.py",
        "e2e/test_sd_notify.py",
        "integration/test_booking_engine.py",
        "integration/test_faultproxy.py",
        "integration/test_health_mail.py",
        "integration/test_inbound_pipeline.py",
        "integration/test_outbox_faults.py",
        "integration/test_outbox_lease.py",
        "integration/test_two_guardians.py",
        "integration/test_web.py",
        "unit/test_crashpoints.py",
    }
)
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            where = item.path.relative_to(_TESTS).as_posix()
        except ValueError:
            continue
        if where in SERIAL:
            item.add_marker(pytest.mark.serial)
