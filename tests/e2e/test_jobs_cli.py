"""`ptm-sync jobs` and `jobs run NAME` on real servers (DESIGN §3 "Other life-cycle jobs",
§7): reminders, completion and feedback requests as the families receive them.

Radicale holds the teachers' calendars, aiosmtpd receives what we send.  The meetings are
booked by staff at the command line (confirmed at once); the jobs then run with the
commands' clock set (``PTM_SYNC_NOW``) to the moment the story needs, never by waiting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import at, ptm_sync
from tests.support.mailservers import SmtpSink
from tests.support.school import (
    CONTACT,
    ORGANIZER,
    TZ,
    School,
    parse,
    plain_body,
    to_address,
)

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ADA, ALAN, GRACE = (
    "ada@lincoln.example.org",
    "alan@lincoln.example.org",
    "grace@lincoln.example.org",
)
PAT, MARIA = "pat@example.net", "maria@example.org"


@pytest.fixture
def school(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> Iterator[tuple[School, SmtpSink]]:
    sink = smtp_sink(mode="plain")
    s = School(tmp_path, radicale_server, sink.port)
    s.setup()
    yield s, sink


def local(s: School, clock: str) -> datetime:
    """``clock`` on the school's evening, in the school's zone."""
    return datetime.combine(s.day, time.fromisoformat(clock), tzinfo=TZ)


def book(s: School, guardian: str, teacher: str, clock: str) -> dict[str, Any]:
    done = s.run(
        "book", "--guardian", guardian, "--teacher", teacher, "--start", f"{s.day}T{clock}"
    )
    meeting_id = int(done.out.split("meeting ", 1)[1].split()[0])
    return next(m for m in s.meetings() if m["id"] == meeting_id)


def job(s: School, name: str, moment: datetime, *more: str) -> str:
    """`jobs run NAME` as if it were ``moment``; its output (it must succeed)."""
    done = ptm_sync(s.config, "jobs", "run", name, *more, env=at(moment))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def mails(sink: SmtpSink, since: int, kind: str) -> list[bytes]:
    """What arrived after the first ``since`` emails whose Message-ID names ``kind``."""
    return [
        m.raw
        for m in sink.received[since:]
        if str(parse(m.raw)["Message-ID"]).startswith(f"<{kind}.")
    ]


def test_a_confirmed_meeting_is_reminded_once_per_time_and_never_after_it_started(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    meeting = book(s, PAT, GRACE, "15:30")
    start = local(s, "15:30")
    before = len(sink.received)

    out = job(s, "remind", start - timedelta(hours=25))  # reminder_hours: 24
    assert out.splitlines() == ["remind: 0 reminders queued"]
    out = job(s, "remind", start - timedelta(hours=3))
    assert out.splitlines()[0] == "remind: 1 reminder queued"
    assert "delivered 1; 0 will be retried; 0 failed" in out
    [reminder] = mails(sink, before, "reminder")
    assert to_address(reminder) == PAT
    assert all(p.get_content_type() != "text/calendar" for p in parse(reminder).walk())
    subject = str(parse(reminder)["Subject"])
    assert subject.startswith("Reminder: Spring conferences with Grace Hopper")
    assert "15:30–15:45 (Eastern Time)" in subject
    body = plain_body(reminder)
    assert "15:30–15:45 (Eastern Time)" in body  # the zone in words, not an IANA key
    place = meeting["video_url"] or meeting["location"]
    assert place and place in body
    assert "Propose new time" in body and CONTACT in body  # how to cancel or move

    # Run again (and again later): nothing more is sent.
    assert job(s, "remind", start - timedelta(hours=3)).splitlines() == [
        "remind: 0 reminders queued"
    ]
    assert (
        job(s, "remind", start - timedelta(hours=1)).splitlines()[0].endswith(" 0 reminders queued")
    )
    assert mails(sink, before, "reminder") == [reminder]

    # Staff move it: the family is reminded of the new time, once.
    s.run("reschedule", str(meeting["id"]), "--start", f"{s.day}T16:30")
    out = job(s, "remind", start - timedelta(minutes=30))
    assert out.splitlines()[0] == "remind: 1 reminder queued"
    _, moved = mails(sink, before, "reminder")
    assert "16:30–16:45 (Eastern Time)" in plain_body(moved)

    # A meeting that has started is not reminded any more.
    late = book(s, MARIA, ALAN, "15:00")
    assert late["state"] == "confirmed"
    out = job(s, "remind", local(s, "15:01"))
    assert out.splitlines() == ["remind: 0 reminders queued"]
    assert len(mails(sink, before, "reminder")) == 2


def test_complete_after_the_end_then_one_feedback_request_with_the_survey_token(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    s = School(
        tmp_path,
        radicale_server,
        sink.port,
        extra_config='feedback_url = "https://survey.lincoln.example.org/form?lang=en"\n',
    )
    s.setup()
    meeting = book(s, PAT, ADA, "15:00")
    end = local(s, "15:15")
    before = len(sink.received)

    assert job(s, "complete", end - timedelta(minutes=1)).splitlines() == [
        "complete: 0 meetings completed"
    ]
    assert job(s, "complete", end).splitlines() == ["complete: 1 meeting completed"]
    assert next(m for m in s.meetings() if m["id"] == meeting["id"])["state"] == "completed"
    assert sink.received[before:] == []  # completing tells nobody

    out = job(s, "feedback", end + timedelta(minutes=15))
    assert out.splitlines()[0] == "feedback: 1 feedback request queued"
    assert job(s, "feedback", end + timedelta(minutes=30)).splitlines() == [
        "feedback: 0 feedback requests queued"
    ]
    [request] = mails(sink, before, "feedback_request")
    assert to_address(request) == PAT
    body = plain_body(request)
    found = re.search(r"https://survey\.lincoln\.example\.org/form\?lang=en&t=([a-z2-7]+)", body)
    assert found is not None, body
    assert len(found.group(1)) <= 64
    assert str(parse(request)["Reply-To"]) == CONTACT  # a survey: replies go to the office


def test_a_feedback_url_with_token_gets_the_token_in_place(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    s = School(
        tmp_path,
        radicale_server,
        sink.port,
        extra_config='feedback_url = "https://survey.lincoln.example.org/f/{token}/start"\n',
    )
    s.setup()
    book(s, PAT, ADA, "15:00")
    end = local(s, "15:15")
    job(s, "complete", end)
    job(s, "feedback", end)
    [request] = mails(sink, 0, "feedback_request")
    assert re.search(r"/f/[a-z2-7]{32}/start\b", plain_body(request)), plain_body(request)
    assert "{token}" not in plain_body(request)


@pytest.mark.parametrize("plus_addressing", [False, True])
def test_without_a_feedback_url_the_family_is_asked_to_reply_by_email(
    school: tuple[School, SmtpSink], plus_addressing: bool
) -> None:
    """The reply goes to the meeting's feedback plus-address where our mail server takes
    plus addresses (``[mail] plus_addressing``); else to the organizer address itself (a
    server without plus addressing would bounce the other), matched by In-Reply-To."""
    s, sink = school
    if plus_addressing:
        s.config.write_text(
            s.config.read_text().replace(
                f'organizer = "{ORGANIZER}"', f'organizer = "{ORGANIZER}"\nplus_addressing = true'
            )
        )
    book(s, PAT, ADA, "15:00")
    end = local(s, "15:15")
    job(s, "complete", end)
    job(s, "feedback", end)
    [request] = mails(sink, 0, "feedback_request")
    assert "replying to this email" in plain_body(request)
    local_part, domain = ORGANIZER.split("@")
    reply_to = str(parse(request)["Reply-To"])
    if plus_addressing:
        assert re.fullmatch(rf"{local_part}\+feedback-[a-z2-7]{{32}}@{domain}", reply_to), reply_to
    else:
        assert reply_to == ORGANIZER


def test_jobs_lists_last_run_next_run_and_result(school: tuple[School, SmtpSink]) -> None:
    s, _ = school
    moment = local(s, "12:00")
    job(s, "remind", moment)
    done = ptm_sync(s.config, "jobs", "--format", "json", env=at(moment + timedelta(minutes=1)))
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert list(rows) == ["open", "expire", "remind", "complete", "feedback", "digest", "purge"]
    assert all(set(r) == {"name", "last_run", "next_run", "last_result"} for r in rows.values())
    remind = rows["remind"]
    assert remind["last_result"] == "ok"
    assert datetime.fromisoformat(remind["last_run"]) == moment
    assert datetime.fromisoformat(remind["next_run"]) == moment + timedelta(minutes=5)
    assert remind["last_run"].endswith(moment.strftime("%z")[:3] + ":00")  # the school's offset
    never = rows["feedback"]
    assert (never["last_run"], never["last_result"]) == (None, "never")
    assert datetime.fromisoformat(never["next_run"]) == moment + timedelta(minutes=1)

    table = ptm_sync(s.config, "jobs", env=at(moment)).stdout.splitlines()
    assert table[0].split() == ["name", "last_run", "next_run", "last_result"]
    assert any(line.split()[0] == "remind" and line.endswith("ok") for line in table[2:])
    assert any(line.split()[:2] == ["purge", "never"] for line in table[2:])


def test_an_unknown_job_is_a_usage_error_naming_the_jobs(school: tuple[School, SmtpSink]) -> None:
    s, _ = school
    done = ptm_sync(s.config, "jobs", "run", "remnd")
    assert done.returncode == 2
    for name in ("open", "expire", "remind", "complete", "feedback", "digest", "purge"):
        assert name in done.stderr
    assert ptm_sync(s.config, "jobs", "--format", "json").stdout.count('"never"') == 7
