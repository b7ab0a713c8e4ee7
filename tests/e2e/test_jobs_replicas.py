"""Two replicas run the same job at the same moment on one PostgreSQL database (DESIGN §3,
§6): `jobs run remind`, then `jobs run feedback`, in two processes at once.  Each family
gets each email once: the lease on the job's row lets one process in at a time, and the
core decides a meeting reminded or asked already as a duplicate."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import at, ptm_sync
from tests.support.mailservers import SmtpSink
from tests.support.school import TZ, School, parse, to_address

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ADA, ALAN, GRACE = (
    "ada@lincoln.example.org",
    "alan@lincoln.example.org",
    "grace@lincoln.example.org",
)
PAT, SAM, MARIA = "pat@example.net", "sam@example.com", "maria@example.org"
BOOKINGS = [
    (PAT, ADA, "15:00"),
    (SAM, ADA, "15:30"),
    (MARIA, ALAN, "15:00"),
    (PAT, ALAN, "15:30"),
    (MARIA, GRACE, "16:00"),
    (PAT, GRACE, "16:30"),
]


def together(config: Path, name: str, moment: datetime) -> list[str]:
    """`jobs run NAME` in two processes started together; their outputs."""
    outputs: list[str] = ["", ""]

    def replica(i: int) -> None:
        done = ptm_sync(config, "jobs", "run", name, env=at(moment), process=True)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        outputs[i] = done.stdout

    threads = [threading.Thread(target=replica, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert all(outputs), "a replica did not finish"
    return outputs


def queued(outputs: list[str], noun: str) -> int:
    """How many emails the replicas say they queued together ("remind: 3 reminders
    queued"; a replica that found the job running says so and queued none)."""
    total = 0
    for out in outputs:
        first = out.splitlines()[0]
        if noun in first:
            total += int(first.split(": ", 1)[1].split()[0])
        else:
            assert "running in another process" in first, out
    return total


def test_two_replicas_running_remind_and_feedback_together_send_each_email_once(
    tmp_path: Path,
    postgres_url: str,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink(mode="plain")
    school = School(tmp_path, radicale_server, sink.port)
    school.write()
    school.config.write_text(
        school.config.read_text().replace('url = "sqlite:///ptm.db"', f'url = "{postgres_url}"')
    )
    folder = school.folder
    school.run("roster", "import", str(folder / "teachers.csv"), str(folder / "families.csv"))
    school.run("sync")
    for guardian, teacher, clock in BOOKINGS:
        school.run("book", "--guardian", guardian, "--teacher", teacher, "--start",
                   f"{school.day}T{clock}")  # fmt: skip
    before = len(sink.received)
    evening = datetime.combine(school.day, time(12, 0), tzinfo=TZ)

    reminders = together(school.config, "remind", evening)
    assert queued(reminders, "reminder") == len(BOOKINGS)
    school.run("outbox", "flush")
    end = datetime.combine(school.day, time(17, 0), tzinfo=TZ)
    ptm_sync(school.config, "jobs", "run", "complete", env=at(end))
    requests = together(school.config, "feedback", end + timedelta(minutes=5))
    assert queued(requests, "feedback request") == len(BOOKINGS)
    school.run("outbox", "flush")

    sent = [parse(m.raw) for m in sink.received[before:]]
    ids = Counter(str(m["Message-ID"]) for m in sent)
    assert max(ids.values()) == 1, ids
    kinds = Counter(str(m["Message-ID"]).split(".", 1)[0] for m in sent)
    assert kinds == {"<reminder": len(BOOKINGS), "<feedback_request": len(BOOKINGS)}, kinds
    per_family = Counter(to_address(m.as_bytes()) for m in sent)
    assert per_family == {PAT: 6, SAM: 2, MARIA: 4}
