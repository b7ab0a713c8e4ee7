"""`ptm-sync run` under systemd's `Type=notify` (`man 3 sd_notify`), with the service manager
played by the test: a datagram socket named by `$NOTIFY_SOCKET` that the test listens on.

The daemon says READY=1 once the database, the config and the web listener are up (so
/healthz answers the moment READY=1 arrives), pings WATCHDOG=1 from its main loop at half of
`$WATCHDOG_USEC`, says what it does in STATUS= lines, and STOPPING=1 when SIGTERM arrives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import ptm_sync
from tests.support.sample_school import SampleSchool, account_table, seed_calendars, write_school
from tests.support.servers import free_port

#: Bounds that only stop a hung test; nothing here measures time.
WAIT_SECONDS = 60
#: The watchdog the test asks for: a ping is due every 0.25 s.
WATCHDOG_USEC = 500_000


class ServiceManager:
    """The receiving end of ``$NOTIFY_SOCKET``: every datagram, in order of arrival."""

    def __init__(self, abstract: bool) -> None:
        self.folder = tempfile.mkdtemp(prefix="ptm-notify-")  # short: sun_path has 108 bytes
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"ptm-sync-test-{uuid.uuid4().hex}"
            self.sock.bind(b"\0" + name.encode())
            self.env_value = "@" + name
        else:
            path = os.path.join(self.folder, "notify")
            self.sock.bind(path)
            self.env_value = path
        self.messages: list[dict[str, str]] = []

    def next_message(self, process: subprocess.Popen[str]) -> dict[str, str]:
        """The next datagram as its ``KEY=VALUE`` lines; fails if the daemon exits first."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            self.sock.settimeout(0.5)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                if process.poll() is not None:
                    out, err = process.communicate()
                    pytest.fail(f"the daemon exited with {process.returncode}:\n{out}\n{err}")
                continue
            message = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append(message)
            return message
        pytest.fail(f"no notification in {WAIT_SECONDS} s; got {self.messages}")

    def wait_for(self, process: subprocess.Popen[str], key: str) -> dict[str, str]:
        while True:
            message = self.next_message(process)
            if key in message:
                return message

    def statuses(self) -> list[str]:
        return [m["STATUS"] for m in self.messages if "STATUS" in m]

    def close(self) -> None:
        self.sock.close()
        for name in os.listdir(self.folder):
            os.unlink(os.path.join(self.folder, name))
        os.rmdir(self.folder)


def healthz(base: str) -> int:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:  # 503: degraded, but answering
        return int(error.code)


@pytest.fixture
def manager() -> Iterator[ServiceManager]:
    """A socket with a file-system path (the abstract namespace and WATCHDOG_PID:
    tests/integration/test_sd_notify.py)."""
    listening = ServiceManager(abstract=False)
    yield listening
    listening.close()


@pytest.fixture
def school_config(radicale_server: EmbeddedCalDAV, tmp_path: Path) -> tuple[Path, str, int]:
    """A school of five teachers on Radicale: its config, the pages' URL, the teachers."""
    school = SampleSchool(date.today())
    calendars = seed_calendars(radicale_server, school, tag=f"notify-{uuid.uuid4().hex[:8]}")
    listen = f"127.0.0.1:{free_port()}"
    config = write_school(
        tmp_path,
        school,
        accounts=[account_table(radicale_server)],
        sections={"web": {"listen": listen}},
    )
    (tmp_path / "teachers.csv").write_text(school.teachers_csv(calendars), encoding="utf-8")
    assert ptm_sync(config, "roster", "import", "teachers.csv").returncode == 0
    return config, f"http://{listen}", len(calendars)


#: Runs its arguments the way `MemoryDenyWriteExecute=yes` in config/ptm-sync.service does:
#: no memory that is writable and executable, ever (Linux 6.3's PR_SET_MDWE, kept across
#: execve; systemd does it with a seccomp filter).  Exits 3 where the kernel has no MDWE.
NO_WRITABLE_EXECUTABLE_MEMORY = """
import ctypes, os, sys
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if ctypes.CDLL(None).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    sys.exit(3)
os.execv(sys.argv[1], sys.argv[1:])
"""


