"""The connector contract (connectors/base.py), held against every calendar system.

The same tests run over the in-memory connector, CalDAV on Radicale and Xandikos, and
Graph, EWS and Google on their fakes (tests/contract/conftest.py lists them).  What a test
needs that a system cannot do (throttle the in-memory one, expire a CalDAV server's
tokens) is skipped with the reason; the vendor specifics are in each system's own tests.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connectors.base import (
    CalendarConnector,
    CalendarRef,
    Capability,
    ChangeSet,
    FreeBusy,
    FreeBusyAnswer,
    MeetingEvent,
    RemoteRef,
)
from ptm_sync.core.errors import (
    AccessDenied,
    CalendarProblem,
    ConnectorError,
    NotFound,
    SyncTokenInvalid,
    Unavailable,
    WrongEtag,
)
from ptm_sync.core.ical.busy import busy_times, event_uid
from tests.contract.harness import START, System

_numbers = itertools.count(1)
UTC_ZONE = ZoneInfo("UTC")
QUARTER = timedelta(minutes=15)


def meeting(offset_hours: float = 0, minutes: int = 15) -> MeetingEvent:
    """A meeting event with a UID of its own (the systems keep their calendars between tests)."""
    start = START + timedelta(hours=offset_hours)
    return MeetingEvent(
        uid=f"meeting-{next(_numbers)}-contract@school.test",
        start=start,
        end=start + timedelta(minutes=minutes),
        summary="Conference: Ada (Mrs Lovelace)",
        description="Parent-teacher conference",
        location="Room 12",
    )


def listed(changes: ChangeSet) -> dict[str, str]:
    """UID → href of the objects a change set lists."""
    return {event_uid(e.ics): e.href for e in changes.changed}


def writable(system: System) -> None:
    if Capability.READ_ONLY in system.connector.capabilities:
        pytest.skip(f"{system.name} is read only: it has no writes to hold to the contract")


def test_it_is_a_connector_that_declares_what_it_can(system: System) -> None:
    assert isinstance(system.connector, CalendarConnector)
    caps = system.connector.capabilities
    assert caps <= set(Capability)
    # Busy time comes from somewhere: a mirror we expand, or the server's free/busy.
    assert Capability.MIRRORED in caps or Capability.SERVER_FREE_BUSY in caps


def test_a_created_event_is_listed_by_uid_and_a_retried_create_reuses_it(system: System) -> None:
    writable(system)
    cal = system.calendar("ada")
    event = meeting()
    ref = system.connector.create_event(cal, event)
    assert ref.href and ref.etag
    first = system.connector.changes(cal, None)
    assert first.full and listed(first) == {event.uid: ref.href}
    again = system.connector.create_event(cal, event)  # a retry after a crash
    assert again.href == ref.href
    after = system.connector.changes(cal, first.token)
    assert event.uid not in {event_uid(e.ics) for e in after.changed if e.etag == ref.etag}
    assert listed(system.connector.changes(cal, None)) == {event.uid: ref.href}


def test_writes_take_the_etag_they_last_saw(system: System) -> None:
    writable(system)
    cal = system.calendar("ada")
    event = meeting()
    ref = system.connector.create_event(cal, event)
    hour = timedelta(hours=1)
    later = replace(event, start=event.start + hour, end=event.end + hour, sequence=1)
    moved = system.connector.update_event(cal, ref, later)
    assert moved.href == ref.href and moved.etag != ref.etag
    # Our own write whose new ETag was never recorded is done, not a conflict.
    assert system.connector.update_event(cal, ref, later).etag == moved.etag
    # The teacher's change is not overwritten, nor deleted under them.
    system.teacher_moves(cal, moved, START + 3 * hour, START + 3 * hour + QUARTER)
    with pytest.raises(WrongEtag):
        system.connector.update_event(cal, moved, replace(later, sequence=2))
    with pytest.raises(WrongEtag):
        system.connector.delete_event(cal, moved)


def test_the_teachers_move_and_delete_reach_the_change_feed(system: System) -> None:
    writable(system)
    cal = system.calendar("ada")
    kept, dropped = meeting(), meeting(offset_hours=1)
    kept_ref = system.connector.create_event(cal, kept)
    dropped_ref = system.connector.create_event(cal, dropped)
    token = system.connector.changes(cal, None).token
    hour = timedelta(hours=1)
    system.teacher_moves(cal, kept_ref, START + 4 * hour, START + 4 * hour + QUARTER)
    system.teacher_deletes(cal, dropped_ref)
    seen = system.connector.changes(cal, token)
    moved = [e for e in seen.changed if event_uid(e.ics) == kept.uid]
    assert len(moved) == 1 and moved[0].href == kept_ref.href and moved[0].etag != kept_ref.etag
    assert "DTSTART" in moved[0].ics
    assert dropped_ref.href in seen.removed or (seen.full and dropped.uid not in listed(seen))
    with pytest.raises(NotFound):
        system.connector.update_event(cal, dropped_ref, dropped)
    system.connector.delete_event(cal, dropped_ref)  # absent: success
    assert listed(system.connector.changes(cal, None)) == {kept.uid: kept_ref.href}


def answered(found: FreeBusyAnswer, cal: CalendarRef) -> FreeBusy:
    """The calendar's FreeBusy (its error, if it has one, fails the test with its text)."""
    result = found[cal]
    if isinstance(result, ConnectorError):
        raise AssertionError(f"{cal.calendar}: {type(result).__name__}: {result}")
    assert isinstance(result, FreeBusy)
    return result


