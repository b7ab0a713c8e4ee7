"""What each kind of CalDAV server gets right: the table that decides free/busy locally or not.

Like python-caldav's compatibility hints, this is data, not ``if server == …`` in code.  The
integration tests check every ``freebusy_*`` flag against the embedded Radicale and Xandikos
(server REPORT against local expansion), so a server release that changes behaviour turns a
test red instead of silently changing our answers.

PURE: detection reads response headers that the connector already has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: account.freebusy values (config key ``accounts[].freebusy``).
FREEBUSY_AUTO = "auto"
FREEBUSY_LOCAL = "local"
FREEBUSY_SERVER = "server"


@dataclass(frozen=True, slots=True)
class ServerFeatures:
    """What one server kind does right (True) or wrong (False).

    ``freebusy_*`` flags describe the server's free-busy-query REPORT (RFC 4791 §7.10):

    * ``freebusy_query``: the REPORT is answered at all.
    * ``freebusy_keeps_wall_clock_across_dst``: a weekly event that began before a
      daylight-saving change stays at its local time after it.
    * ``freebusy_all_day_in_local_zone``: an all-day event blocks the local day, not the
      UTC day (the server would need the school's zone; RFC 4791 §9.9 leaves it to
      CALDAV:calendar-timezone).
    * ``freebusy_floating_in_local_zone``: floating times are read in the local zone.
    * ``freebusy_windows_tzid``: Windows zone names (``Eastern Standard Time``) as
      Outlook/Exchange write them are understood.
    * ``freebusy_honours_declined``: an invitation the calendar's owner declined (the owner,
      by the principal's calendar-user-address-set, RFC 6638 §2.4.1, an ATTENDEE with
      ``PARTSTAT=DECLINED``, stored as Nextcloud/sabre store it) leaves the time free
      (DESIGN §5).  RFC 4791 §7.10 does not ask it of the REPORT.

    ``sync_collection``: RFC 6578 sync-collection works; without it ctag polling is used.
    Detection: ``server_header`` is a word of the ``Server`` response header; ``dav_header``
    is the exact set of tokens in the ``DAV`` header this server version sends.
    """

    kind: str
    description: str
    server_header: str = ""
    dav_header: frozenset[str] = frozenset()
    sync_collection: bool = True
    freebusy_query: bool = True
    freebusy_keeps_wall_clock_across_dst: bool = False
    freebusy_all_day_in_local_zone: bool = False
    freebusy_floating_in_local_zone: bool = False
    freebusy_windows_tzid: bool = False
    freebusy_honours_declined: bool = False

    @property
    def freebusy_trusted(self) -> bool:
        """True when the server's free-busy REPORT gives the same answer as local expansion."""
        return (
            self.freebusy_query
            and self.freebusy_keeps_wall_clock_across_dst
            and self.freebusy_all_day_in_local_zone
            and self.freebusy_floating_in_local_zone
            and self.freebusy_windows_tzid
            and self.freebusy_honours_declined
        )


def _tokens(header: str) -> frozenset[str]:
    return frozenset(token.strip().lower() for token in header.split(",") if token.strip())


#: Measured against the embedded servers by tests/integration/test_caldav_freebusy_report.py.
FEATURES: dict[str, ServerFeatures] = {
    "radicale": ServerFeatures(
        kind="radicale",
        description="Radicale 3.9",
        server_header="radicale",
        dav_header=_tokens("1, 2, 3, calendar-access, addressbook, extended-mkcol"),
        # Issue 2 expected Radicale 3.9 to shift weekly events across DST by an hour; 3.9.0
        # measured right (vobject expands in the event's zone).  The test keeps watching.
        freebusy_keeps_wall_clock_across_dst=True,
        freebusy_all_day_in_local_zone=False,  # 2027-03-10 → 00:00Z–24:00Z
        freebusy_floating_in_local_zone=False,  # read as UTC
        freebusy_windows_tzid=False,  # "Eastern Standard Time" read as UTC
        # Radicale 3.9.0 counts a declined invitation busy (its principal has no email
        # address in its calendar-user-address-set either: it could not tell the owner).
        freebusy_honours_declined=False,
    ),
    "xandikos": ServerFeatures(
        kind="xandikos",
        description="Xandikos 0.4",
        server_header="xandikos",
        dav_header=_tokens(
            "1, 2, 3, calendar-access, calendar-auto-schedule, addressbook, extended-mkcol, "
            "add-member, sync-collection, quota"
        ),
        freebusy_keeps_wall_clock_across_dst=True,
        freebusy_all_day_in_local_zone=False,  # 2027-03-10 → 00:00Z–24:00Z
        freebusy_floating_in_local_zone=False,  # read as UTC
        freebusy_windows_tzid=True,
        # Xandikos 0.4.10 leaves out what the principal declined only when answering a
        # scheduling outbox POST (RFC 6638 §5); its free-busy-query REPORT counts it busy.
        freebusy_honours_declined=False,
    ),
}

#: Anything we have not measured: never trust its free-busy REPORT, try sync-collection.
UNKNOWN = ServerFeatures(kind="unknown", description="an unknown CalDAV server")


def detect(headers: Mapping[str, str]) -> ServerFeatures:
    """The table entry for the server that sent ``headers`` (case-insensitive names)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    server = lowered.get("server", "").lower()
    dav = _tokens(lowered.get("dav", ""))
    for features in FEATURES.values():
        if features.server_header and features.server_header in server:
            return features
    for features in FEATURES.values():
        if features.dav_header and dav == features.dav_header:
            return features
    return UNKNOWN


def freebusy_source(setting: str, features: ServerFeatures) -> str:
    """``"local"`` or ``"server"``: where free/busy comes from for an account.

    ``setting`` is ``account.freebusy``: ``local`` and ``server`` force; ``auto`` asks the
    table.
    """
    if setting == FREEBUSY_LOCAL:
        return FREEBUSY_LOCAL
    if setting == FREEBUSY_SERVER:
        return FREEBUSY_SERVER
    return FREEBUSY_SERVER if features.freebusy_trusted else FREEBUSY_LOCAL
