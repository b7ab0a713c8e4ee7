"""Structured mutations of real inbound mail, as Hypothesis strategies (issue 7, item 11).

The seeds are real messages: the project's fixtures (``tests/fixtures``), the shared
interop fixtures (``/work/shared/fixtures/imip``, when the folder exists) and replies,
counters and booking requests made for the seeded school's own meetings (so mutations
reach the booking engine, not only the reader).  :func:`messages` draws a seed and applies
a few mutations that know the shape of mail and iCalendar:

* headers: raw UTF-8, Latin-1, invalid UTF-8, controls and NUL in any header; RFC 2047
  encoded words with odd charsets and broken payloads; folding anywhere; headers dropped,
  duplicated or made huge;
* MIME: another content type or charset, a broken or foreign transfer encoding (base64
  cut off, quoted-printable with bad escapes), parts wrapped in nested multiparts or in a
  ``message/rfc822``, boundaries that never close;
* iCalendar: a property given a hostile value (bad dates, unknown TZIDs, huge numbers,
  long text, recurrence rules), lines duplicated or dropped, BEGIN/END unbalanced,
  folding inside UTF-8 characters, components repeated;
* octets: a few flipped, inserted or cut anywhere.

Pure functions of the drawn values, so Hypothesis can shrink a failing input.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path("/work/shared/fixtures/imip")
#: Failing inputs `make fuzz` found, replayed by the short run (tests/fuzz/test_fuzz_inbound).
CORPUS = Path(__file__).resolve().parent / "corpus"


def fixture_messages() -> list[bytes]:
    """Every .eml of the project's and the shared fixtures, and their .ics wrapped as mail."""
    folders = [ROOT / "tests" / "fixtures", SHARED]
    found: list[bytes] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix == ".eml":
                found.append(path.read_bytes())
            elif path.suffix == ".ics":
                found.append(as_mail(path.read_bytes()))
    return found


def corpus_messages() -> list[tuple[str, bytes]]:
    """The saved failing inputs, by file name: ``found-*.eml`` from the Hypothesis run,
    ``atheris-*`` from the coverage-guided one."""
    if not CORPUS.is_dir():
        return []
    return [
        (p.name, p.read_bytes())
        for p in sorted(CORPUS.iterdir())
        if p.is_file() and p.name.startswith(("found-", "atheris-"))
    ]


def as_mail(calendar: bytes, *, sender: str = "parent@example.net") -> bytes:
    """A bare calendar as the body of a one-part email."""
    head = (
        f"From: {sender}\r\nTo: conferences@lincoln.example.org\r\nSubject: ics\r\n"
        "Message-ID: <ics@example.net>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/calendar; charset=utf-8\r\n\r\n"
    ).encode()
    return head + calendar


# --- the values mutations put in ----------------------------------------------------------

