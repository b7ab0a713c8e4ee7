"""Teachers' booking addresses (DESIGN §3).  PURE.

Each teacher has one: the roster's ``booking_address`` column when set, else the pattern
``[mail] booking_address`` with ``{teacher_key}`` filled in, else
``book+<teacher_key>@<the organizer's domain>``.  A parent's REQUEST to that address is
decided like a room mailbox request.
"""

from __future__ import annotations

from ptm_sync.itip import address_of

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
