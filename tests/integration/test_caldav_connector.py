"""The CalDAV connector against real Radicale and Xandikos: every test runs on both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar

from connectors.base import (
    Attendee,
    CalendarConnector,
    CalendarRef,
    FreeBusy,
    Horizon,
    MeetingEvent,
    RemoteRef,
    open_connector,
)
from connectors.caldav import CalDAVConnector
from connectors.caldav_features import FEATURES
from ptm_sync.config.settings import AccountConfig, Secret
from ptm_sync.core.errors import AuthFailed, NotFound, SyncTokenInvalid, Unavailable, WrongEtag
from tests.support.caldav_servers import (
    EmbeddedCalDAV,
    account_for,
    delete_href,
    make_calendar,
    put_ics,
)
from tests.support.calendar_data import SCENARIOS, SCHOOL_TZ, WINDOW, Scenario, ics, vevent
from tests.support.servers import free_port

HORIZON = Horizon(datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))


def simple_event(uid: str, day: int = 10, summary: str = "Busy") -> str:
    return ics(
        vevent(
            uid,
            f"SUMMARY:{summary}",
            f"DTSTART:202703{day:02d}T100000Z",
            f"DTEND:202703{day:02d}T110000Z",
        )
    )


def meeting(uid: str = "meeting-1", **changes: object) -> MeetingEvent:
    event = MeetingEvent(
        uid=uid,
        start=datetime(2027, 4, 10, 13, 0, tzinfo=UTC),
        end=datetime(2027, 4, 10, 13, 15, tzinfo=UTC),
        summary="Conference: Ann (Mrs Smith)",
        description="Join: https://meet.school.test/abc",
        location="https://meet.school.test/abc",
        video_url="https://meet.school.test/abc",
        organizer="conferences@school.test",
        attendees=(Attendee("parent@family.test", "Mrs Smith"),),
    )
    return replace(event, **changes)  # type: ignore[arg-type]


@pytest.fixture
def connector(caldav_account: AccountConfig) -> Iterator[CalDAVConnector]:
    conn = CalDAVConnector(caldav_account, SCHOOL_TZ, HORIZON)
    yield conn
    conn.close()


@pytest.fixture
def calendar(caldav_account: AccountConfig, caldav_calendar: str) -> CalendarRef:
    return CalendarRef(caldav_account.id, caldav_calendar)


def hrefs(changes: object) -> set[str]:
    return {event.href for event in changes.changed}  # type: ignore[attr-defined]


def requests_to(
    server: EmbeddedCalDAV, calendar: CalendarRef, log: list[tuple[str, str]]
) -> list[str]:
    path = urlsplit(calendar.calendar).path
    return [method for method, where in log if where.startswith(path)]


# --- the contract -------------------------------------------------------------------------


def test_the_registry_opens_a_caldav_connector(caldav_account: AccountConfig) -> None:
    conn = open_connector(caldav_account, SCHOOL_TZ, HORIZON)
    assert isinstance(conn, CalDAVConnector)
    assert isinstance(conn, CalendarConnector)
    conn.close()


def test_the_server_kind_is_detected(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector
) -> None:
    assert connector.features() == FEATURES[caldav_server.kind]


# --- changes ------------------------------------------------------------------------------


def test_full_load_lists_every_event_in_the_horizon(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    inside = put_ics(caldav_server, calendar.calendar, simple_event("inside"))
    put_ics(
        caldav_server,
        calendar.calendar,
        ics(vevent("later", "DTSTART:20290101T100000Z", "DTEND:20290101T110000Z")),
    )
    changes = connector.changes(calendar, None)
    assert changes.full
    assert changes.token is not None and changes.token.startswith("sync:")
    assert hrefs(changes) == {inside}
    (event,) = changes.changed
    assert event.etag and "UID:inside" in event.ics


def test_full_load_of_an_empty_calendar(connector: CalDAVConnector, calendar: CalendarRef) -> None:
    changes = connector.changes(calendar, None)
    assert changes.full and changes.changed == () and changes.token


def test_a_recurring_event_that_began_before_the_horizon_is_loaded(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    weekly = ics(
        vevent("weekly", "DTSTART:20260105T100000Z", "DTEND:20260105T110000Z", "RRULE:FREQ=WEEKLY")
    )
    href = put_ics(caldav_server, calendar.calendar, weekly)
    assert hrefs(connector.changes(calendar, None)) == {href}


def test_incremental_sync_reports_an_added_event(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    first = connector.changes(calendar, None)
    href = put_ics(caldav_server, calendar.calendar, simple_event("added"))
    with caldav_server.requests.recording() as log:
        changes = connector.changes(calendar, first.token)
    assert not changes.full
    assert hrefs(changes) == {href} and changes.removed == ()
    assert "UID:added" in changes.changed[0].ics
    expected = ["REPORT"] if caldav_server.expect.sync_sends_calendar_data else ["REPORT", "REPORT"]
    assert requests_to(caldav_server, calendar, log) == expected
    assert changes.token != first.token


def test_incremental_sync_reports_a_modified_event_with_its_new_etag(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    href = put_ics(caldav_server, calendar.calendar, simple_event("mod"), "mod.ics")
    first = connector.changes(calendar, None)
    put_ics(
        caldav_server, calendar.calendar, simple_event("mod", summary="Moved", day=11), "mod.ics"
    )
    changes = connector.changes(calendar, first.token)
    (event,) = changes.changed
    assert event.href == href
    assert event.etag != first.changed[0].etag
    assert "SUMMARY:Moved" in event.ics


def test_incremental_sync_reports_a_deleted_event_as_removed(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    href = put_ics(caldav_server, calendar.calendar, simple_event("gone"))
    first = connector.changes(calendar, None)
    delete_href(caldav_server, href)
    changes = connector.changes(calendar, first.token)
    assert changes.changed == () and changes.removed == (href,)


def test_idle_pass_makes_one_request(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    put_ics(caldav_server, calendar.calendar, simple_event("quiet"))
    token = connector.changes(calendar, None).token
    with caldav_server.requests.recording() as log:
        changes = connector.changes(calendar, token)
    assert changes.changed == () and changes.removed == ()
    assert changes.token == token
    assert len(log) == 1


def test_a_fresh_connector_sends_credentials_up_front_so_its_idle_pass_is_one_request(
    caldav_server: EmbeddedCalDAV, caldav_account: AccountConfig, calendar: CalendarRef
) -> None:
    """A `ptm-sync sync` from cron is a new process: no 401 round trip before each pass."""
    put_ics(caldav_server, calendar.calendar, simple_event("quiet"))
    first = CalDAVConnector(caldav_account, SCHOOL_TZ, HORIZON)
    token = first.changes(calendar, None).token
    first.close()
    fresh = CalDAVConnector(caldav_account, SCHOOL_TZ, HORIZON)
    with caldav_server.requests.recording() as log:
        changes = fresh.changes(calendar, token)
    fresh.close()
    assert changes.changed == () and changes.token == token
    assert len(log) == 1, log


def test_a_token_the_server_no_longer_knows_raises_sync_token_invalid(
    connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    token = connector.changes(calendar, None).token
    assert token is not None
    stale = token[:-6] + ("abcdef" if not token.endswith("abcdef") else "fedcba")
    with pytest.raises(SyncTokenInvalid):
        connector.changes(calendar, stale)


def test_a_token_we_never_issued_raises_sync_token_invalid(
    connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    with pytest.raises(SyncTokenInvalid):
        connector.changes(calendar, "bogus")


def test_ctag_fallback_without_sync_collection(
    caldav_server: EmbeddedCalDAV, caldav_account: AccountConfig, calendar: CalendarRef
) -> None:
    features = replace(FEATURES[caldav_server.kind], sync_collection=False)
    conn = CalDAVConnector(caldav_account, SCHOOL_TZ, HORIZON, features=features)
    first = conn.changes(calendar, None)
    assert first.token is not None and first.token.startswith("ctag:")
    with caldav_server.requests.recording() as log:
        idle = conn.changes(calendar, first.token)
    assert len(log) == 1 and idle.changed == () and not idle.full and idle.token == first.token
    href = put_ics(caldav_server, calendar.calendar, simple_event("after-ctag"))
    changed = conn.changes(calendar, first.token)
    assert changed.full and hrefs(changed) == {href} and changed.token != first.token
    conn.close()


def test_a_server_that_refuses_sync_collection_falls_back_to_ctag(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    token = connector.changes(calendar, None).token
    caldav_server.requests.fail_next("501 Not Implemented")
    with pytest.raises(SyncTokenInvalid):
        connector.changes(calendar, token)
    reloaded = connector.changes(calendar, None)
    assert reloaded.full and reloaded.token is not None and reloaded.token.startswith("ctag:")
    with caldav_server.requests.recording() as log:
        assert connector.changes(calendar, reloaded.token).changed == ()
    assert len(log) == 1


def test_a_missing_calendar_raises_not_found(
    connector: CalDAVConnector, caldav_account: AccountConfig
) -> None:
    with pytest.raises(NotFound):
        connector.changes(CalendarRef(caldav_account.id, "no-such-calendar/"), None)


def test_a_calendar_path_is_relative_to_the_account_url(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, caldav_account: AccountConfig
) -> None:
    make_calendar(caldav_server, "relative-path-cal")
    href = put_ics(caldav_server, caldav_server.url + "relative-path-cal/", simple_event("rel"))
    changes = connector.changes(CalendarRef(caldav_account.id, "relative-path-cal"), None)
    assert hrefs(changes) == {href}


# --- writes -------------------------------------------------------------------------------


def test_created_event_is_in_the_calendar_as_written(
    connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    ref = connector.create_event(calendar, meeting())
    assert ref.href.endswith("/meeting-1.ics") and ref.etag
    (stored,) = connector.changes(calendar, None).changed
    assert stored.etag == ref.etag
    event = Calendar.from_ical(stored.ics).events[0]
    assert event.start == datetime(2027, 4, 10, 15, 0, tzinfo=SCHOOL_TZ)
    assert str(event["ORGANIZER"].params["SCHEDULE-AGENT"]) == "CLIENT"
    assert all(str(a.params["SCHEDULE-AGENT"]) == "CLIENT" for a in event.attendees)
    assert [c.uri for c in event.conferences] == ["https://meet.school.test/abc"]


def test_create_is_idempotent_by_uid(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    first = connector.create_event(calendar, meeting())
    with caldav_server.requests.recording() as log:
        second = connector.create_event(calendar, meeting())
    assert second == first
    assert [method for method, _ in log] == ["PUT", "GET"]  # no rewrite of an equal event
    assert len(connector.changes(calendar, None).changed) == 1


def test_create_of_an_existing_uid_with_other_content_updates_it(
    connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    first = connector.create_event(calendar, meeting())
    second = connector.create_event(
        calendar, meeting(summary="Conference: Ann (moved)", sequence=1)
    )
    assert second.href == first.href and second.etag != first.etag
    (stored,) = connector.changes(calendar, None).changed
    assert "moved" in stored.ics and stored.etag == second.etag


def test_create_finds_the_uid_at_another_href(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    elsewhere = put_ics(
        caldav_server, calendar.calendar, simple_event("meeting-1"), "written-by-someone.ics"
    )
    ref = connector.create_event(calendar, meeting())
    assert ref.href == elsewhere
    (stored,) = connector.changes(calendar, None).changed
    assert "Conference: Ann" in stored.ics


def test_update_with_the_current_etag_writes_and_returns_the_new_etag(
    connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    ref = connector.create_event(calendar, meeting())
    moved = meeting(
        start=datetime(2027, 4, 10, 14, 0, tzinfo=UTC),
        end=datetime(2027, 4, 10, 14, 15, tzinfo=UTC),
        sequence=1,
    )
    new = connector.update_event(calendar, ref, moved)
    assert new.href == ref.href and new.etag and new.etag != ref.etag
    (stored,) = connector.changes(calendar, None).changed
    assert stored.etag == new.etag and "T160000" in stored.ics


def test_update_with_a_stale_etag_raises_wrong_etag(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    ref = connector.create_event(calendar, meeting())
    put_ics(
        caldav_server,
        calendar.calendar,
        simple_event("meeting-1", summary="Teacher moved it"),
        "meeting-1.ics",
    )
    with pytest.raises(WrongEtag):
        connector.update_event(calendar, ref, meeting(sequence=1))


def test_an_update_already_written_with_its_etag_lost_is_done_not_a_conflict(
    connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    """The process died between the PUT and recording the new ETag: the retry's If-Match
    fails, but the stored event is our own write, not the teacher's change."""
    ref = connector.create_event(calendar, meeting())
    moved = meeting(
        start=datetime(2027, 4, 10, 14, 0, tzinfo=UTC),
        end=datetime(2027, 4, 10, 14, 15, tzinfo=UTC),
        sequence=1,
    )
    landed = connector.update_event(calendar, ref, moved)

    again = connector.update_event(calendar, ref, moved)  # the old ETag, as the row holds

    assert again == RemoteRef(ref.href, landed.etag)
    (stored,) = connector.changes(calendar, None).changed
    assert stored.etag == landed.etag  # nothing written twice
    with pytest.raises(WrongEtag):  # a different update on the old ETag is still refused
        connector.update_event(calendar, ref, meeting(sequence=2))


