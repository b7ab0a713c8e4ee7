"""The demo's story, told through the real command line on embedded servers.

1. Radicale holds six teachers' calendars; the roster is imported and the calendars synced;
   the matrix shows who is free when.
2. `invite` plans each family's evening and sends the invitations into a local SMTP sink.
3. Simulated parents answer from Outlook, Gmail, Apple Mail, Thunderbird and Proton; each
   reply goes through `mail deliver`, as an MTA would pipe it.
4. `outbox flush` writes the confirmed meetings into the teachers' Radicale calendars and
   sends the parents their confirmations.
5. Two families who joined late invite Grace Hopper's booking address to the same free
   time, one right after the other: the first is accepted (REPLY ACCEPTED, her calendar
   gets the event), the second declined with three free times (first come, first served).
6. The daemon serves the published pages until Ctrl-C (or ends with `--once`).
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.message
import email.policy
import io
import json
import shutil
import signal
import sys
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Protocol

from caldav.davclient import DAVClient
from icalendar import Calendar

from connectors.base import CalendarRef, Horizon
from connectors.caldav import CalDAVConnector
from ptm_sync.adapters.files.filemodes import make_private_dir, write_private
from ptm_sync.app.context import App
from ptm_sync.config import settings as config_mod
from ptm_sync.config.settings import AccountConfig, Secret
from ptm_sync.core.errors import UserError
from ptm_sync.demo import evening, organizers, parents, school
from ptm_sync.demo.embedded import (
    EmbeddedServer,
    SmtpSink,
    free_port,
    start_radicale,
    start_smtp_sink,
)

DEMO_USER = "demo"


def _say(text: str = "") -> None:
    print(text, flush=True)


class Service(Protocol):
    """The daemon, as the demo runs it (:class:`ptm_sync.interfaces.daemon.Daemon`)."""

    def start(self) -> str: ...
    def sync_job(self) -> None: ...
    def stop(self) -> None: ...
    def loop(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Shell:
    """What the command line hands the demo: its ``main`` and the daemon.  The demo sits
    below the interfaces (DESIGN §2) and never imports them."""

    main: Callable[[list[str]], int]
    daemon: Callable[[App], Service]


def _run(
    shell: Shell, config: Path, *argv: str, stdin: bytes | None = None, quiet: bool = False
) -> str:
    """Run one `ptm-sync` command in this process, as the user would type it."""
    main = shell.main
    if not quiet:
        # Files of the demo's folder by their names: the folder may be gone after --once.
        shown = [a.removeprefix(f"{config.parent}/") for a in argv]
        _say(f"\n$ ptm-sync {' '.join(shown)}")
    out = io.StringIO()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        with contextlib.redirect_stdout(out):
            code = main(["--config", str(config), *argv])
    finally:
        sys.stdin = saved
    if not quiet:
        _say(out.getvalue().rstrip())
    if code != 0:
        raise UserError(f"demo step `ptm-sync {' '.join(argv)}` failed with exit code {code}")
    return out.getvalue()


def seed_calendars(radicale: EmbeddedServer, today: date) -> dict[str, str]:
    """Create one calendar per teacher in Radicale and fill it; returns email → path."""

    client = DAVClient(radicale.url, username=DEMO_USER, password=DEMO_USER)
    principal = client.principal()
    paths: dict[str, str] = {}
    for teacher in school.TEACHERS:
        cal_id = teacher.email.split("@")[0].replace(".", "-")
        calendar = principal.make_calendar(name=teacher.name, cal_id=cal_id)
        for ics in school.calendars(today)[teacher.email]:
            calendar.save_event(ics)
        paths[teacher.email] = f"/{DEMO_USER}/{cal_id}/"
    return paths


def _subject(raw: bytes) -> str:
    subject = str(email.message_from_bytes(raw, policy=email.policy.default)["Subject"])
    return " ".join(subject.split())  # a folded header reads as one line


def _free_times(raw: bytes) -> list[str]:
    """The free times a decline offers, as its text lists them."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    if "These times are free:" not in text:
        return []
    listed = text.split("These times are free:", 1)[1].strip().splitlines()
    return ["free instead: " + line[2:] for line in listed if line.startswith("- ")]


def _calendar_method(raw: bytes) -> str | None:
    message = email.message_from_bytes(raw)
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            return str(part.get_param("method") or "") or None
    return None


