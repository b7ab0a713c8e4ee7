"""The notification protocol of `man 3 sd_notify` on a real datagram socket: the addresses
`$NOTIFY_SOCKET` may name, the watchdog that is meant for another process, and a service
manager that went away.  (The daemon's use of it: tests/e2e/test_sd_notify.py.)"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptm_sync.adapters.systemd import Notifier


@pytest.fixture
def abstract() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace and its `$NOTIFY_SOCKET` spelling."""
    name = f"ptm-sync-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    yield sock, "@" + name
    sock.close()


def pending(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock``, without waiting for more."""
    sock.setblocking(False)
    found: list[str] = []
    try:
        while True:
            found.append(sock.recv(4096).decode())
    except BlockingIOError:
        return found
    finally:
        sock.settimeout(5)


def test_the_abstract_namespace_gets_ready_status_and_stopping(
    abstract: tuple[socket.socket, str],
) -> None:
    sock, address = abstract
    notifier = Notifier({"NOTIFY_SOCKET": address})
    notifier.ready("serving http://127.0.0.1:8080/")
    notifier.status("syncing 12 teachers'\ncalendars")  # one line, whatever it is given
    notifier.status("syncing 12 teachers'\ncalendars")  # unchanged: not sent again
    notifier.stopping()
    notifier.close()
    assert pending(sock) == [
        "READY=1\nSTATUS=serving http://127.0.0.1:8080/",
        "STATUS=syncing 12 teachers' calendars",
        "STOPPING=1\nSTATUS=stopping",
    ]


@pytest.mark.parametrize(
    ("watchdog_pid", "pings"), [("", True), ("own", True), ("1", False)], ids=str
)
def test_the_watchdog_is_pinged_only_when_it_is_meant_for_this_process(
    abstract: tuple[socket.socket, str], watchdog_pid: str, pings: bool
) -> None:
    sock, address = abstract
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "30000000"}
    if watchdog_pid:
        env["WATCHDOG_PID"] = str(os.getpid()) if watchdog_pid == "own" else watchdog_pid
    notifier = Notifier(env)
    notifier.watchdog()
    notifier.watchdog()  # within half of 30 s of the first: not sent
    notifier.close()
    assert pending(sock) == (["WATCHDOG=1"] if pings else [])
    assert notifier.watchdog_seconds == (15.0 if pings else None)


def test_outside_systemd_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_seconds is None
    notifier.ready("x")
    notifier.watchdog()
    notifier.stopping()


def test_a_service_manager_that_went_away_is_one_warning_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    notifier.ready("x")
    notifier.status("y")
    notifier.stopping()
    notifier.close()
    warnings = [r for r in caplog.records if "notification socket" in r.getMessage()]
    assert len(warnings) == 1
