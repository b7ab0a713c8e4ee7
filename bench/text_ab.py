"""A/B of our two hand-written text layers against what the libraries give (issue 15, item 5).

* ``core/ical/text.py`` (``serialize``: the shared VTIMEZONE's text written once per
  process) against icalendar's own ``Calendar.to_ical()``, writing the invitations
  ``invite`` writes: the same calendars, one per meeting, with the school zone's VTIMEZONE.
* ``core/imip/headers.py`` (a header registry that makes each header class once and folds a
  header once) against the standard library's ``email.policy`` (``SMTP`` to build,
  ``default`` to read), building those invitations as emails and reading replies back.

Both sides run the real builders of :mod:`ptm_sync.core.imip.build`, in the same run, on the
same inputs; only the layer under test is swapped.  The bytes are compared too: a layer
that is faster but writes other bytes would be wrong, not fast.  ``RESULT`` figures are
speed-ups (library time / ours): a layer is kept only where its figure is well over 1.
"""

from __future__ import annotations

import argparse
import email.policy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from typing import Any
from zoneinfo import ZoneInfo

from _common import Figure, best_of, run, say

from ptm_sync.core.ical import itip
from ptm_sync.core.imip import build, parts

TZ = ZoneInfo("America/New_York")
START = datetime(2027, 4, 12, 19, 0, tzinfo=UTC)


def invitations(count: int) -> list[Any]:
    """``count`` invitations as ``invite`` makes them (distinct UIDs, times, parents)."""
    made = []
    for i in range(count):
        start = START + timedelta(minutes=15 * (i % 32), days=i // 32)
        inv = itip.Invitation(
            uid=f"{i:08x}-k3xk3xk3xk3xk3xk@lincoln.example.org",
            sequence=0,
            status="TENTATIVE",
            organizer="conferences@lincoln.example.org",
            organizer_name="Lincoln High School",
            attendee=f"parent{i}@example.net",
            attendee_name=f"Parent {i}",
            start=start,
            end=start + timedelta(minutes=15),
            dtstamp=START - timedelta(days=20),
            summary=f"Conference with Ada Lovelace about Kid {i}",
            description="Parent-teacher conference.\nAnswer this invitation to confirm.",
            location="https://meet.lincoln.example.org/ptm-room",
            video_url="https://meet.lincoln.example.org/ptm-room",
        )
        made.append(itip.build_request(inv, TZ))
    return made


def emails(calendars: list[Any]) -> list[bytes]:
    return [
        build.as_bytes(
            build.build_invitation_email(
                cal=cal,
                method="REQUEST",
                sender="conferences@lincoln.example.org",
                sender_name="Lincoln High School",
                to=f"parent{i}@example.net",
                to_name=f"Parent {i}",
                subject=f"Invitation: Spring conferences with Ada Lovelace {i}",
                text="Please answer this invitation.",
                html="<p>Please answer this invitation.</p>",
                message_id=f"<invitation.{i}@lincoln.example.org>",
                date=START - timedelta(days=20),
            )
        )
        for i, cal in enumerate(calendars)
    ]


@contextmanager
def swapped(**values: Any) -> Iterator[None]:
    """Module attributes of :mod:`ptm_sync.core.imip.build` replaced for the block."""
    saved = {name: getattr(build, name) for name in values}
    for name, value in values.items():
        setattr(build, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(build, name, value)


def _to_ical(cal: Any) -> bytes:
    data: bytes = cal.to_ical()
    return data


def icaltext_speedup(options: argparse.Namespace) -> Figure:
    count = 200 if options.quick else 1000
    calendars = invitations(count)
    ours = [build.serialize(c) for c in calendars]
    theirs = [c.to_ical() for c in calendars]
    assert ours == theirs, "serialize() writes other bytes than to_ical()"
    repeat = options.repeat or 5
    t_ours = best_of(repeat, lambda: [build.serialize(c) for c in calendars])
    t_lib = best_of(repeat, lambda: [c.to_ical() for c in calendars])
    say(f"{count} invitations: serialize {t_ours * 1e3:.1f} ms, to_ical {t_lib * 1e3:.1f} ms")
    return Figure("icaltext_speedup_over_to_ical", t_lib / t_ours, ">=", 1.5)


def _timed_build(calendars: list[Any], repeat: int) -> tuple[float, list[bytes]]:
    made: list[bytes] = []

    def once() -> None:
        made[:] = emails(calendars)

    return best_of(repeat, once), made


def _timed_read(raws: list[bytes], policy: Any, repeat: int) -> float:
    def once() -> None:
        for raw in raws:
            msg = BytesParser(policy=policy).parsebytes(raw)
            for name in ("From", "To", "Subject", "Message-ID", "Date", "Content-Type"):
                str(msg[name])

    return best_of(repeat, once)


def mailheaders_speedup(options: argparse.Namespace) -> Figure:
    count = 200 if options.quick else 1000
    calendars = invitations(count)
    repeat = options.repeat or 5
    stdlib_build = email.policy.SMTP.clone(cte_type="7bit")
    t_ours, ours = _timed_build(calendars, repeat)
    with swapped(_BUILD_POLICY=stdlib_build):
        t_lib, theirs = _timed_build(calendars, repeat)
    assert ours == theirs, "the header registry writes other bytes than the standard one"
    r_ours = _timed_read(ours, parts.READ_POLICY, repeat)
    r_lib = _timed_read(ours, email.policy.default, repeat)
    say(
        f"{count} emails: build ours {t_ours * 1e3:.0f} ms, stdlib {t_lib * 1e3:.0f} ms; "
        f"read ours {r_ours * 1e3:.0f} ms, stdlib {r_lib * 1e3:.0f} ms"
    )
    return Figure("mailheaders_speedup_over_stdlib", (t_lib + r_lib) / (t_ours + r_ours), ">=", 1.5)


FIGURES: list[Callable[[argparse.Namespace], Figure]] = [icaltext_speedup, mailheaders_speedup]

if __name__ == "__main__":
    raise SystemExit(run(__doc__, FIGURES))