_ODD_TEXT = [
    b"Zo\xc3\xab M\xc3\xbcller <zo\xc3\xab@ex\xc3\xa4mple.de>",  # RFC 6532
    b"M\xfcller",  # Latin-1
    b"\xff\xfe\xc3(\x80",  # invalid UTF-8
    b"\x00\x01\x1b[31m\x7f",  # NUL and controls
    b"=?utf-8?b?WsO2w6s=?= <z@x.de>",
    b"=?x-unknown?q?=FF=FE?=",
    b"=?utf-8?b?!!!notbase64?=",
    b"=?iso-2022-jp?b?GyRCJDMkcyRLJEEkTxsoQg==?=",
    b"=?utf-8?q?a=ZZb?=",
    b"<>",
    b"<<<@>>>",
    b'"unterminated <a@b.c>',
    b"a@b.c, , ,, <c@d.e>, (comment) f@g.h",
    b"rfc822;x@y.z",
    b"\xe2\x80\xae\xe2\x80\x8b",  # right-to-left override, zero width space
    b"x" * 5000,
]
_ODD_HEADER_NAMES = [
    b"From",
    b"Reply-To",
    b"To",
    b"Cc",
    b"Subject",
    b"Message-ID",
    b"In-Reply-To",
    b"Date",
    b"Delivered-To",
    b"X-Original-To",
    b"Original-Recipient",
    b"Auto-Submitted",
    b"Authentication-Results",
    b"Content-Type",
    b"Content-Transfer-Encoding",
    b"Content-Disposition",
    b"MIME-Version",
    b"X-Failed-Recipients",
]
_CONTENT_TYPES = [
    b"text/calendar",
    b"text/calendar; method=REPLY; charset=utf-8",
    b'text/calendar; method=\xc3\xa9; charset="utf-16"',
    b"text/calendar; charset=base64",
    b"text/calendar; charset*=x-bogus''%FF%FE",
    b'application/ics; name="invite.ics"',
    b"application/octet-stream; name*=utf-8''%E2%82%AC.ics",
    b"multipart/mixed",
    b'multipart/mixed; boundary=""',
    b"multipart/report; report-type=delivery-status; boundary=x",
    b"message/rfc822",
    b"message/delivery-status",
    b"text/plain; charset=x-unknown-8bit",
    b";;;===",
    b"text/calendar; charset=utf-8; method=REPLY; " + b"x=y; " * 200,
]
_ENCODINGS = [b"base64", b"quoted-printable", b"8bit", b"7bit", b"binary", b"x-uuencode", b"\xff"]
_ICAL_NAMES = [
    "DTSTART",
    "DTEND",
    "DTSTAMP",
    "DURATION",
    "RECURRENCE-ID",
    "SEQUENCE",
    "UID",
    "ATTENDEE",
    "ORGANIZER",
    "METHOD",
    "STATUS",
    "COMMENT",
    "RRULE",
    "RDATE",
    "EXDATE",
    "TZID",
    "TZOFFSETFROM",
    "TZOFFSETTO",
    "REQUEST-STATUS",
    "BEGIN",
    "END",
]
_ICAL_VALUES = [
    "20271340T250000",
    "20270230",
    "00000000T000000Z",
    "99991231T235959Z",
    "20270412T150000Z/PT15M",
    "-P1W2DT3H",
    "P99999999999D",
    "99999999999999999999",
    "-1",
    "FREQ=SECONDLY",
    "FREQ=DAILY;COUNT=1000000",
    "FREQ=WEEKLY;BYDAY=MO, TU,WE;UNTIL=20271340",
    "FREQ=YEARLY;BYSETPOS=0;BYWEEKNO=99",
    "mailto:",
    "mailto:%00%ff@x",
    "mailto:zo\u00eb@ex\u00e4mple.de",
    "VEVENT",
    "VTIMEZONE",
    "VCALENDAR",
    "X-NOTHING",
    "REPLY",
    "COUNTER",
    "PUBLISH",
    "2.0;Success;" + "x" * 3000,
    "\u202e\u200b",
    "\\n\\,\\;\\\\\\",
    ",,,,,,",
]
_ICAL_PARAMS = [
    "",
    ";TZID=Nowhere/Else",
    ';TZID="W. Europe Standard Time"',
    ";TZID=/freeassociation.sourceforge.net/Europe/Berlin",
    ";TZID=Z",
    ";VALUE=DATE",
    ";VALUE=PERIOD",
    ";VALUE=BOGUS",
    ';PARTSTAT=ACCEPTED;CN="a:b;c"',
    ";PARTSTAT=X-" + "Y" * 200,
    ';X-A="unterminated',
    ";=;=;",
]


# --- mutations ----------------------------------------------------------------------------

Mutation = Callable[[bytes], bytes]


