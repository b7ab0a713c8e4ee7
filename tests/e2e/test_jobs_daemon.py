"""The running daemon runs the scheduled jobs of the registry by itself (DESIGN §3): with its
clock set an hour and a half before a confirmed meeting, its first round sends the family
the reminder, and `ptm-sync jobs` then shows every job run once and well."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import at, ptm_sync
from tests.support.mailservers import SmtpSink
from tests.support.school import TZ, School, parse, to_address
from tests.support.servers import free_port

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

#: Only stops a hung test; nothing here measures time.
PATIENCE = 60.0
PAT, GRACE = "pat@example.net", "grace@lincoln.example.org"


def test_the_daemon_sends_the_reminder_and_records_every_job(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    school = School(
        tmp_path,
        radicale_server,
        sink.port,
        extra_config=f'\n[web]\nlisten = "127.0.0.1:{free_port()}"\n',
    )
    school.setup()
    school.run("book", "--guardian", PAT, "--teacher", GRACE, "--start", f"{school.day}T15:30")
    moment = datetime.combine(school.day, clock(14, 0), tzinfo=TZ)

    env = {k: v for k, v in os.environ.items() if k != "PTM_SYNC_CONFIG"} | at(moment)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "ptm_sync", "--config", str(school.config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + PATIENCE
        reminders: list[bytes] = []
        while time.monotonic() < deadline and not reminders:
            reminders = [
                m.raw
                for m in sink.received
                if str(parse(m.raw)["Message-ID"]).startswith("<reminder.")
            ]
            time.sleep(0.2)
        assert reminders, "the daemon never sent the reminder"
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=PATIENCE)
    assert daemon.returncode == 0 and "Traceback" not in err, err
    [reminder] = reminders
    assert to_address(reminder) == PAT

    listed = ptm_sync(school.config, "jobs", "--format", "json", env=at(moment))
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert {name: r["last_result"] for name, r in rows.items()} == dict.fromkeys(rows, "ok")
    assert all(datetime.fromisoformat(r["last_run"]) == moment for r in rows.values())
    assert datetime.fromisoformat(rows["remind"]["next_run"]) == moment + timedelta(minutes=5)
