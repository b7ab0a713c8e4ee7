"""A generated school for the mail benchmarks, proposed through the real ``invite`` path.

:func:`school` writes a config file and a roster (CSV, imported by the roster store as
``ptm-sync roster import`` does) into a folder, opens the SQLite file database the way the
service does (WAL, ``synchronous=FULL``) and runs :func:`ptm_sync.app.channels.offers.invite`, so
the meetings, their history and the invitation emails in the outbox are exactly what a school
would have after ``ptm-sync invite``.  No calendar server is needed: nothing is synced, so
every teacher is free for the whole period.

Everything is seeded: who is linked to whom, and the fixed clock.  (UIDs and video rooms
carry random parts by design; they change the bytes, not the work.)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from ptm_sync.adapters.store import Calendar, Database, Outbox, Teacher
from ptm_sync.adapters.video.providers import VideoProvider, provider_for
from ptm_sync.app.channels.offers import invite
from ptm_sync.app.periods import ensure_periods
from ptm_sync.app.roster_import import import_roster
from ptm_sync.config import settings as config_mod
from ptm_sync.config.settings import Config
from ptm_sync.core.booking.notices import email_of
from ptm_sync.core.roster.tables import SourceFile

ORGANIZER = "conferences@lincoln.example.org"
TIMEZONE = "America/New_York"
#: Invitations go out a few weeks before the two evenings (the clock is fixed, not real).
NOW = datetime(2027, 3, 22, 13, 0, tzinfo=UTC)
WINDOWS = ("2027-04-13T15:00/19:00", "2027-04-14T15:00/19:00")
SLOTS_PER_TEACHER = 32  # two four-hour evenings of 15-minute slots
MEETINGS_PER_TEACHER = 20  # leaves the planner room to keep families' meetings apart
TEACHERS_PER_STUDENT = 4
SEED = 20270413
SURNAMES = ("Johnson", "Smith", "Garcia", "Brown", "Davis", "Wilson", "Nguyen", "Okafor")
FIRST_NAMES = ("Mia", "Leo", "Ava", "Noah", "Emma", "Liam", "Zoe", "Ines", "Kofi", "Yuki")


@dataclass(frozen=True, slots=True)
class School:
    """The school on disk: its folder, parsed config, open database and video provider."""

    folder: Path
    config: Config
    db: Database
    video: VideoProvider
    proposed: int

    @property
    def database_file(self) -> Path:
        return self.folder / "ptm.db"


@dataclass(frozen=True, slots=True)
class Email:
    """One pending email of the outbox, as the deliverer will send it."""

    row_id: int
    key: str
    sender: str
    to: tuple[str, ...]
    raw: bytes


def config_text(smtp_port: int | None) -> str:
    smtp = f'[mail.smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\n' if smtp_port else ""
    windows = ", ".join(f'"{w}"' for w in WINDOWS)
    return f"""
[school]
name = "Lincoln High School"
timezone = "{TIMEZONE}"
contact = "office@lincoln.example.org"

[database]
url = "sqlite:///ptm.db"

[mail]
organizer = "{ORGANIZER}"
{smtp}
[video]
provider = "jitsi"
base_url = "https://meet.lincoln.example.org"

[[accounts]]
id = "district"
type = "caldav"
url = "http://127.0.0.1:9/"

[[periods]]
id = "spring"
title = "Spring conferences"
slot_minutes = 15
gap_minutes = 5
hold_hours = 48
windows = [{windows}]
"""


def roster(meetings: int, seed: int = SEED) -> tuple[SourceFile, SourceFile]:
    """``teachers.csv`` and ``families.csv`` for ``meetings`` (student, teacher) links.

    Every student sees four different teachers; about one family in five has two children
    (the same guardian), so the planner also has siblings' itineraries to keep apart.
    Teachers are given students least loaded first, so each ends near the same count.
    """
    rng = random.Random(seed)
    teachers = max(TEACHERS_PER_STUDENT, -(-meetings // MEETINGS_PER_TEACHER))
    teacher_rows = ["email,name,account,calendar,room"]
    teacher_rows += [
        f"t{n:04d}@lincoln.example.org,Teacher {n:04d},district,/cal/t{n:04d}/,{100 + n}"
        for n in range(teachers)
    ]
    family_rows = ["student_id,student_name,guardian_email,guardian_name,teacher_email"]
    load = [0] * teachers
    guardian = surname = parent_name = ""
    links = student = children = 0
    while links < meetings:
        if children != 1 or rng.random() >= 0.2:  # a new family, else a second child
            surname = rng.choice(SURNAMES)
            guardian = f"parent{student:05d}@families.example.net"
            parent_name = f"{rng.choice(FIRST_NAMES)} {surname}"
            children = 0
        children += 1
        name = f"{rng.choice(FIRST_NAMES)} {surname}"
        want = min(TEACHERS_PER_STUDENT, meetings - links)
        # The least loaded teachers, ties broken at random: every teacher ends near the mean.
        chosen = sorted(range(teachers), key=lambda t: (load[t], rng.random()))[:want]
        for t in chosen:
            load[t] += 1
            family_rows.append(
                f"S{student:05d},{name},{guardian},{parent_name},t{t:04d}@lincoln.example.org"
            )
        links += want
        student += 1
    as_bytes = lambda rows: ("\n".join(rows) + "\n").encode()  # noqa: E731
    return (
        SourceFile("teachers.csv", as_bytes(teacher_rows)),
        SourceFile("families.csv", as_bytes(family_rows)),
    )


def school(folder: Path, meetings: int, *, smtp_port: int | None = None) -> School:
    """A school in ``folder`` with ``meetings`` proposed meetings and their invitations."""
    path = folder / "ptm-sync.toml"
    path.write_text(config_text(smtp_port))
    config = config_mod.parse(path.read_text(), path)
    db = Database(config.database.url)
    db.migrate()
    import_roster(db, roster(meetings), [a.id for a in config.accounts])
    with db.write() as session:
        ensure_periods(session, config)  # what `ptm-sync sync` does before any invite
        # Every teacher's calendar read once and found empty: free all evening.
        for teacher in session.scalars(select(Teacher)):
            session.add(
                Calendar(
                    teacher_id=teacher.id,
                    account=teacher.account,
                    url=teacher.calendar,
                    synced_at=NOW,
                )
            )
    video = provider_for(config.video)
    result = invite(db, config, config.periods[0], now=NOW, video=video)
    if len(result.proposed) != meetings:
        raise RuntimeError(
            f"the planner placed {len(result.proposed)} of {meetings} meetings "
            f"({len(result.plan.unplaced)} unplaced)"
        )
    return School(folder, config, db, video, len(result.proposed))


def pending_emails(db: Database, *, invitations_only: bool = True) -> list[Email]:
    """The pending emails of the outbox in delivery order, decoded as they will be sent."""
    query = select(Outbox).where(Outbox.kind == "email", Outbox.state == "pending")
    if invitations_only:
        query = query.where(Outbox.key.like("email:<invitation.%"))
    with db.read() as session:
        rows = list(session.scalars(query.order_by(Outbox.id)))
    found = []
    for row in rows:
        data = json.loads(row.payload)
        raw = email_of(data)
        found.append(Email(row.id, row.key, data["from"], tuple(data["to"]), raw))
    return found
