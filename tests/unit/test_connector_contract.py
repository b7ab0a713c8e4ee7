"""The connector contract (connectors/base.py) kept by the in-memory connector, with either
system's capabilities — no server.  Each rule here is one a real system is held to."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import (
    CalendarConnector,
    CalendarRef,
    Capability,
    FreeBusy,
    Horizon,
    MeetingEvent,
    RemoteRef,
)
from connectors.memory import MIRRORED_SYSTEM, SERVER_SYSTEM, MemoryCalendars, MemoryConnector
from ptm_sync.core.errors import NotFound, SyncTokenInvalid, Unavailable, WrongEtag

START = datetime(2027, 4, 13, 13, 0, tzinfo=UTC)
HORIZON = Horizon(START - timedelta(days=1), START + timedelta(days=2))
EVENT = MeetingEvent(
    uid="meeting-1@school.test",
    start=START,
    end=START + timedelta(minutes=15),
    summary="Conference",
)


@pytest.fixture(params=[MIRRORED_SYSTEM, SERVER_SYSTEM], ids=["mirrored", "server"])
def world(request: pytest.FixtureRequest) -> tuple[MemoryCalendars, MemoryConnector]:
    server = MemoryCalendars()
    server.add_calendar("ada")
    return server, MemoryConnector(server, HORIZON, request.param)


def test_it_is_a_calendar_connector_that_declares_what_it_can(
    world: tuple[MemoryCalendars, MemoryConnector],
) -> None:
    _, connector = world
    assert isinstance(connector, CalendarConnector)
    assert Capability.SERVER_FREE_BUSY in connector.capabilities


def test_a_create_is_listed_and_a_retry_of_it_reuses_the_object(
    world: tuple[MemoryCalendars, MemoryConnector],
) -> None:
    server, connector = world
    calendar = server.add_calendar("ada")
    ref = connector.create_event(calendar, EVENT)
    listed = connector.changes(calendar, None)
    assert listed.full and [e.href for e in listed.changed] == [ref.href]
    assert connector.create_event(calendar, EVENT) == ref  # a retry after a crash
    assert connector.changes(calendar, listed.token).changed == ()


def test_updates_take_the_etag_they_last_saw(
    world: tuple[MemoryCalendars, MemoryConnector],
) -> None:
    server, connector = world
    calendar = server.add_calendar("ada")
    ref = connector.create_event(calendar, EVENT)
    hour = timedelta(hours=1)
    later = replace(EVENT, start=START + hour, end=EVENT.end + hour, sequence=1)
    moved = connector.update_event(calendar, ref, later)
    assert moved.href == ref.href and moved.etag != ref.etag
    # Our own write whose new ETag was never recorded: done, not a conflict.
    assert connector.update_event(calendar, ref, later) == moved
    # The teacher's change: refused.
    server.teacher_moves("ada", ref.href, START, START + timedelta(minutes=30))
    with pytest.raises(WrongEtag):
        connector.update_event(calendar, moved, replace(later, sequence=2))
    with pytest.raises(WrongEtag):
        connector.delete_event(calendar, moved)


def test_a_gone_object_is_not_found_to_update_and_nothing_to_delete(
    world: tuple[MemoryCalendars, MemoryConnector],
) -> None:
    server, connector = world
    calendar = server.add_calendar("ada")
    ref = connector.create_event(calendar, EVENT)
    token = connector.changes(calendar, None).token
    server.teacher_deletes("ada", ref.href)
    assert connector.changes(calendar, token).removed == (ref.href,)
    with pytest.raises(NotFound):
        connector.update_event(calendar, ref, EVENT)
    connector.delete_event(calendar, ref)  # absent: success
    connector.delete_event(calendar, RemoteRef("/ada/never.ics", '"9"'))


def test_free_busy_is_clipped_to_the_range_and_counts_our_events(
    world: tuple[MemoryCalendars, MemoryConnector],
) -> None:
    server, connector = world
    calendar = server.add_calendar("ada")
    server.add_busy("ada", START - timedelta(hours=1), START + timedelta(hours=2))
    three = timedelta(hours=3)
    connector.create_event(calendar, replace(EVENT, start=START + three, end=EVENT.end + three))
    empty = server.add_calendar("alan")
    end = START + timedelta(hours=3, minutes=30)
    found = connector.free_busy([calendar, empty], START, end)
    assert found[empty] == FreeBusy()
    ada = found[calendar]
    assert isinstance(ada, FreeBusy) and ada.unknown == ()
    assert sorted((b.start, b.end) for b in ada.busy) == [
        (START, START + timedelta(hours=2)),
        (START + timedelta(hours=3), min(end, EVENT.end + timedelta(hours=3))),
    ]


def test_a_forgotten_token_and_an_outage_are_their_own_errors(
    world: tuple[MemoryCalendars, MemoryConnector],
) -> None:
    server, connector = world
    calendar = server.add_calendar("ada")
    token = connector.changes(calendar, None).token
    assert token is not None
    server.forgotten_before = int(token) + 1
    with pytest.raises(SyncTokenInvalid):
        connector.changes(calendar, token)
    server.down = True
    with pytest.raises(Unavailable):
        connector.free_busy([calendar], START, START + timedelta(hours=1))
    assert connector.check([calendar]) == ["account 'memory': the server is down"]
    server.down = False
    with pytest.raises(NotFound):
        connector.changes(CalendarRef("memory", "nobody"), None)
    assert connector.check([calendar]) == []
