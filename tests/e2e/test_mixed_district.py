"""A district whose teachers are on every calendar system at once (issue 8, item 11).

One school: Ada on CalDAV (Radicale), Grace on Microsoft 365 (the Graph fake over TLS), Gia
on Google Workspace (the Calendar API fake), Ed on Exchange (the EWS fake over TLS, OAuth),
and the school
events feed blocking everybody.  Video links are ``auto``: Teams for Grace, Meet for Gia,
Jitsi for the others.  The story: a sync reads everybody; a parent is invited to one meeting
with each teacher and accepts each; the outbox writes every event into its teacher's own
calendar (with the Teams and Meet links the systems made, carried by the confirmations);
then each teacher drags their event elsewhere in their own calendar, and the next sync sees
every move.  Everything above ``connectors/`` runs the same code for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from exchangelib.protocol import close_connections
from sqlalchemy import select

from ptm_sync.adapters.store import Database, MeetingHistory, Outbox
from ptm_sync.app import outbox
from ptm_sync.app.outbox.deliverers import CalendarDeliverer
from ptm_sync.app.periods import ensure_periods
from ptm_sync.app.roster_import import apply_roster
from ptm_sync.app.sync import Connectors, sync
from ptm_sync.config.settings import AccountConfig, Config, parse
from ptm_sync.core.booking.notices import email_of
from ptm_sync.core.model import MeetingState
from ptm_sync.core.roster.parse import (
    Roster,
    RosterGuardian,
    RosterLink,
    RosterStudent,
    RosterTeacher,
)
from tests.contract.system_caldav import move_event
from tests.contract.system_ews import account_config
from tests.support import fake_ews, fake_google, fake_graph
from tests.support.booking import NOW, PAT, SeededSchool, config_text, parse_email
from tests.support.caldav_servers import EmbeddedCalDAV, account_for, make_calendar
from tests.support.feed_server import FeedServer, vevent
from tests.support.mailservers import make_tls_material

ADA = "ada@lincoln.example.org"  # CalDAV
GRACE = "grace@lincoln.example.org"  # Microsoft 365
GIA = "gia@lincoln.example.org"  # Google Workspace
ED = "ed@lincoln.example.org"  # Exchange on premises
TEACHERS = (ADA, GRACE, GIA, ED)

pytestmark = pytest.mark.radicale


@dataclass
class District:
    """The running systems, the school's config and a teacher's hand in each system."""

    config: Config
    school: SeededSchool
    #: teacher -> (account id, calendar)
    where: dict[str, tuple[str, str]]
    #: teacher -> "drag the event at href to start..end" in that teacher's own system
    move: dict[str, Callable[[str, datetime, datetime], None]]
    graph: fake_graph.FakeGraph
    google: fake_google.FakeGoogle
    exchange: fake_ews.FakeEWS


@contextmanager
def district(
    db: Database, tmp_path: Path, radicale: EmbeddedCalDAV, feed: FeedServer
) -> Iterator[District]:
    with ExitStack() as stack:
        graph = stack.enter_context(fake_graph.running(tmp_path))
        google = stack.enter_context(fake_google.running())
        (tmp_path / "exchange").mkdir()
        exchange = stack.enter_context(
            fake_ews.running(tls=make_tls_material(tmp_path / "exchange"))
        )
        stack.callback(close_connections)
        exchange.add_mailbox(ED)
        key = fake_google.make_service_account(tmp_path, google.token_url)
        google.register_key(key)
        where = {
            ADA: ("dav", make_calendar(radicale)),
            GRACE: ("m365", graph.add_mailbox(GRACE)),
            GIA: ("google", google.add_calendar(GIA)),
            ED: ("exchange", ED),
        }
        accounts = (
            account_for(radicale),
            graph.account(),
            AccountConfig(
                id="google",
                type="google",
                service_account_file=key.path,
                api_url=google.api_url,
                token_url=google.token_url,
            ),
            account_config(exchange, id="exchange"),
            AccountConfig(id="events", type="ics", url=feed.url + "events.ics", blocks="everyone"),
        )
        base = parse(config_text(video='provider = "auto"\nfallback = "jitsi"'))
        config = replace(base, accounts=accounts)
        teachers = [
            (ADA, "Ada Lovelace"),
            (GRACE, "Grace Hopper"),
            (GIA, "Gia Rossi"),
            (ED, "Ed Codd"),
        ]
        apply_roster(
            db,
            Roster(
                teachers=tuple(
                    RosterTeacher(
                        email=e,
                        name=n,
                        account=where[e][0],
                        calendar=where[e][1],
                        room="",
                        booking_address=None,
                    )
                    for e, n in teachers
                ),
                students=(RosterStudent("S1", "Mia Johnson", ""),),
                guardians=(RosterGuardian(PAT, "Pat Johnson"),),
                links=tuple(RosterLink(PAT, "S1", e) for e, _ in teachers),
            ),
        )
        with db.write() as session:
            ensure_periods(session, config)
        families = [("S1", "Mia Johnson", PAT, "Pat Johnson", [e for e, _ in teachers])]
        school = SeededSchool(db, config, NOW, families)
        move = {
            ADA: lambda href, s, e: move_event(radicale, href, s, e),
            GRACE: lambda href, s, e: graph.teacher_moves(GRACE, href, s, e),
            GIA: lambda href, s, e: google.teacher_moves(GIA, href, s, e),
            ED: lambda href, s, e: exchange.move(ED, href, s, e),
        }
        yield District(config, school, where, move, graph, google, exchange)


def test_one_school_on_every_calendar_system(
    db: Database, tmp_path: Path, radicale_server: EmbeddedCalDAV, feed_server: FeedServer
) -> None:
    (tmp_path / "radicale").mkdir(exist_ok=True)
    with district(db, tmp_path, radicale_server, feed_server) as d:
        school = d.school
        fire_drill = school.slot(6)
        feed_server.add("events.ics", vevent(fire_drill.start, fire_drill.end, summary="Drill"))
        # Grace's own appointment, in her Microsoft 365 calendar.
        busy = school.slot(7)
        d.graph.add_event(GRACE, busy.start, busy.end)

        connectors = Connectors(d.config)
        clock = [NOW]

        def sync_all() -> None:
            results = sync(db, d.config, connectors, now=clock[0])
            assert [r.error for r in results] == [""] * len(results), results
            assert {r.teacher for r in results} >= set(TEACHERS)

        sync_all()
        for teacher in TEACHERS:
            assert fire_drill.start not in school.free_starts(teacher), teacher
        assert busy.start not in school.free_starts(GRACE)
        assert busy.start in school.free_starts(ADA)

        # One meeting with each teacher; Pat accepts each.
        first = {ADA: 0, GRACE: 4, GIA: 8, ED: 2}  # apart: the family needs its gap
        meetings = {t: school.propose(t, PAT, slot=first[t]) for t in TEACHERS}
        for teacher in (ADA, ED):  # Jitsi, the fallback: in the invitation already
            assert meetings[teacher].video_url.startswith("https://meet.lincoln.example.org/ptm-")
        assert meetings[GRACE].video_url == meetings[GIA].video_url == ""  # made at confirmation
        for meeting in meetings.values():
            assert school.deliver(school.reply(meeting, "ACCEPTED")).reason == "accepted"

        sent: list[tuple[int | None, bytes]] = []

        def email(row: Outbox) -> None:
            sent.append((row.meeting_id, email_of(outbox.payload(row))))

        clock[0] += timedelta(hours=1)
        deliverers = {
            outbox.EMAIL: email,
            outbox.CALENDAR: CalendarDeliverer(db, d.config, connectors, lambda: clock[0]),
        }
        report = outbox.flush(db, deliverers, clock=lambda: clock[0])
        assert report.dead == 0 and report.retried == 0, report

        written = {t: school.meeting(m.id) for t, m in meetings.items()}
        for teacher, meeting in written.items():
            assert meeting.remote_href and meeting.remote_etag, teacher
        teams = written[GRACE].video_url
        meet = written[GIA].video_url
        assert teams and "teams" in teams.lower()
        assert meet and "meet.google.com" in meet
        graph_event = d.graph.event(GRACE, written[GRACE].remote_href or "")
        assert graph_event.online and graph_event.attendees == []
        google_event = d.google.events_of(GIA)[written[GIA].remote_href or ""]
        assert "attendees" not in google_event or google_event["attendees"] == []
        for teacher, link in ((GRACE, teams), (GIA, meet)):
            last = [raw for mid, raw in sent if mid == meetings[teacher].id][-1]
            message = parse_email(last)
            plain = next(
                p.get_content() for p in message.walk() if p.get_content_type() == "text/plain"
            )
            assert message["Subject"].startswith("Confirmed") and link in plain, teacher

        # Each teacher drags their event to another time in their own calendar.
        moves = {ADA: 11, GRACE: 5, GIA: 9, ED: 1}
        for teacher in TEACHERS:
            later = school.slot(moves[teacher])
            d.move[teacher](written[teacher].remote_href or "", later.start, later.end)
        clock[0] += timedelta(minutes=5)
        sync_all()
        for teacher in TEACHERS:
            moved = school.meeting(meetings[teacher].id)
            later = school.slot(moves[teacher])
            assert (moved.start, moved.end) == (later.start, later.end), teacher
            assert moved.state == MeetingState.CONFIRMED.value
        with db.read() as session:
            actors = session.scalars(
                select(MeetingHistory.meeting_id).where(MeetingHistory.actor == "teacher")
            ).all()
        assert set(actors) == {m.id for m in meetings.values()}
        connectors.close()
