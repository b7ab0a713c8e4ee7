"""The in-memory system (connectors/memory.py), with a mirrored or a server system's
capabilities: the contract's reference implementation."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from connectors.base import CalendarRef, Capability, RemoteRef
from connectors.memory import MIRRORED_SYSTEM, SERVER_SYSTEM, MemoryCalendars, MemoryConnector
from ptm_sync.core.errors import AccessDenied, CalendarProblem, Unavailable
from ptm_sync.core.model import Interval
from tests.contract.harness import HORIZON

_serial = itertools.count(1)


@dataclass
class MemorySystem:
    name: str
    capabilities: frozenset[Capability]
    server: MemoryCalendars = field(default_factory=MemoryCalendars)

    def __post_init__(self) -> None:
        self.connector = MemoryConnector(self.server, HORIZON, self.capabilities)

    def requests(self) -> int:
        return 0

    def calendar(self, teacher: str) -> CalendarRef:
        name = f"{teacher}-{next(_serial)}"
        return self.server.add_calendar(name, owner=f"{name}@school.test")

    def add_busy(
        self, cal: CalendarRef, start: datetime, end: datetime, *, tentative: bool = False
    ) -> None:
        self.server.add_busy(cal.calendar, start, end, tentative=tentative)

    def teacher_moves(
        self, cal: CalendarRef, ref: RemoteRef, start: datetime, end: datetime
    ) -> None:
        self.server.teacher_moves(cal.calendar, ref.href, start, end)

    def teacher_deletes(self, cal: CalendarRef, ref: RemoteRef) -> None:
        self.server.teacher_deletes(cal.calendar, ref.href)

    def forget_sync_tokens(self) -> bool:
        self.server.forgotten_before = next(self.server._versions)
        return True

    def throttle(self, status: int, retry_after: float) -> bool:
        return False

    def expire_access_tokens(self) -> bool:
        return False

    def page_size(self, n: int) -> bool:
        return False

    def fail_free_busy(self, cal: CalendarRef, problem: CalendarProblem) -> bool:
        errors = {
            CalendarProblem.ACCESS_DENIED: AccessDenied(f"{cal.calendar}: no free/busy shared"),
            CalendarProblem.UNAVAILABLE: Unavailable(f"{cal.calendar}: its server failed", 30),
        }
        self.server.calendars[cal.calendar].failing = errors[problem]
        return True

    def no_data(self, cal: CalendarRef, start: datetime, end: datetime) -> bool:
        if Capability.MIRRORED in self.capabilities:
            return False  # a mirror's busy time is computed from the events: always known
        self.server.calendars[cal.calendar].no_data.append(Interval(start, end))
        return True

    def add_invitation(
        self, cal: CalendarRef, start: datetime, end: datetime, *, partstat: str
    ) -> str | None:
        attendee = f"{cal.calendar}@school.test"
        self.server.add_invitation(cal.calendar, start, end, attendee=attendee, partstat=partstat)
        return attendee


@contextmanager
def start_mirrored(tmp_path: Path) -> Iterator[MemorySystem]:
    yield MemorySystem("memory-mirrored", MIRRORED_SYSTEM)


@contextmanager
def start_server(tmp_path: Path) -> Iterator[MemorySystem]:
    yield MemorySystem("memory-server", SERVER_SYSTEM)