def _split(raw: bytes) -> tuple[list[bytes], bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(sep)
        if found:
            return re.split(rb"\r?\n", head), sep, body
    return re.split(rb"\r?\n", raw), b"", b""


def _join(lines: Sequence[bytes], sep: bytes, body: bytes) -> bytes:
    return b"\r\n".join(lines) + (sep or b"\r\n\r\n") + body


@st.composite
def header_mutation(draw: st.DrawFn) -> Mutation:
    name = draw(st.sampled_from(_ODD_HEADER_NAMES))
    value = draw(st.sampled_from(_ODD_TEXT) | st.binary(max_size=60))
    how = draw(st.sampled_from(["replace", "add", "drop", "fold", "duplicate"]))
    at = draw(st.integers(min_value=0, max_value=200))

    def mutate(raw: bytes) -> bytes:
        lines, sep, body = _split(raw)
        index = next(
            (i for i, line in enumerate(lines) if line.lower().startswith(name.lower() + b":")),
            None,
        )
        if how == "add" or index is None:
            lines.insert(min(at, len(lines)), name + b": " + value)
        elif how == "replace":
            lines[index] = name + b": " + value
        elif how == "drop":
            del lines[index]
        elif how == "duplicate":
            lines.insert(index, lines[index] + b" " + value)
        else:  # fold at an arbitrary octet, inside a UTF-8 character or an encoded word
            line = lines[index]
            cut = at % max(len(line), 1)
            lines[index] = line[:cut] + b"\r\n " + line[cut:]
        return _join(lines, sep, body)

    return mutate


@st.composite
def mime_mutation(draw: st.DrawFn) -> Mutation:
    kind = draw(st.sampled_from(["type", "encoding", "wrap", "rfc822", "boundary", "b64", "qp"]))
    ctype = draw(st.sampled_from(_CONTENT_TYPES))
    encoding = draw(st.sampled_from(_ENCODINGS))
    depth = draw(st.integers(min_value=1, max_value=30))
    cut = draw(st.integers(min_value=0, max_value=4000))

    def mutate(raw: bytes) -> bytes:
        lines, sep, body = _split(raw)
        if kind == "type":
            kept = [line for line in lines if not line.lower().startswith(b"content-type:")]
            return _join([*kept, b"Content-Type: " + ctype], sep, body)
        if kind == "encoding":
            kept = [line for line in lines if not line.lower().startswith(b"content-transfer")]
            return _join([*kept, b"Content-Transfer-Encoding: " + encoding], sep, body)
        if kind in ("wrap", "rfc822"):
            inner = raw
            for level in range(depth if kind == "wrap" else 1):
                boundary = b"=_fuzz_%d" % level
                inner = (
                    b'Content-Type: multipart/mixed; boundary="'
                    + boundary
                    + b'"\r\n\r\n--'
                    + boundary
                    + b"\r\n"
                    + inner
                    + b"\r\n--"
                    + boundary
                    + b"--\r\n"
                    if kind == "wrap"
                    else b"Content-Type: message/rfc822\r\n\r\n" + inner
                )
            head = [line for line in lines if not line.lower().startswith(b"content-")]
            return b"\r\n".join(head) + b"\r\n" + inner
        if kind == "boundary":  # the closing delimiter and what follows it cut off
            return raw[: len(raw) - min(cut, len(raw) // 2)]
        # the body re-encoded, then broken: cut base64, bad quoted-printable escapes
        kept = [line for line in lines if not line.lower().startswith(b"content-transfer")]
        if kind == "b64":
            encoded = base64.encodebytes(body)
            encoded = encoded[: max(len(encoded) - cut % 7, 1)] + b"=!\r\n"
            return _join([*kept, b"Content-Transfer-Encoding: base64"], sep, encoded)
        broken = body.replace(b"\r\n", b"=\r\n", 3).replace(b"a", b"=ZZ", 2) + b"=F"
        return _join([*kept, b"Content-Transfer-Encoding: quoted-printable"], sep, broken)

    return mutate


@st.composite
def ical_mutation(draw: st.DrawFn) -> Mutation:
    kind = draw(st.sampled_from(["set", "add", "drop", "dup", "unbalance", "fold", "repeat"]))
    name = draw(st.sampled_from(_ICAL_NAMES))
    params = draw(st.sampled_from(_ICAL_PARAMS))
    value = draw(st.sampled_from(_ICAL_VALUES) | st.text(max_size=40))
    at = draw(st.integers(min_value=0, max_value=10_000))
    times = draw(st.integers(min_value=2, max_value=60))

    def mutate(raw: bytes) -> bytes:
        start = raw.find(b"BEGIN:VCALENDAR")
        end = raw.rfind(b"END:VCALENDAR")
        if start < 0 or end < start:  # base64 or no calendar: mutate the octets instead
            return raw
        body = raw[start:end]
        lines = re.split(rb"\r?\n", body)
        line = f"{name}{params}:{value}".encode("utf-8", "surrogatepass")
        where = at % max(len(lines), 1)
        if kind == "set":
            same = [i for i, x in enumerate(lines) if x.upper().startswith(name.encode())]
            lines[same[at % len(same)] if same else where] = line
        elif kind == "add":
            lines.insert(where, line)
        elif kind == "drop" and lines:
            del lines[where]
        elif kind == "dup" and lines:
            lines[where:where] = [lines[where]] * times
        elif kind == "unbalance":
            lines.insert(where, b"BEGIN:" + value.encode("utf-8", "surrogatepass")[:20])
        elif kind == "fold" and lines:
            target = lines[where]
            cut = at % max(len(target), 1)
            lines[where] = target[:cut] + b"\r\n " + target[cut:]
        elif kind == "repeat":
            first = body.find(b"BEGIN:VEVENT")
            last = body.find(b"END:VEVENT")
            if 0 <= first < last:
                event = body[first : last + len(b"END:VEVENT\r\n")]
                return raw[: start + last] + event * times + raw[start + last :]
        return raw[:start] + b"\r\n".join(lines) + raw[end:]

    return mutate


@st.composite
def octet_mutation(draw: st.DrawFn) -> Mutation:
    edits = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["flip", "insert", "cut"]),
                st.integers(min_value=0, max_value=1 << 20),
                st.binary(min_size=1, max_size=8),
            ),
            min_size=1,
            max_size=4,
        )
    )

    def mutate(raw: bytes) -> bytes:
        data = bytearray(raw)
        for how, at, octets in edits:
            if not data:
                break
            where = at % len(data)
            if how == "flip":
                data[where] ^= octets[0] or 0x80
            elif how == "insert":
                data[where:where] = octets
            else:
                del data[where : where + len(octets) * 16]
        return bytes(data)

    return mutate


def mutations() -> st.SearchStrategy[Mutation]:
    return st.one_of(header_mutation(), mime_mutation(), ical_mutation(), octet_mutation())


def messages(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """A seed with up to four mutations applied in turn (none: the seed itself)."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        raw = draw(st.sampled_from(seeds))
        for mutate in draw(st.lists(mutations(), max_size=4)):
            raw = mutate(raw)
        return raw

    return build()
