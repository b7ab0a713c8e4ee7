"""Real client messages from other projects (shared/fixtures/imip) read as they should be.

Each sample is read twice: as an inbound iMIP message (``imip.extract`` / ``read_itip``) and
as a teacher's calendar object (``busy.busy_times``).

The folder sits beside the repository (``../shared/fixtures/imip``), as on the developers'
machines and in CI.  Where it is missing the test skips once, saying where it looked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ptm_sync.core.errors import BadCalendarData, Unusable
from ptm_sync.core.ical.busy import busy_times
from ptm_sync.core.ical.itip import ItipMessage, Method, parse_calendar, read_itip
from ptm_sync.core.imip import Inbound, Kind, extract

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "imip"
SCHOOL_TZ = ZoneInfo("Europe/Helsinki")  # resolves the "FLE" TZID nobody defines

THUNDERBIRD_UID = "02e79b96"
NEXTCLOUD_UID = "69d4c40b4a274636bf23517938df9673@example.org"

# file -> what it must read as.  Emails: kind plus iTIP facts; .ics files: method or reason.
EXPECTED: dict[str, dict[str, Any]] = {
    "apple-ccs-calendarserver/dsn_failure_with_ics.eml": {
        "kind": Kind.BOUNCE,
        "failed_recipients": ("nonexistant@example.com",),
        "original_message_id": "<20080812191939.51369.1538816694.0@plugh.example.com>",
        "bounced_uid": "1E71F9C8-AEDA-48EB-98D0-76E898F6BB5C",
    },
    "apple-ccs-calendarserver/good_reply.eml": {
        "kind": Kind.ITIP,
        "method": Method.REPLY,
        "uid": "1E71F9C8-AEDA-48EB-98D0-76E898F6BB5C",
        "sequence": 7,
        "sender": "xyzzy@example.com",
        "replying": ("xyzzy@example.com", "ACCEPTED"),
        "organizer": "ical-living-on+d7cdf68d-8b73-4df1-ad3b-f08002fb285f@example.com",
        "start": datetime(2008, 8, 12, 17, 0, tzinfo=UTC),
    },
    "nextcloud-mail/request_google.eml": {
        "kind": Kind.ITIP,
        "method": Method.REQUEST,
        "method_hint": "REQUEST",
        "uid": NEXTCLOUD_UID,
        "start": datetime(2025, 2, 20, 18, 0, tzinfo=UTC),
    },
    "nextcloud-mail/request_proton_bridge.eml": {
        "kind": Kind.ITIP,
        "method": Method.REQUEST,
        "method_hint": None,
        "uid": NEXTCLOUD_UID,
    },
    "nextcloud-mail/request_application_ics.eml": {
        "kind": Kind.ITIP,
        "method": Method.REQUEST,
        "uid": NEXTCLOUD_UID,
    },
    "nextcloud-mail/request_outlook_com.eml": {
        "kind": Kind.ITIP,
        "method": Method.REQUEST,
        "uid": "1F0BD3F6FEFC421AAA5BE992D6992B6A",
        "start": datetime(2025, 2, 26, 7, 0, tzinfo=UTC),  # W. Europe Standard Time
        "organizer": "alice@example.org",
    },
    "thunderbird-comm-central/outlook-test-invite.eml": {
        "kind": Kind.ITIP,
        "method": Method.REQUEST,
        "uid": "030000008200E00074C5B7101A82E0080000000060B608D090DDD7010000000000000000"
        "100000004BE0CFFA54BCF64E956E34143362C3C0",
        "start": datetime(2021, 11, 27, 7, 0, tzinfo=UTC),  # FLE Standard Time, winter
    },
    "thunderbird-comm-central/teams-meeting-invite.eml": {
        "kind": Kind.ITIP,
        "method": Method.REQUEST,
        "start": datetime(2020, 12, 2, 17, 0, tzinfo=UTC),
        "organizer": "marge@example.com",
    },
    "thunderbird-comm-central/meet-meeting-invite.eml": {
        "kind": Kind.ITIP,
        "method": Method.REQUEST,
        "method_hint": "REQUEST",
        "uid": "65m17hsdolmotv3kvmrtg40ont@google.com",
        "sender": "example@gmail.com",
    },
    "thunderbird-comm-central/xpcshell-invite.eml": {
        "kind": Kind.ITIP,
        "method": Method.REQUEST,  # only in the MIME parameter
        "uid": "36138BFC6A7B03EFC2258776003DB5C5",
        "organizer": None,
        "start": datetime(2021, 10, 26, 6, 0, tzinfo=UTC),  # "FLE" read in the school zone
    },
    "thunderbird-comm-central/single-event.eml": {"method": Method.REQUEST, "sequence": 0},
    "thunderbird-comm-central/update-minor.eml": {"method": Method.REQUEST, "sequence": 0},
    "thunderbird-comm-central/update-major.eml": {"method": Method.REQUEST, "sequence": 2},
    "thunderbird-comm-central/cancel-single-event.eml": {"method": Method.CANCEL, "sequence": 1},
    "thunderbird-comm-central/repeat-event.eml": {"method": Method.REQUEST, "recurring": True},
    "thunderbird-comm-central/repeat-update-minor.eml": {"method": Method.REQUEST},
    "thunderbird-comm-central/repeat-update-major.eml": {"method": Method.REQUEST, "sequence": 2},
    "thunderbird-comm-central/exception-minor.eml": {
        "method": Method.REQUEST,
        "recurrence_id": datetime(2022, 3, 17, 11, 0, tzinfo=UTC),
    },
    "thunderbird-comm-central/exception-major.eml": {
        "method": Method.REQUEST,
        "sequence": 2,
        "recurrence_id": datetime(2022, 3, 17, 11, 0, tzinfo=UTC),
    },
    "thunderbird-comm-central/cancel-repeat-event.eml": {
        "method": Method.CANCEL,
        "start": None,  # the sample has no DTSTART; a CANCEL does not need one
    },
    "thunderbird-comm-central/event-with-file-attachment.eml": {
        "method": Method.REQUEST,
        "uid": f"{THUNDERBIRD_UID}-file",
    },
    "collective-icalendar/property_params.ics": {
        "method": Method.REQUEST,
        "uid": "XRIMCAL-628059586-522954492-9750559",
        "sequence": 2,
        "all_day": True,
    },
    "collective-icalendar/timezone_same_start.ics": {
        "method": Method.REQUEST,
        "start": datetime(2017, 2, 24, 20, 0, tzinfo=UTC),  # Pacific Standard Time
    },
    "collective-icalendar/alarm_google_future.ics": {"reason": "unsupported-method"},
    "collective-icalendar/issue_836_do_not_quote_tzid.ics": {"reason": "unsupported-method"},
    "collective-icalendar/issue_165_missing_event.ics": {"reason": "no-uid"},
    "collective-icalendar/timezone_same_start_and_offset.ics": {"reason": "no-method"},
    "collective-icalendar/issue_27_multiple_periods_in_freebusy_multiple_freebusies.ics": {
        "reason": "no-vevent"
    },
    "collective-icalendar/issue_27_multiple_periods_in_freebusy_one_freebusy.ics": {
        "reason": "no-vevent"
    },
}

_ITIP_FIELDS = frozenset(ItipMessage.__slots__)


def _read_email(path: Path) -> dict[str, object]:
    inbound: Inbound = extract(path.read_bytes(), tz=SCHOOL_TZ)
    facts: dict[str, object] = {
        "kind": inbound.kind,
        "sender": inbound.sender,
        "method_hint": inbound.method_hint,
        "failed_recipients": inbound.failed_recipients,
        "original_message_id": inbound.original_message_id,
        "bounced_uid": inbound.bounced.uid if inbound.bounced else None,
        "reason": inbound.reason,
    }
    if inbound.itip is not None:
        facts.update(_itip_facts(inbound.itip))
    return facts


def _read_ics(path: Path) -> dict[str, object]:
    try:
        message = read_itip(parse_calendar(path.read_bytes()), None, SCHOOL_TZ)
    except Unusable as exc:
        return {"reason": exc.reason}
    return _itip_facts(message)


def _itip_facts(message: ItipMessage) -> dict[str, object]:
    facts: dict[str, object] = {name: getattr(message, name) for name in _ITIP_FIELDS}
    replying = message.replying_attendee
    facts["replying"] = (replying.email, replying.partstat) if replying else None
    return facts


ALL_PRESENT = "every-listed-sample-is-present"


def _cases() -> list[Any]:
    if not SHARED.is_dir():
        return [pytest.param(None, id="shared-fixtures-missing")]
    files = sorted(
        p.relative_to(SHARED).as_posix() for p in SHARED.rglob("*") if p.suffix in (".eml", ".ics")
    )
    return [pytest.param(ALL_PRESENT, id=ALL_PRESENT)] + [pytest.param(n, id=n) for n in files]


@pytest.mark.parametrize("name", _cases())
def test_shared_client_message_is_classified(name: str | None) -> None:
    if name is None:
        pytest.skip(f"shared iMIP fixtures not found at {SHARED.resolve()}")
    if name == ALL_PRESENT:
        assert [n for n in EXPECTED if not (SHARED / n).is_file()] == []
        return
    path = SHARED / name
    # Reading raises nothing for any sample, also one added after this table was written.
    facts = _read_email(path) if path.suffix == ".eml" else _read_ics(path)
    expected = EXPECTED.get(name)
    if expected is None:
        return
    if path.suffix == ".eml" and "kind" not in expected:
        expected = {"kind": Kind.ITIP, **expected}
    assert {key: facts.get(key) for key in expected} == expected


# --- the same samples as a teacher's calendar: busy times ------------------------------------

#: Busy spans expected in a window around each sample's event (UTC).  Every other sample
#: only has to give busy times or a BadCalendarData, never anything else.
BUSY_EXPECTED: dict[str, tuple[tuple[datetime, datetime], list[tuple[datetime, datetime]]]] = {
    # Exchange CDO writes "BYDAY=MO, TU, WE, TH, FR" in a custom VTIMEZONE (+01/+02):
    # the daily stand-up at 10:00 is busy every weekday from 3 to 22 July 2015.
    "collective-icalendar/issue_165_missing_event.ics": (
        (datetime(2015, 7, 20, tzinfo=UTC), datetime(2015, 7, 25, tzinfo=UTC)),
        [
            (datetime(2015, 7, day, 8, 0, tzinfo=UTC), datetime(2015, 7, day, 8, 30, tzinfo=UTC))
            for day in (20, 21, 22)
        ],
    ),
    "thunderbird-comm-central/outlook-test-invite.eml": (
        (datetime(2021, 11, 27, tzinfo=UTC), datetime(2021, 11, 28, tzinfo=UTC)),
        [(datetime(2021, 11, 27, 7, 0, tzinfo=UTC), datetime(2021, 11, 27, 7, 30, tzinfo=UTC))],
    ),
}
ALL_TIME = (datetime(1990, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC))


def _calendar_data(path: Path) -> bytes | None:
    if path.suffix == ".ics":
        return path.read_bytes()
    return extract(path.read_bytes(), tz=SCHOOL_TZ).calendar


@pytest.mark.parametrize("name", _cases())
def test_shared_sample_gives_busy_times_or_a_bad_calendar_error(name: str | None) -> None:
    if name is None:
        pytest.skip(f"shared iMIP fixtures not found at {SHARED.resolve()}")
    if name == ALL_PRESENT:
        assert [n for n in BUSY_EXPECTED if not (SHARED / n).is_file()] == []
        return
    data = _calendar_data(SHARED / name)
    if data is None:
        return  # no calendar in this email
    window, expected = BUSY_EXPECTED.get(name, (ALL_TIME, None))
    try:
        busy = busy_times(data, *window, SCHOOL_TZ)
    except BadCalendarData:
        assert expected is None, f"{name} must be readable"
        return
    assert all(b.start < b.end and window[0] <= b.start for b in busy)
    if expected is not None:
        assert [(b.start, b.end) for b in busy] == expected
