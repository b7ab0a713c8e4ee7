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
        return self.server.add_calendar(f"{teacher}-{next(_serial)}")

    def add_busy(
        self, cal: CalendarRef, start: datetime, end: datetime, *, tentative: bool = False
    ) -> None:
        self.server.add_busy(cal.calendar, start, end)

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


@contextmanager
def start_mirrored(tmp_path: Path) -> Iterator[MemorySystem]:
    yield MemorySystem("memory-mirrored", MIRRORED_SYSTEM)


@contextmanager
def start_server(tmp_path: Path) -> Iterator[MemorySystem]:
    yield MemorySystem("memory-server", SERVER_SYSTEM)
