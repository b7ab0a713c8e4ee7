"""The scheduled jobs in one database, in-process (DESIGN §3 "Other life-cycle jobs").

``remind``, ``complete`` and ``feedback`` decide each meeting through the booking core:
each email once however often a job runs; the lease on a job's row keeps a second process
out while one runs it; every run's result is recorded.  On SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Feedback, JobRun, Meeting
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.adapters.video.providers import provider_for
from ptm_sync.app import jobs
from ptm_sync.app.channels import staff
from ptm_sync.app.jobs import aftercare
from ptm_sync.app.outbox.leases import Owner
from ptm_sync.config.settings import parse
from ptm_sync.core import trust
from ptm_sync.core.booking.letters import feedback_address
from tests.support.booking import ADA, ORGANIZER, PAT, PERIODS, SAM, SeededSchool, race
from tests.support.booking_address import booking_request

ELSEWHERE = Owner("another-host", 4242, 1.0)


def run(school: SeededSchool, name: str, at: datetime, owner: Owner | None = None) -> jobs.Ran:
    return jobs.run(
        school.db, school.config, jobs.find(name), now=at, video=school.video, owner=owner
    )


def summary(ran: jobs.Ran) -> str:
    assert ran.done is not None, f"{ran.job.name} was skipped: {ran.busy} runs it"
    return ran.done.summary


def confirmed(school: SeededSchool, slot: int = 0) -> int:
    meeting = school.propose(ADA, PAT, slot=slot)
    assert school.deliver(school.reply(meeting, "ACCEPTED")).outcome == "applied"
    return meeting.id


def of_kind(school: SeededSchool, meeting_id: int, template: str) -> list[str]:
    return [e.key for e in school.emails(meeting_id) if e.key.startswith(f"email:<{template}.")]


def test_a_reminder_goes_once_per_time_within_reminder_hours_and_never_after_the_start(
    db: Database,
) -> None:
    school = SeededSchool.create(db)
    meeting_id = confirmed(school)
    start = school.slot(0).start
    assert summary(run(school, "remind", start - timedelta(hours=25))) == "0 reminders queued"
    assert summary(run(school, "remind", start - timedelta(hours=2))) == "1 reminder queued"
    assert summary(run(school, "remind", start - timedelta(hours=1))) == "0 reminders queued"
    [reminder] = [e for e in school.emails(meeting_id) if e.key.startswith("email:<reminder.")]
    assert reminder.to == [PAT] and reminder.method is None
    assert school.meeting(meeting_id).reminded_start == start

    # Staff move it: the family is reminded of the new time, once.
    later = school.slot(6)
    staff.reschedule(
        db, school.config, meeting_id, later.start, now=start - timedelta(hours=2),
        video=school.video,
    )  # fmt: skip
    assert summary(run(school, "remind", start - timedelta(minutes=90))) == "1 reminder queued"
    assert summary(run(school, "remind", start - timedelta(minutes=80))) == "0 reminders queued"
    assert len(of_kind(school, meeting_id, "reminder")) == 2
    assert school.meeting(meeting_id).reminded_start == later.start


def test_no_reminder_once_the_meeting_has_started(db: Database) -> None:
    school = SeededSchool.create(db)
    meeting_id = confirmed(school)
    start = school.slot(0).start
    assert summary(run(school, "remind", start + timedelta(minutes=1))) == "0 reminders queued"
    assert of_kind(school, meeting_id, "reminder") == []


def test_complete_after_the_end_then_feedback_once_with_the_reply_address(db: Database) -> None:
    school = SeededSchool.create(db)
    meeting_id = confirmed(school)
    end = school.slot(0).end
    assert summary(run(school, "complete", end - timedelta(minutes=1))) == "0 meetings completed"
    assert summary(run(school, "feedback", end)) == "0 feedback requests queued"
    assert summary(run(school, "complete", end)) == "1 meeting completed"
    assert school.meeting(meeting_id).state == "completed"
    assert summary(run(school, "complete", end)) == "0 meetings completed"

    assert summary(run(school, "feedback", end + timedelta(minutes=15))) == (
        "1 feedback request queued"
    )
    assert summary(run(school, "feedback", end + timedelta(minutes=30))) == (
        "0 feedback requests queued"
    )
    with db.read() as session:
        token = trust.feedback_token(signing_secret(session), school.meeting(meeting_id).uid)
    assert school.meeting(meeting_id).feedback_token == token
    [request] = [e for e in school.emails(meeting_id) if "<feedback_request." in e.key]
    assert request.to == [PAT]
    # No plus addressing: the reply comes to the organizer, matched by In-Reply-To.
    assert str(request.message["Reply-To"]) == ORGANIZER
    assert "replying to this email" in str(request.message.get_body(("plain",)))


def test_feedback_is_not_asked_about_a_meeting_long_past(db: Database) -> None:
    school = SeededSchool.create(db)
    meeting_id = confirmed(school)
    end = school.slot(0).end
    run(school, "complete", end)
    assert summary(run(school, "feedback", end + timedelta(days=15))) == (
        "0 feedback requests queued"
    )
    assert school.meeting(meeting_id).feedback_token is None


def test_a_run_records_its_result_and_a_held_lease_keeps_another_process_out(
    db: Database,
) -> None:
    school = SeededSchool.create(db)
    now = school.now
    assert {s.name: s.last_result for s in jobs.statuses(db, now)}["remind"] == "never"
    # Another host runs `remind` now: its lease holds until it runs out.
    with db.write() as session:
        session.add(JobRun(name="remind", running_by=ELSEWHERE.token,
                           running_until=now + timedelta(minutes=5)))  # fmt: skip
    skipped = run(school, "remind", now)
    assert skipped.done is None and skipped.busy == ELSEWHERE.token
    assert {s.name: s.last_run for s in jobs.statuses(db, now)}["remind"] is None

    ran = run(school, "remind", now + timedelta(minutes=6))  # the lease ran out
    assert ran.done is not None
    status = {s.name: s for s in jobs.statuses(db, now + timedelta(minutes=7))}["remind"]
    assert (status.last_run, status.last_result) == (now + timedelta(minutes=6), "ok")
    assert status.next_run == now + timedelta(minutes=11) and status.running_by is None
    assert [j.name for j in jobs.due(db, now + timedelta(minutes=10))] == [
        n for n in jobs.NAMES if n != "remind"
    ]


def test_a_failed_run_is_recorded_as_a_sentence(db: Database) -> None:
    school = SeededSchool.create(db)

    def broken(_ctx: jobs.JobContext) -> jobs.Done:
        raise ValueError("a bug")

    job = jobs.Job(jobs.JobName.COMPLETE, timedelta(minutes=5), "test", broken)
    with pytest.raises(ValueError):
        jobs.run(db, school.config, job, now=school.now, video=school.video)
    status = {s.name: s for s in jobs.statuses(db, school.now)}["complete"]
    assert status.last_result == "failed: internal error (ValueError); see the log"
    assert status.running_by is None  # the lease was given back


def test_every_job_runs_without_mail(tmp_path: Path) -> None:
    """A school that only publishes availability: the jobs have nothing to do and fail
    at nothing."""
    config = parse(
        f"""
