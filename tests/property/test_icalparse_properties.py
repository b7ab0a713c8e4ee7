"""Folding anywhere RFC 5545 §3.1 allows it never changes what a reply says.

Lines may be folded between any two octets, also inside a multi-octet UTF-8 character, and
mail gateways may change the line ends.  Whatever the generator did, the reader must get
back the text the attendee wrote, through the parser and through a whole iMIP message.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar, Event, vCalAddress

from ptm_sync.core.ical.parse import parse_calendar
from ptm_sync.core.imip import Kind, extract

NY = ZoneInfo("America/New_York")
# Multi-octet characters of two, three and four octets, and the characters TEXT escapes.
ALPHABET = "aé à–€😀;,\\\n"
notes = st.text(alphabet=ALPHABET, min_size=1, max_size=200).filter(lambda t: t.strip())
names = st.text(alphabet="abéüœ -", min_size=1, max_size=40).filter(lambda t: t.strip())


def reply(note: str, name: str) -> bytes:
    event = Event.new(uid="u-1@lincoln.example.org", comments=note)
    event.add("ATTENDEE", vCalAddress.new("jane@example.org", cn=name, partstat="DECLINED"))
    calendar = Calendar.new(method="REPLY", prodid="-//test//EN", subcomponents=[event])
    return calendar.to_ical()


def refold(data: bytes, cuts: list[float], line_end: bytes) -> bytes:
    """Unfold, then fold again at octet positions chosen by ``cuts``, with ``line_end``."""
    lines = data.replace(b"\r\n ", b"").split(b"\r\n")
    out = []
    for line in lines:
        positions = sorted(
            {int(cut * len(line)) for cut in cuts if 0 < cut * len(line) < len(line)}
        )
        pieces, last = [], 0
        for at in positions:
            pieces.append(line[last:at])
            last = at
        pieces.append(line[last:])
        out.append((line_end + b" ").join(pieces))
    return line_end.join(out)


@settings(max_examples=300, deadline=None)
@given(
    note=notes,
    name=names,
    cuts=st.lists(st.floats(0, 1), max_size=8),
    line_end=st.sampled_from([b"\r\n", b"\n", b"\r\r\n"]),
)
def test_any_folding_reads_back_the_same_note(
    note: str, name: str, cuts: list[float], line_end: bytes
) -> None:
    event = parse_calendar(refold(reply(note, name), cuts, line_end)).walk("VEVENT")[0]
    assert str(event["COMMENT"]) == note
    assert event["ATTENDEE"].params["CN"] == name


@settings(max_examples=100, deadline=None)
@given(note=notes, cuts=st.lists(st.floats(0, 1), max_size=8))
def test_any_folding_of_an_8bit_mail_part_reads_back_the_same_note(
    note: str, cuts: list[float]
) -> None:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "jane@example.org"
    msg["Message-ID"] = "<m1@example.org>"
    msg.set_content(
        refold(reply(note, "Zoë"), cuts, b"\r\n"),
        maintype="text",
        subtype="calendar",
        cte="8bit",
        params={"method": "REPLY", "charset": "utf-8"},
    )
    inbound = extract(msg.as_bytes(), tz=NY)
    assert inbound.kind is Kind.ITIP and inbound.itip is not None
    assert inbound.itip.comment == note.strip()