def mdwe_available() -> bool:
    probe = [sys.executable, "-c", NO_WRITABLE_EXECUTABLE_MEMORY, sys.executable, "-c", ""]
    return subprocess.run(probe, check=False).returncode == 0


def start_daemon(
    config: Path, environment: dict[str, str], *, mdwe: bool = False
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PTM_SYNC_CONFIG", "WATCHDOG_PID")}
    env.update(environment)
    wrapper = [sys.executable, "-c", NO_WRITABLE_EXECUTABLE_MEMORY] if mdwe else []
    return subprocess.Popen(
        [*wrapper, sys.executable, "-m", "ptm_sync", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
        env=env,
    )


def test_ready_after_the_listener_watchdog_from_the_loop_status_and_stopping_on_sigterm(
    manager: ServiceManager, school_config: tuple[Path, str, int]
) -> None:
    """Where the kernel can (PR_SET_MDWE), the daemon runs as `MemoryDenyWriteExecute=yes`
    runs it: syncing, serving and stopping need no writable executable memory."""
    config, base, teachers = school_config
    daemon = start_daemon(
        config,
        {"NOTIFY_SOCKET": manager.env_value, "WATCHDOG_USEC": str(WATCHDOG_USEC)},
        mdwe=mdwe_available(),
    )
    try:
        ready = manager.wait_for(daemon, "READY")
        # READY=1 means the listener is up: /healthz answers now, without a retry.
        assert healthz(base) in (200, 503)
        assert ready["READY"] == "1" and base in ready["STATUS"]

        # The first sync pass says what it does, then that it is idle, with the counts.
        while not any(s.startswith("idle:") for s in manager.statuses()):
            manager.next_message(daemon)
        assert f"syncing {teachers} teachers' calendars" in manager.statuses()
        assert f"idle: {teachers} of {teachers} calendars synced, 0 failed; next pass in 5 min" in (
            manager.statuses()
        )
        # The watchdog goes on while the daemon idles: several pings, from the main loop.
        pings_before = sum("WATCHDOG" in m for m in manager.messages)
        for _ in range(3):
            assert manager.wait_for(daemon, "WATCHDOG")["WATCHDOG"] == "1"
        assert sum("WATCHDOG" in m for m in manager.messages) >= pings_before + 3

        daemon.send_signal(signal.SIGTERM)
        stopping = manager.wait_for(daemon, "STOPPING")
        assert stopping["STOPPING"] == "1"
        out, err = daemon.communicate(timeout=WAIT_SECONDS)
        assert daemon.returncode == 0, err
        assert out.rstrip().splitlines()[-1] == "ptm-sync stopped"
        # Nothing after READY=1 came before it, and READY=1 came once.
        assert sum("READY" in m for m in manager.messages) == 1
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()


def test_a_database_that_is_away_at_start_is_the_status_and_never_ready(tmp_path: Path) -> None:
    """systemd shows why the unit failed to start (`systemctl status`), without the
    database's password; READY=1 never comes, so the unit is never called started."""
    listen, dead = f"127.0.0.1:{free_port()}", free_port()  # nothing listens on `dead`
    config = tmp_path / "ptm-sync.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [school]
            name = "Lincoln High School"
            timezone = "America/New_York"
            contact = "office@lincoln.example.org"
            [database]
            url = "postgresql+psycopg://ptm:s3cret-db@127.0.0.1:{dead}/ptm"
            [web]
            listen = "{listen}"
            [[periods]]
            id = "spring"
            title = "Spring conferences"
            windows = ["2027-04-10T15:00/19:00"]
            """
        ),
        encoding="utf-8",
    )
    listening = ServiceManager(abstract=True)
    try:
        daemon = start_daemon(config, {"NOTIFY_SOCKET": listening.env_value})
        out, err = daemon.communicate(timeout=WAIT_SECONDS)
        assert daemon.returncode == 1, out + err
        listening.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                data = listening.sock.recv(4096).decode()
                listening.messages.append(dict(x.split("=", 1) for x in data.splitlines()))
    finally:
        listening.close()
    assert not [m for m in listening.messages if "READY" in m]
    last = listening.statuses()[-1]  # what `systemctl status` shows
    assert last.startswith("cannot start: database postgresql+psycopg://ptm:***@"), last
    assert "unavailable" in last
    assert not [m for m in listening.messages if "s3cret-db" in str(m)]
