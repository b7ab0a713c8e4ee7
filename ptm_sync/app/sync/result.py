"""What a sync pass reports: one :class:`SyncResult` per teacher (and per school events
feed)."""

from __future__ import annotations

from dataclasses import dataclass

from ptm_sync.core.errors import CalendarProblem


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one teacher's pass did.

    ``error`` is the teacher's own failure as a sentence ("" when the read succeeded) and
    ``problem`` its kind; a read that succeeded with spans the system had no data for inside
    the periods' windows has ``problem`` ``no_data`` and ``unknown`` those minutes (no slot
    is offered in them; no-data time outside every window is stored but costs nothing).
    """

    teacher: str
    changed: int = 0
    removed: int = 0
    full: bool = False
    busy: int = 0
    error: str = ""
    followed: int = 0  # changes the teacher made to our events, decided (teacher_changes)
    problem: CalendarProblem | None = None
    unknown: int = 0  # minutes without data
