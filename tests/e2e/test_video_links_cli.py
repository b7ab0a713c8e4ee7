"""The parent's confirmation carries the link the teacher's calendar system made, through
the command line (issue 15, DESIGN §3 "In person or video").

A Microsoft 365 school (``[video] provider = "teams"``, Graph fake) and a Google school
(``provider = "meet"``, Calendar API fake), each with rooms in the roster and a ``video``
period: a parent accepts by email, ``outbox flush`` writes the teacher's event (the system
makes the Teams or Meet link with it) and only then sends the confirmation, which carries
that link and not the room.  A CalDAV school with ``format = "in_person"`` confirms at once
with the room and no link.  Everything runs the real `ptm-sync` in a subprocess, the real
msal / google-auth / requests underneath, on the wire fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from ptm_sync.demo import parents
from tests.support import fake_google, fake_graph
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.factories import make_invitation
from tests.support.mailservers import SmtpSink
from tests.support.school import (
    TEACHERS,
    TZ,
    VIDEO_BASE,
    School,
    calendar_part,
    now_utc,
    plain_body,
    to_address,
)

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ADA = TEACHERS[0][0]
PAT = "pat@example.net"


def _video_school(
    folder: Path,
    caldav: EmbeddedCalDAV,
    port: int,
    provider: str,
    accounts: str,
    account: str,
    calendar_of: Callable[[str], str],
) -> School:
    """A school with a ``video`` period whose teachers (rooms in the roster) are all on
    ``account``, each in the calendar ``calendar_of`` made for them."""
    return School(
        folder,
        caldav,
        port,
        video=f'provider = "{provider}"\nfallback = "none"',
        accounts=accounts,
        elsewhere={e: (account, calendar_of(e)) for e, _, _ in TEACHERS},
        period_format="video",
    )


def graph_school(
    stack: ExitStack, folder: Path, caldav: EmbeddedCalDAV, port: int
) -> tuple[School, Callable[[str], bool]]:
    graph = stack.enter_context(fake_graph.running(folder))
    keys = graph.account()
    assert keys.client_secret is not None
    accounts = f"""
[[accounts]]
id = "m365"
type = "graph"
tenant_id = "{keys.tenant_id}"
client_id = "{keys.client_id}"
client_secret = "{keys.client_secret.reveal()}"
graph_url = "{keys.graph_url}"
authority_url = "{keys.authority_url}"
ca_file = "{keys.ca_file}"
"""
    school = _video_school(folder, caldav, port, "teams", accounts, "m365", graph.add_mailbox)

    def online(link: str) -> bool:
        """Ada's mailbox holds one online meeting, with that link."""
        events = list(graph.mailboxes[ADA].values())
        return [(e.online, e.join_url) for e in events if not e.deleted] == [(True, link)]

    return school, online


def google_school(
    stack: ExitStack, folder: Path, caldav: EmbeddedCalDAV, port: int
) -> tuple[School, Callable[[str], bool]]:
    google = stack.enter_context(fake_google.running())
    key = fake_google.make_service_account(folder, google.token_url)
    google.register_key(key)
    accounts = f"""
[[accounts]]
id = "workspace"
type = "google"
service_account_file = "{key.path}"
api_url = "{google.api_url}"
token_url = "{google.token_url}"
"""
    school = _video_school(folder, caldav, port, "meet", accounts, "workspace", google.add_calendar)

    def online(link: str) -> bool:
        """Ada's calendar holds one event with a conference, with that link."""
        events = [e for e in google.events_of(ADA).values() if e.get("status") != "cancelled"]
        return [link in str(e.get("conferenceData", "")) for e in events] == [True]

    return school, online


def _accept_and_flush(school: School, sink: SmtpSink) -> tuple[dict[str, object], list[bytes]]:
    """Pat accepts the invitation to the meeting with Ada; the outbox is flushed.  Returns
    the meeting (as `meetings --format json` shows it) and what reached Pat afterwards."""
    meeting, invitation = make_invitation(school, sink, teacher=ADA, guardian=PAT)
    before = len(sink.received)
    reply = parents.reply("outlook", invitation, "ACCEPTED", tz=TZ, now=now_utc())
    assert school.run("mail", "deliver", stdin=reply).out.strip() == "applied (accepted)"
    school.run("outbox", "flush")
    [after] = [m for m in school.meetings(teacher=ADA) if m["uid"] == meeting["uid"]]
    return after, [m.raw for m in sink.received[before:] if to_address(m.raw) == PAT]


@pytest.mark.parametrize("system", ["graph", "google"])
def test_the_confirmation_carries_the_link_the_teachers_system_made_not_the_room(
    system: str,
    tmp_path: Path,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
) -> None:
    sink = smtp_sink(mode="plain")
    make = graph_school if system == "graph" else google_school
    with ExitStack() as stack:
        school, online = make(stack, tmp_path, radicale_server, sink.port)
        school.setup()
        meeting, to_pat = _accept_and_flush(school, sink)

        link = str(meeting["video_url"])
        expected = "teams.microsoft.com" if system == "graph" else "meet.google.com"
        assert expected in link, meeting
        assert meeting["state"] == "confirmed"
        # The teacher's event was made as an online meeting by the system itself.
        assert online(link)
        # One confirmation, after the write, with the system's link and not the room.
        [confirmation] = to_pat
        cal = calendar_part(confirmation)
        event = cal.events[0]
        assert (str(cal["METHOD"]), str(event["STATUS"])) == ("REQUEST", "CONFIRMED")
        assert link in str(event["LOCATION"]) and link in plain_body(confirmation)
        assert "Room 101" not in str(event["LOCATION"])
        assert "Room 101" not in plain_body(confirmation)


def test_in_person_the_confirmation_carries_the_room_and_no_link(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    school = School(tmp_path, radicale_server, sink.port, period_format="in_person")
    school.setup()
    meeting, to_pat = _accept_and_flush(school, sink)
    assert meeting["state"] == "confirmed" and meeting["video_url"] == ""
    [confirmation] = to_pat
    event = calendar_part(confirmation).events[0]
    assert str(event["STATUS"]) == "CONFIRMED"
    assert "Room 101" in str(event["LOCATION"])
    assert VIDEO_BASE not in confirmation.decode(errors="replace")
    assert "CONFERENCE" not in event
