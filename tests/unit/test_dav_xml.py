"""WebDAV/CalDAV request bodies and multistatus answers, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors import dav_xml
from connectors.caldav_owner import email_addresses, principal_of
from connectors.dav_xml import (
    CALDAV,
    CTAG,
    DAV,
    NO_UID_CONFLICT,
    SYNC_TOKEN,
    VALID_SYNC_TOKEN,
    parse_multistatus,
    parse_xml,
    preconditions,
)

START = datetime(2027, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
END = datetime(2027, 4, 1, tzinfo=UTC)


def test_calendar_query_asks_for_whole_vevents_overlapping_the_range_in_utc() -> None:
    root = parse_xml(dav_xml.calendar_query(START, END))
    assert root.tag == f"{{{CALDAV}}}calendar-query"
    assert [el.tag for el in root.find(f"{{{DAV}}}prop")] == [
        dav_xml.GETETAG,
        dav_xml.CALENDAR_DATA,
    ]
    assert root.find(f".//{{{CALDAV}}}expand") is None  # never expanded by the server
    filters = root.findall(f".//{{{CALDAV}}}comp-filter")
    assert [f.get("name") for f in filters] == ["VCALENDAR", "VEVENT"]
    time_range = filters[1].find(f"{{{CALDAV}}}time-range")
    assert (time_range.get("start"), time_range.get("end")) == (
        "20270301T000000Z",
        "20270401T000000Z",
    )


def test_time_ranges_refuse_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        dav_xml.calendar_query(datetime(2027, 3, 1), END)


def test_sync_collection_carries_the_token_and_level_one() -> None:
    root = parse_xml(dav_xml.sync_collection("http://radicale.org/ns/sync/abc"))
    assert root.tag == f"{{{DAV}}}sync-collection"
    assert root.findtext(SYNC_TOKEN) == "http://radicale.org/ns/sync/abc"
    assert root.findtext(f"{{{DAV}}}sync-level") == "1"


def test_multiget_lists_each_href() -> None:
    root = parse_xml(dav_xml.calendar_multiget(["/cal/a.ics", "/cal/b%40x.ics"]))
    assert [h.text for h in root.findall(f"{{{DAV}}}href")] == ["/cal/a.ics", "/cal/b%40x.ics"]


def test_free_busy_query_has_only_a_time_range() -> None:
    root = parse_xml(dav_xml.free_busy_query(START, END))
    assert [el.tag for el in root] == [f"{{{CALDAV}}}time-range"]


def test_uid_query_matches_the_uid_property() -> None:
    root = parse_xml(dav_xml.uid_query("m-1@school"))
    prop_filter = root.find(f".//{{{CALDAV}}}prop-filter")
    assert prop_filter.get("name") == "UID"
    assert prop_filter.findtext(f"{{{CALDAV}}}text-match") == "m-1@school"


def test_propfind_asks_for_the_named_properties() -> None:
    root = parse_xml(dav_xml.propfind(SYNC_TOKEN, CTAG))
    assert [el.tag for el in root.find(f"{{{DAV}}}prop")] == [SYNC_TOKEN, CTAG]


RADICALE_SYNC = b"""<?xml version='1.0' encoding='utf-8'?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<sync-token>http://radicale.org/ns/sync/5604</sync-token>
<response><href>/teacher/cal/one.ics</href><propstat><prop><getetag>"88dd"</getetag>
<C:calendar-data>BEGIN:VCALENDAR
END:VCALENDAR
</C:calendar-data></prop><status>HTTP/1.1 200 OK</status></propstat></response>
<response><href>/teacher/cal/two.ics</href><status>HTTP/1.1 404 Not Found</status></response>
</multistatus>"""

XANDIKOS_SYNC = b"""<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<response><href>http://127.0.0.1:8080/teacher/calendars/cal/one.ics</href>
<propstat><status>HTTP/1.1 200 OK</status><prop><getetag>"753b"</getetag></prop></propstat>
<propstat><status>HTTP/1.1 404 Not Found</status><prop><C:calendar-data /></prop></propstat>
</response><sync-token>62fbf359</sync-token></multistatus>"""


def test_a_sync_answer_gives_changed_objects_removed_hrefs_and_the_new_token() -> None:
    answer = parse_multistatus(parse_xml(RADICALE_SYNC))
    assert answer.sync_token == "http://radicale.org/ns/sync/5604"
    one, two = answer.resources
    assert (one.href, one.status, one.etag) == ("/teacher/cal/one.ics", 200, '"88dd"')
    assert one.calendar_data == "BEGIN:VCALENDAR\nEND:VCALENDAR\n"
    assert (two.href, two.status) == ("/teacher/cal/two.ics", 404)
    assert not answer.truncated


def test_a_property_the_server_lacks_is_absent_and_full_urls_become_paths() -> None:
    (one,) = parse_multistatus(parse_xml(XANDIKOS_SYNC)).resources
    assert one.href == "/teacher/calendars/cal/one.ics"
    assert one.etag == '"753b"' and one.calendar_data is None


def test_a_507_response_marks_the_answer_truncated() -> None:
    body = b"""<multistatus xmlns="DAV:"><response><href>/cal/a.ics</href><propstat><prop>
    <getetag>"1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response>
    <response><href>/cal/</href><status>HTTP/1.1 507 Insufficient Storage</status></response>
    <sync-token>t2</sync-token></multistatus>"""
    answer = parse_multistatus(parse_xml(body))
    assert answer.truncated and [r.href for r in answer.resources] == ["/cal/a.ics"]


def test_resourcetype_tells_a_calendar_collection() -> None:
    body = b"""<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"
      xmlns:CS="http://calendarserver.org/ns/"><response><href>/cal/</href><propstat><prop>
      <resourcetype><collection/><C:calendar/></resourcetype><CS:getctag>"c1"</CS:getctag>
      </prop><status>HTTP/1.1 200 OK</status></propstat><propstat><prop><sync-token/></prop>
      <status>HTTP/1.1 404 Not Found</status></propstat></response></multistatus>"""
    (collection,) = parse_multistatus(parse_xml(body)).resources
    assert collection.is_calendar
    assert collection.props[CTAG] == '"c1"'
    assert SYNC_TOKEN not in collection.props


#: What Radicale 3.9 and Xandikos 0.4 answer for a collection's owner (measured), and a
#: Nextcloud principal's calendar-user-address-set (mailto:, then its own paths).
OWNERS = b"""<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<response><href>/teacher/ada/</href><propstat><prop><owner><href>/teacher/</href></owner>
<current-user-principal><href>/teacher/</href></current-user-principal></prop>
<status>HTTP/1.1 200 OK</status></propstat></response>
<response><href>/teacher/calendars/ada/</href><propstat><status>HTTP/1.1 200 OK</status>
<prop><owner /><current-user-principal><href>/teacher/</href></current-user-principal></prop>
</propstat></response>
<response><href>/remote.php/dav/principals/users/ada/</href><propstat><prop>
<C:calendar-user-address-set><href>mailto:Ada.Lovelace@school.test</href>
<href>/remote.php/dav/principals/users/ada/</href></C:calendar-user-address-set></prop>
<status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"""


def test_href_valued_properties_keep_their_hrefs_as_sent() -> None:
    radicale, xandikos, nextcloud = parse_multistatus(parse_xml(OWNERS)).resources
    assert radicale.hrefs == {
        dav_xml.OWNER: ("/teacher/",),
        dav_xml.CURRENT_USER_PRINCIPAL: ("/teacher/",),
    }
    assert dav_xml.OWNER not in xandikos.hrefs  # an empty owner names nobody
    assert xandikos.hrefs[dav_xml.CURRENT_USER_PRINCIPAL] == ("/teacher/",)
    assert nextcloud.hrefs[dav_xml.CALENDAR_USER_ADDRESS_SET] == (
        "mailto:Ada.Lovelace@school.test",  # not reduced to a path
        "/remote.php/dav/principals/users/ada/",
    )


def test_the_owner_is_the_dav_owner_else_the_current_user_principal() -> None:
    radicale, xandikos, _ = parse_multistatus(parse_xml(OWNERS)).resources
    assert principal_of("http://dav.test/teacher/ada/", radicale) == "http://dav.test/teacher/"
    assert principal_of("http://dav.test/x/", xandikos) == "http://dav.test/teacher/"
    assert principal_of("http://dav.test/x/", dav_xml.DavResource("/x/")) is None


def test_only_mailto_addresses_are_the_owners_emails() -> None:
    *_, nextcloud = parse_multistatus(parse_xml(OWNERS)).resources
    hrefs = nextcloud.hrefs[dav_xml.CALENDAR_USER_ADDRESS_SET]
    assert email_addresses(hrefs) == {"ada.lovelace@school.test"}
    assert email_addresses(("MAILTO:A%40b.test", "urn:uuid:1", "mailto:", "/p/")) == {"a@b.test"}


def test_anything_but_a_multistatus_is_empty() -> None:
    assert parse_multistatus(parse_xml(b"<error xmlns='DAV:'/>")).resources == ()
    assert parse_multistatus(None).resources == ()


def test_preconditions_of_a_dav_error_body() -> None:
    assert preconditions(b"<error xmlns='DAV:'><valid-sync-token/></error>") == {
        VALID_SYNC_TOKEN: []
    }
    body = (
        b"<D:error xmlns:D='DAV:' xmlns:C='urn:ietf:params:xml:ns:caldav'>"
        b"<C:no-uid-conflict><D:href>/cal/other.ics</D:href></C:no-uid-conflict></D:error>"
    )
    assert preconditions(body) == {NO_UID_CONFLICT: ["/cal/other.ics"]}


@pytest.mark.parametrize(
    "body", [b"", b"Precondition failed.", b"<html/>", b"<multistatus xmlns='DAV:'/>"]
)
def test_bodies_that_are_no_dav_error_have_no_preconditions(body: bytes) -> None:
    assert preconditions(body) == {}


def test_entities_are_not_expanded() -> None:
    body = b"""<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x "boom">]>
    <multistatus xmlns="DAV:"><sync-token>&x;</sync-token></multistatus>"""
    assert parse_multistatus(parse_xml(body)).sync_token != "boom"
