"""The availability engine: a period's windows → the grid → the slots a teacher can offer.

Pure: no database, no clock, no I/O.  Every datetime that comes in must be aware; the engine
converts to UTC once and steps in elapsed time, so a window on the night the clocks change
holds exactly as many slots as it has real minutes for.  Times go back to the school's zone
only when somebody displays them.

Spans are half-open ``[start, end)``: a busy event that ends when a slot starts (or starts
when it ends) does not block it, and a zero-length event blocks nothing.

The busy side is never tested slot by slot against every event.  It is sorted and merged
once into disjoint blocks, and each slot finds the first block that ends after the slot
starts by binary search: ``O((n + m) log m)`` for ``n`` slots and ``m`` busy events.
"""

from __future__ import annotations

import functools
import itertools
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from ptm_sync.core.model import Interval, SlotStatus, Window, as_utc


class Span(Protocol):
    """Anything with an aware ``start`` and ``end``: :class:`Interval`, ``Busy``, ``Slot``."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


class Blocks:
    """A set of busy spans, merged into disjoint UTC blocks sorted by start.

    Build it once, then ask :meth:`overlaps` for as many slots as needed.  Empty and
    reversed spans (``end <= start``) are dropped: they occupy no time.
    """

    __slots__ = ("_ends", "_starts")

    def __init__(self, spans: Iterable[Span]) -> None:
        # Aware datetimes that share the UTC tzinfo compare without calling utcoffset().
        cleaned = sorted(
            (start, end)
            for start, end in ((as_utc(s.start), as_utc(s.end)) for s in spans)
            if end > start
        )
        starts: list[datetime] = []
        ends: list[datetime] = []
        for start, end in cleaned:
            if ends and start <= ends[-1]:
                # Overlapping or touching: the union is one block.  Touching blocks can be
                # joined because a half-open slot overlaps the union iff it overlaps a part.
                if end > ends[-1]:
                    ends[-1] = end
            else:
                starts.append(start)
                ends.append(end)
        self._starts = starts
        self._ends = ends

    def __len__(self) -> int:
        return len(self._starts)

    def overlaps(self, span: Span) -> bool:
        """True when the aware ``span`` shares an instant with a block (touching does not count)."""
        # Blocks are disjoint and sorted, so their ends are sorted too: the first block that
        # ends after the span starts is the only one that can overlap it.
        i = bisect_right(self._ends, span.start)
        return i < len(self._starts) and self._starts[i] < span.end


def grid(windows: Sequence[Window], slot_minutes: int, buffer_minutes: int) -> list[Interval]:
    """Cut a period's windows into slots.

    Each window starts a new run of slots at its own start; consecutive slots are
    ``buffer_minutes`` apart and every slot lies fully inside its window.  The step is
    elapsed time, not wall-clock time: a 01:00-04:00 window on the autumn change night in
    Europe/Berlin holds four real hours of slots, the spring one two.

    Every booking decision asks for its period's grid, so the cut of one set of windows is
    made once per process (keyed by the windows' instants in UTC: two datetimes of one
    zone compare by wall clock, so the night the clocks go back would mix up two windows)
    and a new list is handed out each time.

    Args:
        windows: the period's windows, as aware datetimes in any zone; they must not
            overlap (the config refuses overlapping windows).
        slot_minutes: the length of one slot, greater than 0.
        buffer_minutes: the pause between two slots, 0 or more.

    Returns:
        The slots in UTC, sorted by start.

    Raises:
        ValueError: a length is out of range, a window is naive or reversed, or two
            windows overlap.
    """
    spans = tuple((as_utc(w.start), as_utc(w.end)) for w in windows)
    return list(_grid(spans, slot_minutes, buffer_minutes))


@functools.lru_cache(maxsize=64)
def _grid(
    windows: tuple[tuple[datetime, datetime], ...], slot_minutes: int, buffer_minutes: int
) -> tuple[Interval, ...]:
    if slot_minutes <= 0:
        raise ValueError(f"slot_minutes must be greater than 0, got {slot_minutes}")
    if buffer_minutes < 0:
        raise ValueError(f"buffer_minutes must not be negative, got {buffer_minutes}")
    length = timedelta(minutes=slot_minutes)
    step = timedelta(minutes=slot_minutes + buffer_minutes)
    spans = sorted(Interval(start, end) for start, end in windows)
    for earlier, later in itertools.pairwise(spans):
        if later.start < earlier.end:
            raise ValueError(f"windows overlap: {earlier} and {later}")
    slots: list[Interval] = []
    for window in spans:
        start, last_start = window.start, window.end - length
        while start <= last_start:
            slots.append(Interval(start, start + length))
            start += step
    return tuple(slots)


def free_slots(grid: Sequence[Interval], busy: Iterable[Span]) -> list[Interval]:
    """The slots of ``grid`` that overlap none of ``busy``, sorted by start.

    ``busy`` may be unsorted, overlapping, longer than the period or empty spans.
    """
    blocks = Blocks(busy)
    return [slot for slot in _ordered(grid) if not blocks.overlaps(slot)]


def teacher_slots(
    windows: Sequence[Window],
    slot_minutes: int,
    buffer_minutes: int,
    busy: Iterable[Span],
    meetings: Iterable[Span],
) -> list[Interval]:
    """The slots a teacher can still offer: the grid minus busy time minus active meetings.

    A meeting blocks every slot it overlaps, also one that is off the grid (a parent's
    REQUEST accepted at an odd time, a teacher who moved the event).
    """
    cells = grid(windows, slot_minutes, buffer_minutes)
    return free_slots(cells, itertools.chain(busy, meetings))


def matrix(
    grid: Sequence[Interval],
    busy: Iterable[Span],
    held: Iterable[Span],
    booked: Iterable[Span],
) -> list[tuple[Interval, SlotStatus]]:
    """One scheduling-matrix cell per grid slot, sorted by start.

    A slot overlapped by a confirmed meeting is ``booked``; else by a proposal that holds
    it, ``held``; else by the teacher's busy time, ``busy``; else ``available``.  The
    teacher's calendar usually holds our own confirmed events as busy time too, which is
    why ``booked`` comes first.
    """
    ranked = (
        (Blocks(booked), SlotStatus.BOOKED),
        (Blocks(held), SlotStatus.HELD),
        (Blocks(busy), SlotStatus.BUSY),
    )
    cells: list[tuple[Interval, SlotStatus]] = []
    for slot in _ordered(grid):
        status = next((s for blocks, s in ranked if blocks.overlaps(slot)), SlotStatus.AVAILABLE)
        cells.append((slot, status))
    return cells


def _ordered(slots: Sequence[Interval]) -> Sequence[Interval]:
    """``slots`` sorted by start in real time; the grid usually is already (one pass then)."""
    if all(as_utc(a.start) <= as_utc(b.start) for a, b in itertools.pairwise(slots)):
        return slots
    return sorted(slots, key=_real_start_end)


def _real_start_end(slot: Interval) -> tuple[datetime, datetime]:
    # In UTC: two datetimes of one ZoneInfo compare by wall clock, wrong across a change.
    return as_utc(slot.start), as_utc(slot.end)
