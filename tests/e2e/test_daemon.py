"""`ptm-sync run` as systemd or a container runs it: it syncs, serves, and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import ptm_sync
from tests.support.sample_school import (
    PERIOD_ID,
    SampleSchool,
    account_table,
    seed_calendars,
    write_school,
)
from tests.support.servers import free_port

#: Generous bounds that only stop a hung test; nothing here measures time.
START_SECONDS = 60
STOP_SECONDS = 20


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until_served(process: subprocess.Popen[str], url: str, expected: object) -> dict[str, Any]:
    """Poll until the daemon serves ``expected`` (JSON) at ``url``: its first pass is done.

    Returns /healthz as it answers then.
    """
    deadline = time.monotonic() + START_SECONDS
    found: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the daemon exited with {process.returncode}:\n{out}\n{err}")
        try:
            status, body = get(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
            continue
        found = json.loads(body) if status == 200 else None
        if found == expected:
            base = url.split("/periods/")[0]
            health: dict[str, Any] = json.loads(get(base + "/healthz")[1])
            return health
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"the daemon never served the expected slots; last answer: {found}")


@dataclass(frozen=True)
class Installed:
    config: Path
    school: SampleSchool
    base: str  # the published pages' URL


@pytest.fixture
def installed(radicale_server: EmbeddedCalDAV, tmp_path: Path) -> Installed:
    school = SampleSchool(date.today())
    calendars = seed_calendars(radicale_server, school, tag=f"run-{uuid.uuid4().hex[:8]}")
    listen = f"127.0.0.1:{free_port()}"
    config = write_school(
        tmp_path,
        school,
        accounts=[account_table(radicale_server)],
        sections={"web": {"listen": listen}},
    )
    (tmp_path / "teachers.csv").write_text(school.teachers_csv(calendars), encoding="utf-8")
    assert ptm_sync(config, "roster", "import", "teachers.csv").returncode == 0
    return Installed(config, school, f"http://{listen}")


@pytest.fixture
def daemon(installed: Installed) -> Iterator[subprocess.Popen[str]]:
    config = installed.config
    environment = {k: v for k, v in os.environ.items() if k != "PTM_SYNC_CONFIG"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ptm_sync", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
        env=environment,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_daemon_syncs_serves_the_pages_and_stops_cleanly_on_a_signal(
    installed: Installed, daemon: subprocess.Popen[str], stop_with: signal.Signals
) -> None:
    base, school = installed.base, installed.school
    slots = f"{base}/periods/{PERIOD_ID}/slots.json"
    health = wait_until_served(daemon, slots, school.expected_slots())
    assert health["status"] == "ok" and health["teachers"] == 5 and health["last_sync"]
    status, page = get(f"{base}/periods/{PERIOD_ID}")
    assert status == 200 and b"Ada Lovelace" in page

    daemon.send_signal(stop_with)
    out, err = daemon.communicate(timeout=STOP_SECONDS)
    assert daemon.returncode == 0, err
    assert f"published pages at {base}/" in out
    assert out.rstrip().splitlines()[-1] == "ptm-sync stopped"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    # The port is free again: the web server was closed, not abandoned.
    with pytest.raises(urllib.error.URLError):
        get(base + "/healthz")


def test_a_port_in_use_is_one_line_and_exit_1(installed: Installed) -> None:
    host, port = installed.base.removeprefix("http://").split(":")
    with socket.create_server((host, int(port))):
        result = ptm_sync(installed.config, "run", timeout=60, process=True)  # the daemon
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ptm-sync: web.listen: cannot listen on {host}:{port}: Address already in use"
    ]
