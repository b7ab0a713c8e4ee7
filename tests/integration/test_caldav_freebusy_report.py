"""The servers' own free-busy REPORT against local expansion, case by case.

``connectors.caldav_features.FEATURES`` says what each server's free-busy-query REPORT gets
right.  These tests put the same object on the real server and compare its REPORT with our
local expansion: they agree exactly where the table says the server is right.  When a server
release fixes (or breaks) one of these, the test fails and the table needs updating.

``freebusy_honours_declined`` is measured apart: an invitation the principal declined,
stored as Nextcloud/sabre store the teacher's copy and naming the principal by an address of
its calendar-user-address-set where the server gives one (Xandikos; Radicale's principal
has no email address), should leave the REPORT free.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pytest

from connectors.base import CalendarRef, FreeBusy, Horizon
from connectors.caldav import CalDAVConnector
from connectors.caldav_features import FEATURES
from ptm_sync.core.model import Busy
from tests.support.caldav_servers import XANDIKOS_ADDRESSES, EmbeddedCalDAV, account_for, put_ics
from tests.support.calendar_data import (
    ALL_DAY,
    DECLINED_INVITATION,
    FLOATING,
    ROSTER_EMAIL,
    SCHOOL_TZ,
    WEEKLY_ACROSS_DST,
    WINDOW,
    WINDOWS_TZID,
    Scenario,
    sabre_invitation,
    utc,
)

HORIZON = Horizon(*WINDOW)

#: Each case and the feature-table flag that says whether the server's REPORT gets it right.
CASES = [
    pytest.param(WEEKLY_ACROSS_DST, "freebusy_keeps_wall_clock_across_dst", id="weekly-across-dst"),
    pytest.param(ALL_DAY, "freebusy_all_day_in_local_zone", id="all-day"),
    pytest.param(FLOATING, "freebusy_floating_in_local_zone", id="floating"),
    pytest.param(WINDOWS_TZID, "freebusy_windows_tzid", id="windows-tzid"),
]


def merged(busy: Iterable[Busy]) -> list[tuple[datetime, datetime]]:
    spans: list[tuple[datetime, datetime]] = []
    for item in sorted(busy, key=lambda b: b.start):
        if spans and item.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], item.end))
        else:
            spans.append((item.start, item.end))
    return spans


def busy_from(server: EmbeddedCalDAV, calendar: CalendarRef, source: str) -> list[Busy]:
    connector = CalDAVConnector(account_for(server, freebusy=source), SCHOOL_TZ, HORIZON)
    try:
        found = connector.free_busy([calendar], *WINDOW)[calendar]
    finally:
        connector.close()
    assert isinstance(found, FreeBusy), found
    assert found.unknown == ()  # the server's VFREEBUSY covers the whole range asked
    return list(found.busy)


@pytest.mark.parametrize(("scenario", "flag"), CASES)
def test_server_report_matches_local_expansion_exactly_where_the_feature_table_says(
    caldav_server: EmbeddedCalDAV, caldav_calendar: str, scenario: Scenario, flag: str
) -> None:
    calendar = CalendarRef("dav", caldav_calendar)
    put_ics(caldav_server, caldav_calendar, scenario.ics)
    local = busy_from(caldav_server, calendar, "local")
    server = busy_from(caldav_server, calendar, "server")
    assert [(b.start, b.end, b.tentative) for b in local] == scenario.expected_spans
    server_is_right = merged(server) == merged(local)
    table_says = getattr(FEATURES[caldav_server.kind], flag)
    assert server_is_right == table_says, (
        f"{caldav_server.kind}'s free-busy REPORT {'now gets' if server_is_right else 'gets'} "
        f"{scenario.name!r} {'right' if server_is_right else 'wrong'}: update {flag} in "
        f"connectors/caldav_features.py (server said {merged(server)}, local {merged(local)})"
    )


def test_auto_mode_computes_locally_where_the_server_is_not_trusted(
    caldav_server: EmbeddedCalDAV, caldav_calendar: str
) -> None:
    assert not FEATURES[caldav_server.kind].freebusy_trusted
    calendar = CalendarRef("dav", caldav_calendar)
    put_ics(caldav_server, caldav_calendar, ALL_DAY.ics)
    auto = busy_from(caldav_server, calendar, "auto")
    assert [(b.start, b.end, b.tentative) for b in auto] == ALL_DAY.expected_spans
    assert merged(busy_from(caldav_server, calendar, "server")) != merged(auto)


def test_the_feature_table_says_whether_the_report_honours_a_declined_invitation(
    caldav_server: EmbeddedCalDAV, caldav_calendar: str
) -> None:
    calendar = CalendarRef("dav", caldav_calendar)
    # The principal's own address where it has one; the roster's otherwise (Radicale).
    principal = [a.removeprefix("mailto:") for a in XANDIKOS_ADDRESSES]
    teacher = principal[0] if caldav_server.expect.owner_addresses else ROSTER_EMAIL
    start, end = utc("2027-03-10T13:00"), utc("2027-03-10T14:30")
    invitation = sabre_invitation(
        "declined@cloud.school.test", start, end, partstat="DECLINED", teacher=teacher
    )
    put_ics(caldav_server, caldav_calendar, invitation)
    server = busy_from(caldav_server, calendar, "server")
    server_is_right = server == []
    table_says = FEATURES[caldav_server.kind].freebusy_honours_declined
    assert server_is_right == table_says, (
        f"{caldav_server.kind}'s free-busy REPORT "
        f"{'now leaves' if server_is_right else 'counts'} a declined invitation "
        f"{'free' if server_is_right else 'busy'}: update freebusy_honours_declined in "
        f"connectors/caldav_features.py (server said {merged(server)})"
    )
    assert table_says or not FEATURES[caldav_server.kind].freebusy_trusted


def test_auto_mode_never_counts_a_declined_invitation_through_the_report(
    caldav_server: EmbeddedCalDAV, caldav_calendar: str
) -> None:
    """Where the principal names the teacher, auto mode frees what she declined; where the
    server cannot tell (Radicale), auto is local, as the report would be no better."""
    calendar = CalendarRef("dav", caldav_calendar)
    put_ics(caldav_server, caldav_calendar, DECLINED_INVITATION.ics)
    auto = busy_from(caldav_server, calendar, "auto")
    if caldav_server.expect.owner_addresses:
        assert auto == []
    assert merged(busy_from(caldav_server, calendar, "server")) != []