def test_update_of_a_deleted_event_raises_not_found(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    ref = connector.create_event(calendar, meeting())
    delete_href(caldav_server, ref.href)
    with pytest.raises(NotFound):
        connector.update_event(calendar, ref, meeting(sequence=1))
    with pytest.raises(NotFound):
        connector.update_event(calendar, RemoteRef(ref.href), meeting(sequence=1))


def test_delete_removes_the_event(connector: CalDAVConnector, calendar: CalendarRef) -> None:
    ref = connector.create_event(calendar, meeting())
    connector.delete_event(calendar, ref)
    assert connector.changes(calendar, None).changed == ()


@pytest.mark.parametrize("etag", [None, '"some-old-etag"'])
def test_delete_of_an_absent_event_succeeds(
    connector: CalDAVConnector, calendar: CalendarRef, etag: str | None
) -> None:
    connector.delete_event(
        calendar, RemoteRef(urlsplit(calendar.calendar).path + "never-there.ics", etag)
    )
    assert connector.changes(calendar, None).changed == ()  # nothing raised, nothing made


def test_delete_with_a_stale_etag_raises_wrong_etag(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    ref = connector.create_event(calendar, meeting())
    put_ics(
        caldav_server,
        calendar.calendar,
        simple_event("meeting-1", summary="Changed"),
        "meeting-1.ics",
    )
    with pytest.raises(WrongEtag):
        connector.delete_event(calendar, ref)


# --- free/busy ----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_free_busy_is_computed_locally(
    caldav_server: EmbeddedCalDAV,
    connector: CalDAVConnector,
    calendar: CalendarRef,
    scenario: Scenario,
) -> None:
    put_ics(caldav_server, calendar.calendar, scenario.ics)
    found = connector.free_busy([calendar], *WINDOW)[calendar]
    assert isinstance(found, FreeBusy) and found.unknown == ()
    assert [(b.start, b.end, b.tentative) for b in found.busy] == scenario.expected_spans


def test_free_busy_of_several_calendars(
    caldav_server: EmbeddedCalDAV, connector: CalDAVConnector, calendar: CalendarRef
) -> None:
    other = CalendarRef(calendar.account, make_calendar(caldav_server))
    put_ics(caldav_server, calendar.calendar, simple_event("one", day=10))
    put_ics(caldav_server, other.calendar, simple_event("two", day=11))
    put_ics(caldav_server, other.calendar, simple_event("three", day=5))
    result = connector.free_busy([calendar, other], *WINDOW)
    assert all(isinstance(answer, FreeBusy) for answer in result.values())
    assert [b.start.day for b in result[calendar].busy] == [10]  # type: ignore[union-attr]
    assert [b.start.day for b in result[other].busy] == [5, 11]  # type: ignore[union-attr]


# --- failures -----------------------------------------------------------------------------


def test_wrong_password_raises_auth_failed(radicale_server: EmbeddedCalDAV) -> None:
    account = account_for(radicale_server, password=Secret(key="accounts.password", value="wrong"))
    conn = CalDAVConnector(account, SCHOOL_TZ, HORIZON)
    calendar = CalendarRef(account.id, make_calendar(radicale_server))
    with pytest.raises(AuthFailed) as caught:
        conn.changes(calendar, None)
    # The account and the host, never the teacher's calendar (it is shown in /healthz).
    assert (
        str(caught.value)
        == "account 'dav' (127.0.0.1): the server refused the user name or password "
        f"(user {account.username})"
    )
    assert urlsplit(calendar.calendar).path not in str(caught.value)
    with pytest.raises(AuthFailed):
        conn.free_busy([calendar], *WINDOW)  # the account's failure: raised, not per calendar
    assert conn.check() == [
        f"account 'dav' ({radicale_server.url}): the server refused the user name or password "
        f"(user {account.username})"
    ]


def test_server_down_raises_unavailable(caldav_server: EmbeddedCalDAV) -> None:
    account = account_for(caldav_server, url=f"http://127.0.0.1:{free_port()}/dav/")
    conn = CalDAVConnector(account, SCHOOL_TZ, HORIZON)
    with pytest.raises(Unavailable) as caught:
        conn.changes(CalendarRef(account.id, "cal/"), None)
    assert caught.value.retryable
    (problem,) = conn.check()
    assert "cannot connect" in problem


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        ("429 Too Many Requests", {"Retry-After": "3600"}, 3600.0),
        ("503 Service Unavailable", {"Retry-After": "120"}, 120.0),
        ("503 Service Unavailable", {}, None),
        ("500 Internal Server Error", {}, None),
    ],
)
def test_long_throttling_and_outages_raise_unavailable_with_retry_after(
    caldav_server: EmbeddedCalDAV,
    connector: CalDAVConnector,
    calendar: CalendarRef,
    status: str,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    token = connector.changes(calendar, None).token
    waits: list[float] = []
    connector._http.retry.sleep = waits.append
    caldav_server.requests.fail_next(status, headers)
    with pytest.raises(Unavailable) as caught:
        connector.changes(calendar, token)
    assert caught.value.retry_after == retry_after
    assert waits == []  # no blind retry, and no wait longer than the policy's


@pytest.mark.parametrize(
    ("status", "wait"), [("429 Too Many Requests", "7"), ("503 Service Unavailable", "30")]
)
def test_a_short_named_wait_is_taken_and_the_request_sent_again(
    caldav_server: EmbeddedCalDAV,
    connector: CalDAVConnector,
    calendar: CalendarRef,
    status: str,
    wait: str,
) -> None:
    token = connector.changes(calendar, None).token
    waits: list[float] = []
    connector._http.retry.sleep = waits.append
    caldav_server.requests.fail_next(status, {"Retry-After": wait})
    with caldav_server.requests.recording() as seen:
        assert connector.changes(calendar, token).changed == ()
    assert waits == [float(wait)]
    assert len(seen) == 2  # the refused request, then the same one again


def test_check_is_quiet_for_a_good_account_and_names_a_missing_calendar(
    connector: CalDAVConnector, calendar: CalendarRef, caldav_account: AccountConfig
) -> None:
    assert connector.check() == []
    assert connector.check([calendar]) == []
    missing = CalendarRef(caldav_account.id, "missing-calendar/")
    name = f"account 'dav' ({caldav_account.url})"
    assert connector.check([calendar, missing]) == [
        f"{name}: calendar 'missing-calendar/': not found on the server"
    ]


def test_horizon_bounds_the_full_load(
    caldav_server: EmbeddedCalDAV, caldav_account: AccountConfig, calendar: CalendarRef
) -> None:
    narrow = Horizon(
        datetime(2027, 3, 10, tzinfo=UTC), datetime(2027, 3, 10, tzinfo=UTC) + timedelta(days=1)
    )
    inside = put_ics(caldav_server, calendar.calendar, simple_event("in-horizon", day=10))
    put_ics(caldav_server, calendar.calendar, simple_event("out-of-horizon", day=12))
    conn = CalDAVConnector(caldav_account, SCHOOL_TZ, narrow)
    assert hrefs(conn.changes(calendar, None)) == {inside}
    conn.close()
