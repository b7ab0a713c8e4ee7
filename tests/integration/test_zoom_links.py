"""Zoom links (issue 8, item 6): made through the outbox when a meeting is confirmed,
carried by the confirmation, removed when the meeting is cancelled; the Zoom client on a
fake Zoom API that checks what it is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connectors.memory import MIRRORED_SYSTEM, MemoryCalendars, MemoryConnector
from ptm_sync.adapters.store import Database, Meeting, Outbox, Teacher
from ptm_sync.adapters.video.zoom import ZoomClient, meeting_id_of
from ptm_sync.app import outbox
from ptm_sync.app.outbox.deliverers import CalendarDeliverer, VideoDeliverer
from ptm_sync.app.sync import Connectors
from ptm_sync.config.settings import Secret, VideoConfig
from ptm_sync.core.booking.events import StaffCancel
from ptm_sync.core.booking.notices import email_of
from ptm_sync.core.errors import AuthFailed, Unavailable
from tests.support.booking import ADA, PAT, SeededSchool, parse_email
from tests.support.fake_zoom import ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET, FakeZoom

START = datetime(2027, 4, 13, 13, 0, tzinfo=UTC)


def client(zoom: FakeZoom, secret: str = CLIENT_SECRET) -> ZoomClient:
    return ZoomClient(
        VideoConfig(
            provider="zoom",
            zoom_account_id=ACCOUNT_ID,
            zoom_client_id=CLIENT_ID,
            zoom_client_secret=Secret(key="video.zoom_client_secret", value=secret),
            zoom_api_url=zoom.api_url,
            zoom_token_url=zoom.token_url,
        )
    )


def test_a_meeting_is_made_and_removed_with_what_zoom_asks_for(fake_zoom: FakeZoom) -> None:
    zoom = client(fake_zoom)
    made = zoom.create_meeting("Parent-teacher conference, Lincoln", START, 15)
    assert meeting_id_of(made.join_url) == made.id and made.id in fake_zoom.meetings
    (_, token_path, _), (method, path, body) = fake_zoom.log
    assert token_path == "/oauth/token" and (method, path) == ("POST", "/v2/users/me/meetings")
    assert body == {
        "topic": "Parent-teacher conference, Lincoln",
        "type": 2,
        "start_time": "2027-04-13T13:00:00Z",
        "duration": 15,
        "timezone": "UTC",
        "settings": {"join_before_host": False, "waiting_room": True},
    }
    zoom.delete_meeting(made.id)
    assert fake_zoom.meetings == {}
    zoom.delete_meeting(made.id)  # already gone: success


def test_an_expired_token_is_renewed_once_and_a_wrong_secret_is_said_plainly(
    fake_zoom: FakeZoom,
) -> None:
    zoom = client(fake_zoom)
    zoom.create_meeting("t", START, 15)
    fake_zoom.expire_tokens()
    zoom.create_meeting("t", START, 15)  # renewed
    tokens = [p for _, p, _ in fake_zoom.log if p == "/oauth/token"]
    assert len(tokens) == 2
    wrong = client(fake_zoom, secret="not-it")
    with pytest.raises(AuthFailed, match="zoom_client_secret") as caught:
        wrong.create_meeting("t", START, 15)
    assert "not-it" not in str(caught.value)
    assert wrong.check() and "refused" in wrong.check()[0]
    assert zoom.check() == []


def test_throttling_names_its_wait(fake_zoom: FakeZoom) -> None:
    zoom = client(fake_zoom)
    waits: list[float] = []
    zoom.retry.sleep = waits.append
    zoom.create_meeting("t", START, 15)
    fake_zoom.fail_next(429, {"Retry-After": "2"})
    zoom.create_meeting("t", START, 15)
    assert waits == [2.0]
    fake_zoom.fail_next(429, {"Retry-After": "3600"})
    with pytest.raises(Unavailable) as caught:
        zoom.create_meeting("t", START, 15)
    assert caught.value.retry_after == 3600


def test_a_confirmed_meeting_gets_its_zoom_link_in_the_confirmation_and_loses_it_on_cancel(
    db: Database, fake_zoom: FakeZoom
) -> None:
    school = SeededSchool.create(db, video=fake_zoom.video_keys())
    meeting = school.propose(ADA, PAT, slot=0)
    assert school.meeting(meeting.id).video_url == ""  # no link at proposal
    assert school.deliver(school.reply(meeting, "ACCEPTED")).reason == "accepted"

    rows = school.outbox_rows(meeting.id)
    kinds = [r.kind for r in rows if r.state == outbox.PENDING]
    # The Zoom meeting first, then the calendar write; the confirmation, which carries the
    # link, waits for the link (the decision on the made room writes it).
    assert kinds[kinds.index(outbox.VIDEO) :] == [outbox.VIDEO, outbox.CALENDAR]
    assert school.meeting(meeting.id).link_pending

    server = MemoryCalendars(tz=school.config.tz)
    with db.read() as session:
        for teacher in session.scalars(select(Teacher)):
            server.add_calendar(teacher.calendar)
    connectors = Connectors(school.config)
    connectors.provide("dav", MemoryConnector(server, connectors.horizon, MIRRORED_SYSTEM))
    sent: list[bytes] = []
    clock = [school.now + timedelta(hours=1)]

    def email(row: Outbox) -> None:
        sent.append(email_of(outbox.payload(row)))

    deliverers = {
        outbox.EMAIL: email,
        outbox.CALENDAR: CalendarDeliverer(db, school.config, connectors, lambda: clock[0]),
        outbox.VIDEO: VideoDeliverer(db, school.config),
    }
    report = outbox.flush(db, deliverers, clock=lambda: clock[0])
    assert report.dead == 0
    url = school.meeting(meeting.id).video_url
    assert not school.meeting(meeting.id).link_pending
    [zoom_id] = fake_zoom.meetings
    assert meeting_id_of(url) == zoom_id
    confirmation = parse_email(sent[-1])
    assert confirmation["Subject"].startswith("Confirmed")
    parts = {
        p.get_content_type(): p.get_content() for p in confirmation.walk() if not p.is_multipart()
    }
    assert url in parts["text/plain"]
    assert url in parts["text/calendar"].replace("\r\n ", "")  # CONFERENCE / LOCATION
    topic = fake_zoom.meetings[zoom_id]["topic"]
    assert "Pat" not in topic and "Ada" not in topic  # Zoom learns no names
    [written] = [o.ics for c in server.calendars.values() for o in c.objects.values()]
    assert url in written.replace("\r\n ", "")

    with db.write() as session:
        live = session.get(Meeting, meeting.id)
        assert live is not None
        school.applier(clock[0]).handle(session, live, StaffCancel(reason="ill"))
    clock[0] += timedelta(hours=1)
    outbox.flush(db, deliverers, clock=lambda: clock[0])
    assert fake_zoom.meetings == {}
