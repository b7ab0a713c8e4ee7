"""The matrix as text: one line per instant, in time order, also the night clocks go back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from ptm_sync.app.read.availability import MatrixRow
from ptm_sync.app.read.render import matrix_grid
from ptm_sync.core.model import SlotStatus

NY = ZoneInfo("America/New_York")


def test_the_night_clocks_go_back_has_two_lines_for_each_repeated_time() -> None:
    first = datetime(2027, 11, 7, 5, 0, tzinfo=UTC)  # 01:00 EDT
    rows = []
    for i in range(8):  # 01:00 EDT … 01:45 EST, every quarter hour
        start = (first + i * timedelta(minutes=15)).astimezone(NY)
        end = (first + (i + 1) * timedelta(minutes=15)).astimezone(NY)
        rows.append(
            MatrixRow(
                start.date().isoformat(),
                start,
                end,
                "t@s",
                "T",
                SlotStatus.AVAILABLE if i % 2 else SlotStatus.BUSY,
            )
        )
    rows.reverse()  # whatever order they come in
    header, body = matrix_grid(rows)
    assert header == ["T"]
    labels = [label for label, _ in body]
    assert len(labels) == 8 and len(set(labels)) == 8
    assert labels[0].endswith("01:00-01:15 EDT") and labels[4].endswith("01:00-01:15 EST")
    assert [cells[0] for _, cells in body] == ["busy", "available"] * 4
