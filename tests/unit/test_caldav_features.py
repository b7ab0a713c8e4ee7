"""The per-server feature table: detection from headers, and where free/busy comes from."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connectors.caldav import resource_name
from connectors.caldav_features import FEATURES, UNKNOWN, detect, freebusy_source


def test_each_entry_is_filed_under_its_kind() -> None:
    assert all(features.kind == kind for kind, features in FEATURES.items())


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"Server": "Radicale/3.9.0"}, "radicale"),
        (
            {"server": "nginx", "DAV": "1, 2, 3, calendar-access, addressbook, extended-mkcol"},
            "radicale",
        ),
        (
            {
                "DAV": "1, 2, 3, calendar-access, calendar-auto-schedule, addressbook, "
                "extended-mkcol, add-member, sync-collection, quota"
            },
            "xandikos",
        ),
        ({"Server": "Xandikos/0.4.10"}, "xandikos"),
        ({"DAV": "1, 2, 3, calendar-access, calendar-schedule"}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_the_server_kind_is_detected_from_its_headers(headers: dict[str, str], kind: str) -> None:
    assert detect(headers).kind == kind


def test_forced_settings_win() -> None:
    assert freebusy_source("local", replace(UNKNOWN, freebusy_query=True)) == "local"
    assert freebusy_source("server", UNKNOWN) == "server"


def test_auto_uses_the_server_only_when_it_gets_everything_right() -> None:
    trusted = replace(
        UNKNOWN,
        freebusy_keeps_wall_clock_across_dst=True,
        freebusy_all_day_in_local_zone=True,
        freebusy_floating_in_local_zone=True,
        freebusy_windows_tzid=True,
        freebusy_honours_declined=True,
    )
    assert trusted.freebusy_trusted
    assert freebusy_source("auto", trusted) == "server"
    assert (
        freebusy_source("auto", replace(trusted, freebusy_all_day_in_local_zone=False)) == "local"
    )
    assert freebusy_source("auto", UNKNOWN) == "local"
    # A REPORT that counts what the teacher declined as busy loses slots: never in auto.
    assert freebusy_source("auto", replace(trusted, freebusy_honours_declined=False)) == "local"


def test_neither_embedded_server_honours_a_declined_invitation_in_its_report() -> None:
    """Measured by tests/integration/test_caldav_freebusy_report.py."""
    assert not FEATURES["radicale"].freebusy_honours_declined
    assert not FEATURES["xandikos"].freebusy_honours_declined
    assert not UNKNOWN.freebusy_honours_declined


def test_radicale_and_xandikos_are_not_trusted_because_all_day_events_land_in_utc() -> None:
    assert not FEATURES["radicale"].freebusy_all_day_in_local_zone
    assert not FEATURES["xandikos"].freebusy_all_day_in_local_zone
    assert freebusy_source("auto", FEATURES["radicale"]) == "local"
    assert freebusy_source("auto", FEATURES["xandikos"]) == "local"


@pytest.mark.parametrize("uid", ["m-42", "a.b_c~d-1", "9b2f0c5e-3f00-4a4e-9d5e-0123456789ab"])
def test_a_url_safe_uid_names_its_resource(uid: str) -> None:
    assert resource_name(uid) == f"{uid}.ics"


@pytest.mark.parametrize("uid", ["m-42@school.test", "a/b", "x y", "ü", "a" * 300])
def test_other_uids_get_a_stable_hashed_name(uid: str) -> None:
    name = resource_name(uid)
    assert name == resource_name(uid) and name.endswith(".ics")
    assert resource_name(name[:-4]) == name  # the hashed name is itself URL-safe