def covered(result: FreeBusy) -> list[tuple[datetime, datetime]]:
    """The busy spans merged into disjoint (start, end) pairs, UTC, sorted."""
    spans = sorted((b.start.astimezone(UTC), b.end.astimezone(UTC)) for b in result.busy)
    merged: list[tuple[datetime, datetime]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def test_free_busy_counts_the_teachers_time_and_ours_clipped_to_the_range(system: System) -> None:
    cal, empty = system.calendar("ada"), system.calendar("alan")
    hour = timedelta(hours=1)
    system.add_busy(cal, START - hour, START + 2 * hour)
    system.add_busy(cal, START + 5 * hour, START + 6 * hour, tentative=True)
    if Capability.READ_ONLY not in system.connector.capabilities:
        system.connector.create_event(cal, meeting(offset_hours=3))
    end = START + 5 * hour + timedelta(minutes=30)
    found = system.connector.free_busy([cal, empty], START, end)
    assert set(found) == {cal, empty}
    assert answered(found, empty) == FreeBusy()
    spans = sorted((b.start, b.end) for b in answered(found, cal).busy)
    assert all(START <= s < e <= end for s, e in spans)
    covered = [(START, START + 2 * hour), (START + 5 * hour, end)]
    if Capability.READ_ONLY not in system.connector.capabilities:
        covered.insert(1, (START + 3 * hour, START + 3 * hour + QUARTER))
    for want_start, want_end in covered:
        assert any(s <= want_start and want_end <= e for s, e in spans), (want_start, spans)
    assert not any(s < START + 3 * hour and e > START + 2 * hour for s, e in spans)


def test_a_token_the_server_no_longer_takes_asks_for_a_full_resync(system: System) -> None:
    writable(system)
    cal = system.calendar("ada")
    event = meeting()
    ref = system.connector.create_event(cal, event)
    token = system.connector.changes(cal, None).token
    assert token is not None
    if not system.forget_sync_tokens():
        token = token[:-4] + "dead" if len(token) > 8 else token + "dead"
    with pytest.raises(SyncTokenInvalid):
        system.connector.changes(cal, token)
    again = system.connector.changes(cal, None)
    assert again.full and listed(again) == {event.uid: ref.href}  # listed once, not twice


def test_paged_listings_are_followed_to_the_end(system: System) -> None:
    writable(system)
    if not system.page_size(2):
        pytest.skip(f"{system.name} does not page its change listings")
    try:
        cal = system.calendar("ada")
        events = [meeting(offset_hours=h) for h in range(5)]
        refs = {e.uid: system.connector.create_event(cal, e).href for e in events}
        full = system.connector.changes(cal, None)
        assert listed(full) == refs
        moved = system.connector.create_event(cal, meeting(offset_hours=6))
        assert moved.href in {e.href for e in system.connector.changes(cal, full.token).changed}
    finally:
        system.page_size(0)


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_is_waited_out_when_the_server_names_a_short_wait(
    system: System, status: int
) -> None:
    cal = system.calendar("ada")
    if not system.throttle(status, 1):
        pytest.skip(f"{system.name} cannot be throttled")
    found = system.connector.free_busy([cal], START, START + timedelta(hours=1))
    assert found == {cal: FreeBusy()}


def test_a_long_named_wait_comes_back_as_unavailable_with_it(system: System) -> None:
    cal = system.calendar("ada")
    if not system.throttle(503, 3600):
        pytest.skip(f"{system.name} cannot be throttled")
    with pytest.raises(Unavailable) as caught:
        system.connector.free_busy([cal], START, START + timedelta(hours=1))
    assert caught.value.retry_after is not None and caught.value.retry_after > 60
    system.throttle(503, 0)  # nothing left queued for the next test: use it up
    system.connector.free_busy([cal], START, START + timedelta(hours=1))


def test_an_expired_access_token_is_renewed(system: System) -> None:
    cal = system.calendar("ada")
    if not system.expire_access_tokens():
        pytest.skip(f"{system.name} uses no access tokens")
    assert system.connector.free_busy([cal], START, START + timedelta(hours=1)) == {cal: FreeBusy()}


def test_check_is_quiet_when_all_is_well_and_names_a_missing_calendar(system: System) -> None:
    cal = system.calendar("ada")
    assert system.connector.check([cal]) == []
    missing = replace(cal, calendar=_missing(cal.calendar))
    problems = system.connector.check([missing])
    assert len(problems) == 1 and "\n" not in problems[0]


def test_an_unknown_calendar_is_not_found(system: System) -> None:
    cal = system.calendar("ada")
    missing = replace(cal, calendar=_missing(cal.calendar))
    with pytest.raises(NotFound):
        system.connector.changes(missing, None)
    writable(system)
    with pytest.raises(NotFound):
        system.connector.create_event(missing, meeting())


def _missing(calendar: str) -> str:
    """Another calendar of the same kind that does not exist."""
    if calendar.startswith("http"):
        return calendar.rstrip("/") + "-gone/"
    if "@" in calendar:
        local, _, domain = calendar.partition("@")
        return f"{local}-gone@{domain}"
    return calendar + "-gone"


def test_the_ref_of_a_write_is_what_delete_takes(system: System) -> None:
    writable(system)
    cal = system.calendar("ada")
    ref = system.connector.create_event(cal, meeting())
    system.connector.delete_event(cal, ref)
    assert listed(system.connector.changes(cal, None)) == {}
    system.connector.delete_event(cal, RemoteRef(ref.href, None))  # absent: success


# --- free/busy per calendar (DESIGN §5, issue 14) ---------------------------------------


def test_an_unknown_calendar_is_its_own_not_found_and_the_others_are_answered(
    system: System,
) -> None:
    ada, alan = system.calendar("ada"), system.calendar("alan")
    missing = replace(ada, calendar=_missing(ada.calendar))
    hour = timedelta(hours=1)
    system.add_busy(ada, START, START + hour)
    system.add_busy(alan, START + 2 * hour, START + 3 * hour)
    alone = system.connector.free_busy([ada, alan], START, START + 4 * hour)
    found = system.connector.free_busy([ada, missing, alan], START, START + 4 * hour)
    assert set(found) == {ada, missing, alan}
    assert isinstance(found[missing], NotFound)
    assert found[missing].problem == CalendarProblem.NOT_FOUND
    assert covered(answered(found, ada)) == covered(answered(alone, ada)) == [(START, START + hour)]
    assert covered(answered(found, alan)) == [(START + 2 * hour, START + 3 * hour)]


@pytest.mark.parametrize(
    ("problem", "error"),
    [(CalendarProblem.ACCESS_DENIED, AccessDenied), (CalendarProblem.UNAVAILABLE, Unavailable)],
)
def test_one_calendars_error_stays_its_own_and_leaves_the_others_exact(
    system: System, problem: CalendarProblem, error: type[ConnectorError]
) -> None:
    ada, bob, carol = system.calendar("ada"), system.calendar("bob"), system.calendar("carol")
    hour = timedelta(hours=1)
    system.add_busy(ada, START, START + hour)
    system.add_busy(bob, START + hour, START + 2 * hour)
    system.add_busy(carol, START + 2 * hour, START + 3 * hour, tentative=True)
    before = system.connector.free_busy([ada, carol], START, START + 4 * hour)
    if not system.fail_free_busy(bob, problem):
        pytest.skip(f"{system.name} has no per-calendar {problem} answer")
    found = system.connector.free_busy([ada, bob, carol], START, START + 4 * hour)
    failed = found[bob]
    assert isinstance(failed, error), failed
    assert failed.problem == problem
    assert failed.retryable is (problem == CalendarProblem.UNAVAILABLE)
    for other in (ada, carol):
        assert answered(found, other) == answered(before, other) or covered(
            answered(found, other)
        ) == covered(answered(before, other))
        assert other.calendar not in str(failed)  # the error is bob's, told as bob's
    assert covered(answered(found, ada)) == [(START, START + hour)]
    assert covered(answered(found, carol)) == [(START + 2 * hour, START + 3 * hour)]
    # Tentative stays tentative where the system says so (Google's free/busy cannot).
    tentative = sorted((b.start, b.tentative) for b in answered(before, carol).busy)
    assert sorted((b.start, b.tentative) for b in answered(found, carol).busy) == tentative


def test_no_data_is_unknown_never_free(system: System) -> None:
    ada, alan = system.calendar("ada"), system.calendar("alan")
    hour = timedelta(hours=1)
    system.add_busy(ada, START, START + hour)
    if not system.no_data(ada, START + 2 * hour, START + 4 * hour):
        pytest.skip(f"{system.name} always has its data: busy time is computed from the events")
    found = system.connector.free_busy([ada, alan], START, START + 5 * hour)
    result = answered(found, ada)
    unknown = sorted((u.start.astimezone(UTC), u.end.astimezone(UTC)) for u in result.unknown)
    assert unknown, "a no-data answer must not read as free"
    # Every minute without data is unknown (a coarser answer may widen it, never narrow it).
    assert unknown[0][0] <= START + 2 * hour and unknown[-1][1] >= START + 4 * hour
    gaps = [(a_end, b_start) for (_, a_end), (b_start, _) in itertools.pairwise(unknown)]
    assert all(a_end >= b_start for a_end, b_start in gaps)
    assert all(START <= s < e <= START + 5 * hour for s, e in unknown)
    # The busy hour is still busy, unless the answer has no data for it either (Google's
    # no-data entry covers the whole range asked).
    assert any(s <= START and START + hour <= e for s, e in covered(result)) or (
        unknown[0][0] <= START and unknown[-1][1] >= START + hour
    )
    assert answered(found, alan) == FreeBusy()  # the other calendar keeps its own answer


@pytest.mark.parametrize(
    ("partstat", "busy"),
    [("DECLINED", False), ("NEEDS-ACTION", True), ("TENTATIVE", True), ("ACCEPTED", True)],
)
def test_an_invitation_the_teacher_declined_is_free(
    system: System, partstat: str, busy: bool
) -> None:
    cal = system.calendar("ada")
    hour = timedelta(hours=1)
    teacher = system.add_invitation(cal, START + hour, START + 2 * hour, partstat=partstat)
    if teacher is None:
        pytest.skip(f"{system.name} computes free/busy itself: the vendor counts invitations")
    system.add_busy(cal, START, START + timedelta(minutes=30))
    listing = system.connector.changes(cal, None)
    owner = {*listing.owner_addresses, teacher}
    spans = [
        b
        for remote in listing.changed
        for b in busy_times(remote.ics, START, START + 3 * hour, UTC_ZONE, owner=owner)
    ]
    invited = [b for b in spans if b.start >= START + hour]
    assert bool(invited) is busy
    assert any(b.start == START for b in spans)  # the teacher's own appointment stays busy
    if partstat == "TENTATIVE":
        assert all(b.tentative for b in invited)
