"""Invitations the teacher declined, stored as Nextcloud/sabre store them, on the real
Radicale and Xandikos (DESIGN §5: an occurrence the teacher declined is free).

The teacher is known by the roster email and by the principal's calendar-user-address-set
(RFC 6638 §2.4.1), which the connector looks up only when a listed object holds a declined
attendee, once per collection and principal.  Xandikos's principal gives email addresses
(tests/support/caldav_servers.py sets them); Radicale's gives its own path alone, so there
the roster email is the only address (``server.expect.owner_addresses`` says which).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from connectors.base import CalendarRef, FreeBusy, Horizon
from connectors.caldav import CalDAVConnector
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.ical.busy import busy_times
from tests.support.caldav_servers import EmbeddedCalDAV, account_for, put_ics
from tests.support.calendar_data import (
    DECLINED_INVITATION,
    DECLINED_SCENARIOS,
    PRINCIPAL_ADDRESS,
    ROSTER_EMAIL,
    SCHOOL_TZ,
    SERIES_ONE_DECLINED,
    UNANSWERED_INVITATION,
    WINDOW,
    Scenario,
    ics,
    vevent,
)

HORIZON = Horizon(*WINDOW)


@pytest.fixture
def connector(caldav_server: EmbeddedCalDAV) -> Iterator[CalDAVConnector]:
    conn = CalDAVConnector(account_for(caldav_server, freebusy="local"), SCHOOL_TZ, HORIZON)
    yield conn
    conn.close()


@pytest.fixture
def calendar(caldav_account: AccountConfig, caldav_calendar: str) -> CalendarRef:
    return CalendarRef(caldav_account.id, caldav_calendar)


def spans(found: object) -> list[tuple[object, object, bool]]:
    assert isinstance(found, FreeBusy), found
    return [(b.start, b.end, b.tentative) for b in found.busy]


def needs_principal_addresses(server: EmbeddedCalDAV) -> None:
    if not server.expect.owner_addresses:
        pytest.skip(
            f"{server.kind}'s principal gives no email address: only the roster email can "
            "name the teacher there (the sync passes it)"
        )


@pytest.mark.parametrize("scenario", DECLINED_SCENARIOS, ids=lambda s: s.name)
def test_the_connectors_free_busy_frees_what_the_principal_declined(
    caldav_server: EmbeddedCalDAV,
    connector: CalDAVConnector,
    calendar: CalendarRef,
    scenario: Scenario,
) -> None:
    needs_principal_addresses(caldav_server)
    put_ics(caldav_server, calendar.calendar, scenario.ics)
    found = connector.free_busy([calendar], *WINDOW)[calendar]
    assert spans(found) == scenario.expected_spans


@pytest.mark.parametrize("scenario", DECLINED_SCENARIOS, ids=lambda s: s.name)
def test_the_mirror_with_the_teachers_addresses_frees_what_she_declined(
    caldav_server: EmbeddedCalDAV,
    connector: CalDAVConnector,
    calendar: CalendarRef,
    scenario: Scenario,
) -> None:
    """What the sync does: the listed objects, expanded with the roster email and the
    owner addresses the listing gave."""
    put_ics(caldav_server, calendar.calendar, scenario.ics)
    listing = connector.changes(calendar, None)
    # Where the principal has addresses the roster may say another; else it is the one
    # Nextcloud writes into invitations.
    roster = ROSTER_EMAIL if caldav_server.expect.owner_addresses else PRINCIPAL_ADDRESS
    owner = {*listing.owner_addresses, roster}
    found = sorted(
        (b.start, b.end, b.tentative)
        for remote in listing.changed
        for b in busy_times(remote.ics, *WINDOW, SCHOOL_TZ, owner=owner)
    )
    assert found == scenario.expected_spans


def test_owner_addresses_come_from_the_principal_when_the_invitation_names_another_address(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    needs_principal_addresses(caldav_server)
    put_ics(caldav_server, calendar.calendar, DECLINED_INVITATION.ics)
    with caldav_server.requests.recording() as seen:
        listing = connector.changes(calendar, None)
    assert listing.owner_addresses == caldav_server.expect.owner_addresses
    assert ROSTER_EMAIL not in listing.owner_addresses  # the invitation names another one
    assert PRINCIPAL_ADDRESS.lower() in listing.owner_addresses
    # PROPFIND (sync-token, ctag, owner) + calendar-query + the principal's address set.
    assert [method for method, _ in seen] == ["PROPFIND", "REPORT", "PROPFIND"]


def test_an_unanswered_invitation_is_busy_and_tentative_where_the_teacher_is_known(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    """No lookup for it (only a declined attendee makes one): busy for the connector's own
    free/busy; tentative for the sync, which knows the roster email."""
    put_ics(caldav_server, calendar.calendar, UNANSWERED_INVITATION.ics)
    with caldav_server.requests.recording() as seen:
        found = connector.free_busy([calendar], *WINDOW)[calendar]
    assert [(s, e) for s, e, _ in spans(found)] == [
        (s, e) for s, e, _ in UNANSWERED_INVITATION.expected_spans
    ]
    assert len(seen) == 1
    listing = connector.changes(calendar, None)
    assert listing.owner_addresses == frozenset()
    (remote,) = listing.changed
    owner = {PRINCIPAL_ADDRESS}  # a roster email that is the address Nextcloud writes
    found_by_sync = busy_times(remote.ics, *WINDOW, SCHOOL_TZ, owner=owner)
    assert [(b.start, b.end, b.tentative) for b in found_by_sync] == (
        UNANSWERED_INVITATION.expected_spans
    )


def test_the_lookup_is_made_once_and_a_pass_without_invitations_costs_nothing(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    put_ics(caldav_server, calendar.calendar, ics(vevent("own", "DTSTART:20270310T100000Z")))
    with caldav_server.requests.recording() as full:
        first = connector.changes(calendar, None)
    assert first.owner_addresses == frozenset() and len(full) == 2  # the bench's full pass
    with caldav_server.requests.recording() as idle:
        assert connector.changes(calendar, first.token).owner_addresses == frozenset()
    assert len(idle) == 1  # the bench's idle pass

    put_ics(caldav_server, calendar.calendar, SERIES_ONE_DECLINED.ics)
    with caldav_server.requests.recording() as seen:
        changed = connector.changes(calendar, first.token)
    assert changed.owner_addresses == caldav_server.expect.owner_addresses
    # The sync REPORT (and a multiget where the server leaves calendar-data out), then the
    # principal's address set: the full load's PROPFIND named the collection's owner.
    reports = ["REPORT"] * (1 if caldav_server.expect.sync_sends_calendar_data else 2)
    assert [m for m, _ in seen] == [*reports, "PROPFIND"]

    put_ics(caldav_server, calendar.calendar, DECLINED_INVITATION.ics)
    with caldav_server.requests.recording() as again:
        later = connector.changes(calendar, changed.token)
        answer = connector.free_busy([calendar], *WINDOW)
    assert later.owner_addresses == caldav_server.expect.owner_addresses  # given again
    assert [m for m, _ in again] == [*reports, "REPORT"]  # no more lookups
    assert isinstance(answer[calendar], FreeBusy)


def test_a_fresh_connector_asks_the_collection_for_its_owner_then_the_principal(
    caldav_server: EmbeddedCalDAV, caldav_account: AccountConfig, calendar: CalendarRef
) -> None:
    """Xandikos names no DAV:owner: its current-user-principal stands in (RFC 5397)."""
    first = CalDAVConnector(caldav_account, SCHOOL_TZ, HORIZON)
    token = first.changes(calendar, None).token
    first.close()
    put_ics(caldav_server, calendar.calendar, DECLINED_INVITATION.ics)
    fresh = CalDAVConnector(caldav_account, SCHOOL_TZ, HORIZON)
    try:
        with caldav_server.requests.recording() as seen:
            changed = fresh.changes(calendar, token)
    finally:
        fresh.close()
    assert changed.owner_addresses == caldav_server.expect.owner_addresses
    lookups = [(m, p) for m, p in seen if m == "PROPFIND"]
    assert [p.rstrip("/") for _, p in lookups] == [calendar_path(calendar), "/teacher"]


def calendar_path(calendar: CalendarRef) -> str:
    return urlsplit(calendar.calendar).path.rstrip("/")