def parents_answer(shell: Shell, config: Path, sink: SmtpSink) -> None:
    """Each simulated family answers its invitations with its own mail client."""
    tz = school.TZ
    by_guardian: dict[str, list[bytes]] = defaultdict(list)
    for _, recipients, raw in sink.messages:
        if _calendar_method(raw) == "REQUEST":
            by_guardian[recipients[0]].append(raw)
    now = datetime.now(UTC)
    for guardian, (client, answers) in school.ANSWERS.items():
        invitations = sorted(by_guardian.get(guardian, []), key=_start_of)
        for raw, answer in zip(invitations, answers, strict=False):
            if answer is None:
                _say(f"  {guardian:<27} ({client}) does not answer {_subject(raw)[12:]}")
                continue
            if answer == "later":
                asked = parents.Invitation(raw, tz).message
                assert asked.start is not None and asked.end is not None
                later = timedelta(hours=2)
                reply = parents.propose_new_time(
                    raw,
                    asked.start + later,
                    asked.end + later,
                    tz=tz,
                    now=now,
                    comment="Could we make it two hours later?",
                )
                answer = "propose"  # "proposes a new time"
            else:
                partstat = "ACCEPTED" if answer == "accept" else "DECLINED"
                comment = "Sorry, I cannot come that evening." if answer == "decline" else ""
                reply = parents.reply(client, raw, partstat, tz=tz, now=now, comment=comment)
            outcome = _run(shell, config, "mail", "deliver", stdin=reply, quiet=True).strip()
            what = "proposes two hours later" if answer == "propose" else f"{answer}s"
            _say(f"  {guardian:<27} ({client}) {what} -> {outcome}")
            now += timedelta(seconds=1)


