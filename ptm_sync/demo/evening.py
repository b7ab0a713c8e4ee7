"""The demo's second half: the evening itself and after it (issue 16).

With the commands' clock set forward (``PTM_SYNC_NOW``, :meth:`ptm_sync.app.context.App.now`)
the demo shows, without waiting for the day: the reminders the day before, a teacher running
late (one family's meeting moves, another family is told), the meetings completed after the
evening and a no-show marked by the office, the report with uptake, and a purge of the
personal data that leaves the report's totals as they were.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from ptm_sync.app.context import NOW_ENV
from ptm_sync.demo import school
from ptm_sync.demo.embedded import SmtpSink

#: Runs one `ptm-sync` command as the user would type it and returns its output.
Run = Callable[..., str]
Say = Callable[[str], None]

#: The teacher who runs late in the demo, from when, and by how much: her 17:15 meeting
#: cannot move (that family has another meeting soon after), her 18:30 one can.
LATE_TEACHER = school.TEACHERS[2]  # Grace Hopper
LATE_FROM, LATE_MINUTES = time(17, 0), 45


@contextlib.contextmanager
def clock(moment: datetime) -> Iterator[None]:
    """Run the commands inside as if it were ``moment`` (aware)."""
    saved = os.environ.get(NOW_ENV)
    os.environ[NOW_ENV] = moment.isoformat()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(NOW_ENV, None)
        else:
            os.environ[NOW_ENV] = saved


def _body(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(("plain",))
    return part.get_content() if part is not None else ""


def _subject(raw: bytes) -> str:
    return str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"] or "")


def _show_new_mail(say: Say, sink: SmtpSink, since: int, *, body_of: str = "") -> None:
    """One line per email the sink received since ``since``; the text of the first whose
    subject starts with ``body_of``."""
    shown = False
    for _, recipients, raw in sink.messages[since:]:
        subject = _subject(raw)
        say(f"  to {recipients[0]:<27} {subject}")
        if body_of and not shown and subject.startswith(body_of):
            shown = True
            for line in _body(raw).strip().splitlines():
                say(f"  {'':<30} | {line}" if line else f"  {'':<30} |")


def the_evening(run: Run, say: Say, *, config: object, sink: SmtpSink, today: date) -> None:
    """The reminders, the evening with a teacher running late, completion and a no-show,
    the report, and a purge.  ``config``: the demo's config path (for ``run``)."""
    tz = ZoneInfo("America/New_York")
    first, second = school.evenings(today)
    morning = datetime.combine(first, time(8, 0), tzinfo=tz)

    say("\n== The morning of the first evening: reminders (`jobs run remind`, every 5 minutes")
    say("   in the daemon); each confirmed meeting is reminded once, reminder_hours before.")
    sent = len(sink.messages)
    with clock(morning):
        run(config, "jobs", "run", "remind")
        run(config, "jobs", "run", "remind")  # again: nothing more is sent
    _show_new_mail(say, sink, sent, body_of="Reminder")

    say(f"\n== On the evening {LATE_TEACHER.name} is running {LATE_MINUTES} minutes late:")
    say("   the meetings that can move get a calendar update (and move in her calendar);")
    say("   a family whose next meeting is too close to move is told by email.")
    sent = len(sink.messages)
    late_from = datetime.combine(first, LATE_FROM, tzinfo=tz)
    with clock(late_from - timedelta(minutes=5)):
        run(
            config,
            "late",
            "--teacher",
            LATE_TEACHER.email,
            "--minutes",
            str(LATE_MINUTES),
            "--from",
            f"{LATE_FROM:%H:%M}",
        )
    _show_new_mail(say, sink, sent, body_of="Running late")

    say("\n== After both evenings: meetings that ended are completed; the office marks")
    say("   a family that did not come as a no-show; feedback is asked for.")
    after = datetime.combine(second, time(20, 0), tzinfo=tz)
    with clock(after):
        run(config, "jobs", "run", "complete")
        meetings = json.loads(run(config, "meetings", "--format", "json", quiet=True))
        done = [m for m in meetings if m["state"] == "completed"]
        if done:
            missed = done[0]
            run(
                config,
                "meetings",
                "mark",
                str(missed["id"]),
                "--no-show",
                "--reason",
                "nobody joined the call",
            )
        sent = len(sink.messages)
        run(config, "jobs", "run", "feedback")
        _show_new_mail(say, sink, sent, body_of="How was your meeting")
        run(config, "jobs")
        say("\nThe record, with uptake (households booked of those with a student of the teacher):")
        before = run(config, "report")
        run(config, "report", "--unbooked")

    say("\n== Retention: the personal data of meetings that ended is purged; the counts stay.")
    with clock(after + timedelta(days=1)):
        run(config, "purge", "--before", f"{second + timedelta(days=1):%Y-%m-%d}")
        again = run(config, "report", quiet=True)
    say(
        "  the report after the purge is the same as before."
        if again == before
        else "  the report changed after the purge: please report this as a bug."
    )
