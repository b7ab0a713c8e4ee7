"""The daemon takes replies from IMAP (IDLE) and delivers their effects, with no command run.

A parent's Accept lands in the Dovecot inbox; `ptm-sync run` — already running — fetches it,
confirms the meeting, writes the teacher's Radicale calendar and sends the confirmation.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from ptm_sync.demo import parents
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.factories import make_invitation
from tests.support.school import (
    TZ,
    ImapSchool,
    calendar_part,
    meeting_by_uid,
    now_utc,
    teacher_events,
)
from tests.support.servers import free_port

pytestmark = [pytest.mark.radicale, pytest.mark.dovecot, pytest.mark.slow]

#: Only stops a hung test; nothing here measures time.
PATIENCE = 60.0


def _wait(what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    pytest.fail(f"the daemon never got to: {what}")


def test_the_running_daemon_confirms_a_reply_that_arrives_by_imap(
    imap_school: Callable[..., ImapSchool], radicale_server: EmbeddedCalDAV
) -> None:
    listen = f'\n[web]\nlisten = "127.0.0.1:{free_port()}"\n'
    school, sink, mailbox = imap_school(extra_config=listen)
    meeting, invitation = make_invitation(school, sink, teacher="ada@lincoln.example.org")
    sent_before = len(sink.received)

    daemon = subprocess.Popen(
        [sys.executable, "-m", "ptm_sync", "--config", str(school.config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait("start serving", lambda: daemon.poll() is None and len(mailbox.uids()) == 0)
        uid = mailbox.append(parents.reply("gmail", invitation, "ACCEPTED", tz=TZ, now=now_utc()))
        _wait(
            "confirm the meeting",
            lambda: meeting_by_uid(school, meeting["uid"])["state"] == "confirmed",
        )
        _wait("send the confirmation", lambda: len(sink.received) > sent_before)
        _wait(
            "write the teacher's calendar",
            lambda: any(
                str(e["UID"]) == meeting["uid"]
                for e in teacher_events(radicale_server, school.calendars[meeting["teacher"]])
            ),
        )
        update = calendar_part(sink.received[-1].raw).events[0]
        assert (str(update["STATUS"]), int(update["SEQUENCE"])) == ("CONFIRMED", 1)
        assert "$PtmProcessed" in mailbox.flags(uid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "ptm-sync stopped" in out