def book_through_the_booking_address(
    shell: Shell, config: Path, folder: Path, sink: SmtpSink
) -> None:
    """Two late families ask Grace's booking address for one free time; the first wins."""
    grace = school.TEACHERS[2]
    late = folder / "families-late.csv"
    write_private(late, school.late_families_csv())
    _say("\n== Two families join late and invite a teacher's booking address directly.")
    _run(shell, config, "roster", "import", str(late))
    free = json.loads(
        _run(shell, config, "slots", "--teacher", grace.email, "--format", "json", quiet=True)
    )
    wanted = free[len(free) // 2]
    start, end = datetime.fromisoformat(wanted["start"]), datetime.fromisoformat(wanted["end"])
    address = f"book+{wanted['teacher_key']}@lincoln.example.org"
    _say(f"Both ask {address} for {start:%a %H:%M}, a free time, seconds apart:")
    now = datetime.now(UTC)
    sent = len(sink.messages)
    for _, _, guardian, name, _ in school.LATE_FAMILIES:
        client = school.LATE_CLIENTS[guardian]
        booking = organizers.Booking(
            parent=guardian,
            parent_name=name,
            booking_address=address,
            start=start,
            end=end,
            summary=f"Meeting with {grace.name}",
        )
        raw = organizers.request(client, booking, tz=school.TZ, now=now)
        outcome = _run(shell, config, "mail", "deliver", stdin=raw, quiet=True).strip()
        _say(f"  {guardian:<27} ({client}) invites {address} -> {outcome}")
        now += timedelta(seconds=2)
    _run(shell, config, "outbox", "flush")
    _say("Their answers, from the booking address (the parent stays organizer):")
    for _, recipients, raw in sink.messages[sent:]:
        _say(f"  to {recipients[0]:<27} {_subject(raw)}")
        for line in _free_times(raw):
            _say(f"  {'':<30} {line}")


def _start_of(raw: bytes) -> datetime:
    invitation = parents.Invitation(raw, school.TZ)
    assert invitation.message.start is not None
    return invitation.message.start


def show_teacher_calendars(radicale: EmbeddedServer, paths: dict[str, str]) -> None:
    account = AccountConfig(
        id="demo",
        type="caldav",
        url=radicale.url,
        username=DEMO_USER,
        password=Secret(key="demo", value=DEMO_USER),
    )
    start = datetime.now(UTC)
    connector = CalDAVConnector(account, school.TZ, Horizon(start, start + timedelta(days=30)))
    try:
        for teacher in school.TEACHERS:
            changes = connector.changes(CalendarRef("demo", paths[teacher.email]), None)
            for remote in changes.changed:
                for event in Calendar.from_ical(remote.ics).events:
                    if "CLASS" in event and str(event["CLASS"]) == "PRIVATE":
                        begins = event.start
                        assert isinstance(begins, datetime)
                        when = begins.astimezone(school.TZ)
                        _say(
                            f"  {teacher.name:<14} {when:%a %H:%M}  {event['SUMMARY']}  "
                            f"{event.get('LOCATION', '')}"
                        )
    finally:
        connector.close()


def run(args: argparse.Namespace, shell: Shell) -> int:
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ptm-sync-demo-"))
    make_private_dir(folder)  # 0700, as ptm-sync keeps every folder of families' data
    if any(folder.iterdir()) and args.dir:
        raise UserError(f"{folder} is not empty; the demo needs an empty folder")
    today = date.today()
    radicale = start_radicale(folder / "radicale")
    sink = start_smtp_sink()
    port = args.port or free_port()
    try:
        _say("ptm-sync demo: Lincoln High School, six teachers, seven families.")
        temporary = args.once and not args.dir
        files = (
            "its files in a temporary folder, removed at the end (--dir DIR keeps them)"
            if temporary
            else f"files in {folder}"
        )
        _say(
            f"Radicale (CalDAV) runs at {radicale.url}; mail goes to an SMTP sink on port "
            f"{sink.port}; {files}"
        )
        paths = seed_calendars(radicale, today)
        for teacher in school.TEACHERS:
            _say(f"  {teacher.name:<14} {teacher.story}")
        write_private(folder / "teachers.csv", school.teachers_csv(paths))
        write_private(folder / "families.csv", school.families_csv())
        config = folder / "ptm-sync.toml"
        write_private(
            config,
            school.config_toml(
                radicale_url=radicale.url,
                database=str(folder / "ptm-sync.db"),
                listen=f"127.0.0.1:{port}",
                today=today,
                smtp_port=sink.port,
            ),
        )
        _run(
            shell,
            config,
            "roster",
            "import",
            str(folder / "teachers.csv"),
            str(folder / "families.csv"),
        )
        _run(shell, config, "sync")
        _run(shell, config, "matrix")

        _say("\n== Booking opens: each family gets its evening planned and invited.")
        _run(shell, config, "invite")
        _say(
            f"The SMTP sink holds {len(sink.messages)} emails: a notification per guardian and "
            "an invitation (METHOD:REQUEST) per meeting and guardian."
        )
        sent = len(sink.messages)

        _say("\n== Parents answer from their own mail clients (each reply via `mail deliver`):")
        parents_answer(shell, config, sink)
        _run(shell, config, "outbox", "flush")
        _say("\nWhat the parents received back:")
        for _, recipients, raw in sink.messages[sent:]:
            _say(f"  to {recipients[0]:<27} {_subject(raw)}")
        _say("\nConfirmed meetings in the teachers' own Radicale calendars:")
        show_teacher_calendars(radicale, paths)
        book_through_the_booking_address(shell, config, folder, sink)
        _run(shell, config, "meetings")
        _run(shell, config, "matrix")
        evening.the_evening(
            lambda cfg, *argv, **kw: _run(shell, cfg, *argv, **kw),
            _say,
            config=config,
            sink=sink,
            today=today,
        )
        # Without --dir, --once removes the folder at the end: nothing left to try then.
        serve(shell, config, once=args.once, kept=bool(args.dir) or not args.once)
    finally:
        sink.stop()
        radicale.stop()
        if not args.dir and args.once:
            shutil.rmtree(folder, ignore_errors=True)
    if args.once:
        _say(
            "\nDemo over: the servers and pages above have stopped; "
            + (f"its files stay in {folder}." if args.dir else "its temporary files are removed.")
        )
    return 0


def serve(shell: Shell, config_path: Path, *, once: bool, kept: bool = True) -> None:

    app = App(config_mod.load(str(config_path)))
    daemon = shell.daemon(app)
    url = daemon.start()
    period = app.config.periods[0].id
    # With --once these answer only while the story's last sync runs: said so.
    until = "  (while the demo runs)" if once else ""
    _say(f"\nPublished page:  {url}/periods/{period}{until}")
    _say(f"Slots as JSON:   {url}/periods/{period}/slots.json{until}")
    _say(f"Health:          {url}/healthz{until}")
    if kept:
        _say(f"Try it yourself: .venv/bin/ptm-sync --config {config_path} meetings")
    try:
        if once:
            daemon.sync_job()
            return
        _say("Serving until Ctrl-C.")
        stop = threading.Event()

        def handler(_signum: int, _frame: FrameType | None) -> None:
            stop.set()
            daemon.stop()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        daemon.loop()
        _say(f"\nDemo stopped. Its files stay in {config_path.parent}; delete them when done.")
    finally:
        daemon.close()
        app.close()
