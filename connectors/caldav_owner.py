"""Whose calendar a CalDAV collection is: the owner's calendar user addresses.

An occurrence the teacher declined is free (DESIGN §5).  CalDAV scheduling servers
(Nextcloud, sabre/dav, RFC 6638 §3.2) keep such an invitation in the teacher's calendar: the
organizer's event with the teacher as an ATTENDEE, ``PARTSTAT=DECLINED``.  To know which
ATTENDEE is the teacher, the connector asks the server for the owner's addresses, and only
when an object it lists holds a declined attendee (:func:`connectors.ical.declines`):

1. the collection's owner principal: ``DAV:owner`` (RFC 3744 §5.1), or, when the collection
   gives none (Xandikos answers an empty one), ``DAV:current-user-principal`` (RFC 5397 §3).
   The PROPFIND a full load makes anyway asks for both (:meth:`Owners.note`); otherwise
   this is one PROPFIND depth 0 on the collection;
2. that principal's ``CALDAV:calendar-user-address-set`` (RFC 6638 §2.4.1): one PROPFIND
   depth 0 on the principal.

Both answers are kept for the connector's life, per collection and per principal, so a
pass costs them at most once, and a pass without declined invitations not at all.  Only
``mailto:`` addresses are kept, lower case and without ``mailto:`` (Radicale's set holds the
principal's path alone: there the roster email is the only address the sync has).
"""

from __future__ import annotations

import logging
from urllib.parse import unquote, urljoin

from connectors import dav_xml
from connectors.caldav_http import DavTransport
from connectors.caldav_listing import XML

log = logging.getLogger(__name__)

#: What a collection's PROPFIND asks besides its own properties, to name its owner.
OWNER_PROPS = (dav_xml.OWNER, dav_xml.CURRENT_USER_PRINCIPAL)


def principal_of(url: str, resource: dav_xml.DavResource) -> str | None:
    """The URL of the principal a collection's PROPFIND answer names (its DAV:owner, else
    DAV:current-user-principal), resolved against the collection ``url``; None if neither."""
    for prop in OWNER_PROPS:
        hrefs = resource.hrefs.get(prop)
        if hrefs:
            return urljoin(url, hrefs[0])
    return None


def email_addresses(hrefs: tuple[str, ...]) -> frozenset[str]:
    """The ``mailto:`` entries of a calendar-user-address-set, as lower-case email
    addresses without the scheme (``urn:uuid:``, ``https:`` and path entries are left out)."""
    found = set()
    for href in hrefs:
        scheme, _, rest = href.strip().partition(":")
        address = unquote(rest).strip().lower()
        if scheme.lower() == "mailto" and "@" in address:
            found.add(address)
    return frozenset(found)


class Owners:
    """The owner addresses of each collection, looked up once (see the module docstring)."""

    def __init__(self, http: DavTransport) -> None:
        self._http = http
        self._principals: dict[str, str | None] = {}  # collection URL → principal URL
        self._addresses: dict[str, frozenset[str]] = {}  # principal URL → addresses

    def note(self, url: str, resource: dav_xml.DavResource) -> None:
        """Keep the principal named in a PROPFIND of collection ``url`` made for another
        reason (it asked for :data:`OWNER_PROPS`): no request."""
        principal = principal_of(url, resource)
        if principal is not None or url not in self._principals:
            self._principals[url] = principal

    def of(self, url: str) -> frozenset[str]:
        """The addresses of the owner of collection ``url`` (empty when the server names
        none or will not say); at most two PROPFINDs the first time, none after.

        Raises:
            Refused, Unavailable: the transport's, account-wide (nothing is kept then).
        """
        if url not in self._principals:
            self._principals[url] = self._ask_principal(url)
        principal = self._principals[url]
        if principal is None:
            return frozenset()
        if principal not in self._addresses:
            self._addresses[principal] = self._ask_addresses(principal)
        return self._addresses[principal]

    def _ask_principal(self, url: str) -> str | None:
        reply = self._http.request(
            "PROPFIND", url, dav_xml.propfind(*OWNER_PROPS), {**XML, "Depth": "0"}
        )
        found = reply.multistatus().resources if reply.status == 207 else ()
        if not found:
            log.info("calendar %s: the server names no owner (HTTP %s)", url, reply.status)
            return None
        return principal_of(url, found[0])

    def _ask_addresses(self, principal: str) -> frozenset[str]:
        body = dav_xml.propfind(dav_xml.CALENDAR_USER_ADDRESS_SET)
        reply = self._http.request("PROPFIND", principal, body, {**XML, "Depth": "0"})
        found = reply.multistatus().resources if reply.status == 207 else ()
        hrefs = found[0].hrefs.get(dav_xml.CALENDAR_USER_ADDRESS_SET, ()) if found else ()
        addresses = email_addresses(hrefs)
        if not addresses:
            log.info(
                "principal %s: no email address in its calendar-user-address-set (HTTP %s)",
                principal,
                reply.status,
            )
        return addresses
