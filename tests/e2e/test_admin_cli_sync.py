"""`sync` as an administrator meets it (DESIGN §7, issue 9 item 7): each failure told once,
as a sentence (a calendar URL that answers 404, a port where nothing listens, https to a
server that speaks plain http), and progress on stderr — plain lines in a log, a bar on a
terminal.  Real Radicale, the command line as a process (through a pipe and through a
pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV, make_calendar
from tests.support.cli import ptm_sync
from tests.support.mailservers import TlsMaterial
from tests.support.sample_school import SampleSchool, account_table, write_school
from tests.support.servers import free_port

pytestmark = pytest.mark.radicale

GOOD = 10  # empty calendars that sync
BROKEN = 4  # a 404, a port where nothing listens, https to http, an untrusted certificate


@dataclass(frozen=True)
class Broken:
    config: Path
    dead_port: int
    dav_port: int
    untrusted_port: int
    sync: subprocess.CompletedProcess[str]  # one `sync` with stdout and stderr to pipes


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client refusing our certificate is the point


@pytest.fixture(scope="module")
def untrusted_https(tls_material: TlsMaterial) -> Iterator[int]:
    """An https server whose certificate a test CA signed: not one the system trusts."""
    server = _Quiet(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.socket = tls_material.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def broken(
    radicale_server: EmbeddedCalDAV, untrusted_https: int, tmp_path_factory: pytest.TempPathFactory
) -> Broken:
    folder = tmp_path_factory.mktemp("broken-school")
    private = f"https://127.0.0.1:{untrusted_https}/dav/"
    dead_port = free_port()  # nothing listens there
    https = radicale_server.url.replace("http://", "https://")
    config = write_school(
        folder,
        SampleSchool(date.today()),
        accounts=[
            account_table(radicale_server),
            {"id": "gone", "type": "caldav", "url": f"http://127.0.0.1:{dead_port}/dav/"},
            account_table(radicale_server, account_id="tls", url=https),
            {"id": "private", "type": "caldav", "url": private},  # no ca_file given
        ],
    )
    rows = ["email,name,account,calendar"]  # no room column: it is optional
    rows += [
        f"t{i:02}@l.org,Teacher {i},district,{make_calendar(radicale_server)}" for i in range(GOOD)
    ]
    rows += [
        f"missing@l.org,Missing,district,{radicale_server.url}no-such-calendar/",
        f"away@l.org,Away,gone,http://127.0.0.1:{dead_port}/dav/cal/",
        f"tls@l.org,Tls,tls,{https}cal/",
        f"private@l.org,Private,private,{private}cal/",
    ]
    (folder / "teachers.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    imported = ptm_sync(config, "roster", "import", "teachers.csv")
    assert imported.returncode == 0, imported.stderr
    dav_port = int(radicale_server.url.split(":")[2].split("/")[0])
    # `sync` as a process writing to pipes: what the administrator's log sees.
    synced = ptm_sync(config, "sync", process=True)
    return Broken(config, dead_port, dav_port, untrusted_https, synced)


def test_each_failure_is_told_once_as_a_sentence(broken: Broken) -> None:
    done = broken.sync
    assert done.returncode == 1
    failures = {
        line.split(":", 1)[0]: line for line in done.stdout.splitlines() if ": FAILED: " in line
    }
    assert set(failures) == {"missing@l.org", "away@l.org", "tls@l.org", "private@l.org"}
    assert failures["missing@l.org"].endswith("no-such-calendar/: not found (HTTP 404)")
    assert failures["away@l.org"].endswith(
        f"127.0.0.1:{broken.dead_port}: nothing accepts connections there (connection refused)"
    )
    assert failures["tls@l.org"].endswith(
        f"127.0.0.1:{broken.dav_port} does not speak TLS on that port "
        "(an http:// URL, not https://?)"
    )
    assert failures["private@l.org"].endswith(
        f"the TLS certificate of 127.0.0.1:{broken.untrusted_port} is not trusted "
        "(self-signed certificate in certificate chain); for a private certificate authority "
        "set ca_file"
    )
    everything = done.stdout + done.stderr
    for library_text in ("object at 0x", "ConnectionPool", "Caused by", "Errno", "_ssl.c"):
        assert library_text not in everything
    # Once: not again as a log warning on stderr.
    for teacher in failures:
        assert everything.count(teacher) == 1, everything
    assert done.stdout.splitlines()[-1] == f"synced {GOOD} of {GOOD + BROKEN} calendars"


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(broken: Broken) -> None:
    done = broken.sync
    progress = [line for line in done.stderr.splitlines() if line.startswith("synced ")]
    total = GOOD + BROKEN  # a line at every tenth of the way (every 2nd), the first and the last
    expected = (1, *range(2, total, 2), total)
    assert progress == [f"synced {n} of {total} calendars" for n in expected]
    assert "\r" not in done.stderr


def test_progress_is_a_bar_redrawn_in_place_on_a_terminal(broken: Broken) -> None:
    """stderr on a pseudo-terminal, as when the administrator types the command."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "PTM_SYNC_CONFIG"}
    with subprocess.Popen(
        [sys.executable, "-m", "ptm_sync", "--config", str(broken.config), "sync"],
        stdout=subprocess.PIPE,
        stderr=follower,
        cwd=broken.config.parent,
        env=env,
    ) as process:
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        out, _ = process.communicate(timeout=120)
    os.close(leader)
    text = seen.decode()
    total = GOOD + BROKEN
    counts = [int(n) for n in re.findall(rf"\] (\d+)/{total} calendars", text)]
    assert counts == list(range(1, total + 1))  # every calendar, redrawn with \r
    assert text.count("\r") >= total and "\n" not in text.replace("\r\n", "")
    last = text.rsplit("\r", 3)[-3]  # the bar at 13/13, then blanks over it, then \r
    assert text.endswith("\r" + " " * len(last) + "\r")  # cleared when the pass ends
    assert f"synced {GOOD} of {GOOD + BROKEN} calendars" in out.decode()
