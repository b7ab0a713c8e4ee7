"""Teachers' booking addresses (DESIGN §3).  PURE.

Each teacher has one: the roster's ``booking_address`` column when set, else the pattern
``[mail] booking_address`` with ``{teacher_key}`` filled in, else
``book+<teacher_key>@<the organizer's domain>``.  A parent's REQUEST to that address is
decided like a room mailbox request.
"""

from __future__ import annotations

import functools
import re

from ptm_sync.core.ical.itip import address_of

DEFAULT_PATTERN = "book+{teacher_key}@{domain}"


def booking_address(teacher_key: str, roster_value: str, pattern: str, organizer: str) -> str:
    """The booking address of the teacher with key ``teacher_key``, lowercased.

    ``roster_value``: the roster's column ("" when not set); ``pattern``: ``[mail]
    booking_address`` ("" when not set); ``organizer``: ``[mail] organizer``, whose domain
    the default address uses.
    """
    if roster_value.strip():
        return address_of(roster_value)
    domain = organizer.rsplit("@", 1)[-1]
    template = pattern.strip() or DEFAULT_PATTERN
    return address_of(template.replace("{teacher_key}", teacher_key).replace("{domain}", domain))


def teacher_key_in(address: str, pattern: str, organizer: str) -> str | None:
    """The teacher key an address made from ``pattern`` carries, or None.

    The inverse of :func:`booking_address` for teachers without a roster address:
    ``book+ada-lovelace@school.org`` → ``ada-lovelace``.
    """
    found = _matcher(pattern.strip() or DEFAULT_PATTERN, organizer.rsplit("@", 1)[-1]).fullmatch(
        address_of(address)
    )
    return found.group("key") if found else None


@functools.lru_cache(maxsize=16)
def _matcher(template: str, domain: str) -> re.Pattern[str]:
    text = re.escape(template.replace("{domain}", domain).lower())
    return re.compile(text.replace(re.escape("{teacher_key}"), r"(?P<key>[a-z0-9-]+)"))