[school]
name = "Lincoln High"
timezone = "America/New_York"
contact = "office@lincoln.example.org"
[database]
url = "sqlite:///{tmp_path / "ptm.db"}"
{PERIODS}
"""
    )
    db = Database(config.database.url)
    db.migrate()
    try:
        now = datetime(2027, 4, 12, 20, tzinfo=UTC)
        for job in jobs.JOBS:
            ran = jobs.run(db, config, job, now=now, video=provider_for(config.video))
            assert ran.done is not None and ran.done.result == "ok", (job.name, ran)
    finally:
        db.dispose()


def test_a_feedback_reply_by_in_reply_to_or_the_address_is_recorded_not_decided(
    db: Database,
) -> None:
    school = SeededSchool.create(db)
    meeting_id = confirmed(school)
    end = school.slot(0).end
    run(school, "complete", end)
    run(school, "feedback", end)
    [request] = [e for e in school.emails(meeting_id) if "<feedback_request." in e.key]
    token = school.meeting(meeting_id).feedback_token
    assert token is not None

    def reply(n: int, text: str, *, to: str, in_reply_to: str = "") -> bytes:
        head = [
            f"From: Pat Johnson <{PAT}>",
            f"To: {to}",
            f"Message-ID: <fb-{n}@example.net>",
            "Subject: Re: How was your meeting with Ada Lovelace?",
            "Content-Type: text/plain; charset=utf-8",
        ]
        if in_reply_to:
            head.append(f"In-Reply-To: {in_reply_to}")
        return ("\r\n".join(head) + "\r\n\r\n" + text).encode()

    quoted = "Very helpful.\r\n\r\nOn Tue, Pat wrote:\r\n> Please tell us how it went\r\n"
    by_thread = reply(1, quoted, to=ORGANIZER, in_reply_to=str(request.message["Message-ID"]))
    outcome = school.deliver(by_thread, at=timedelta(hours=20))
    assert (outcome.outcome, outcome.reason) == ("feedback", "feedback recorded")
    by_address = reply(2, "Ada was great.", to=feedback_address(ORGANIZER, token))
    assert school.deliver(by_address, at=timedelta(hours=21)).outcome == "feedback"
    # The same reply again (another copy, same Message-ID): recorded once.
    again = by_address.replace(b"To: ", b"Cc: someone@example.net\r\nTo: ")
    assert school.deliver(again, at=timedelta(hours=22)).outcome == "duplicate"
    with db.read() as session:
        rows = list(session.scalars(select(Feedback).order_by(Feedback.id)))
    assert [(r.meeting_id, r.text) for r in rows] == [
        (meeting_id, "Very helpful."),
        (meeting_id, "Ada was great."),
    ]
    assert {r.guardian_id for r in rows} == {school.meeting(meeting_id).guardian_id}
    assert school.meeting(meeting_id).state == "completed"


def test_two_runs_past_the_lease_at_once_still_send_each_email_once(db: Database) -> None:
    """A lease that ran out while its run went on (or two clocks apart): the work itself
    is idempotent, each meeting decided under its row lock."""
    school = SeededSchool.create(db)
    ids = [confirmed(school, slot) for slot in (0, 2, 4)]
    start = school.slot(0).start
    ctx = jobs.JobContext(db, school.config, start - timedelta(hours=2), school.video)
    first, second = race([lambda: aftercare.remind(ctx), lambda: aftercare.remind(ctx)])
    counts = sorted(int(d.summary.split()[0]) for d in (first, second))
    assert sum(counts) == 3, (first, second)
    for meeting_id in ids:
        assert len(of_kind(school, meeting_id, "reminder")) == 1


def test_the_reminder_says_how_to_cancel_or_move_for_who_organizes_the_event(
    db: Database,
) -> None:
    """Our invitation is answered (Decline, Propose new time); a parent who invited the
    teacher's booking address changes or deletes their own event."""
    school = SeededSchool.create(db)
    ours = confirmed(school, 0)
    outcome = school.deliver(booking_request(school, SAM, ADA, slot=7))
    assert outcome.outcome == "applied"
    theirs = next(
        m.id for m in _meetings(school) if m.guardian_id != school.meeting(ours).guardian_id
    )
    run(school, "remind", school.slot(0).start - timedelta(hours=3))
    texts = {}
    for meeting_id in (ours, theirs):
        [sent] = [e for e in school.emails(meeting_id) if e.key.startswith("email:<reminder.")]
        texts[meeting_id] = str(sent.message.get_body(("plain",)).get_content())
    assert "answer the invitation in your calendar (Decline, or Propose new time)" in texts[ours]
    assert "change or delete the event in your calendar" in texts[theirs]
    assert "Propose new time" not in texts[theirs]


def _meetings(school: SeededSchool) -> list[Meeting]:
    with school.db.read() as session:
        return list(session.scalars(select(Meeting).order_by(Meeting.id)))
