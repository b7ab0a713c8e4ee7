"""`ptm-sync demo --once`: the story on embedded Radicale, as a newcomer first runs it."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path

from ptm_sync.demo import school
from tests.support.cli import ptm_sync

ROW = re.compile(r"^(?P<day>\w{3}) (?P<date>\d{4}-\d{2}-\d{2}) (?P<start>\d\d:\d\d)-\d\d:\d\d\s+")

#: When each demo teacher is busy, in New York time, on the (first, second) evening.
BUSY: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    # The weekly staff meeting began ten weeks earlier, before the clocks changed.
    "Ada Lovelace": ([("15:30", "16:30")], [("18:00", "19:00")]),
    # All-day absence: the whole local day.
    "Alan Turing": ([], [("15:00", "19:00")]),
    # Daily tutoring at 18:00, moved to 16:00 on the first evening, skipped on the second.
    "Carl Gauss": ([("16:00", "16:30")], []),
    # Tentative is busy.
    "Grace Hopper": ([("17:30", "18:30")], []),
    # Floating time is the school's time.
    "Isaac Newton": ([], [("15:00", "15:45")]),
    # 'W. Europe Standard Time' converted; transparent and cancelled events leave her free.
    "Marie Curie": ([("17:00", "18:00")], []),
}


def parse_matrix(output: str) -> tuple[list[str], dict[tuple[str, str], list[str]]]:
    """The teachers in column order, and (date, start) → the status in each column."""
    lines = output.splitlines()
    header = next(line for line in lines if line.startswith("time "))
    names = sorted(BUSY, key=header.index)
    assert all(name in header for name in names), header
    cells: dict[tuple[str, str], list[str]] = {}
    for line in lines:
        found = ROW.match(line)
        if found:
            cells[(found["date"], found["start"])] = line[found.end() :].split()
    return names, cells


def is_busy(spans: list[tuple[str, str]], start: str) -> bool:
    return any(first <= start < last for first, last in spans)


def test_the_demo_tells_the_story_and_prints_the_matrix_and_the_published_page(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "demo"
    result = ptm_sync(None, "demo", "--once", "--dir", folder, cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout

    assert "synced 6 of 6 calendars" in out
    published = re.search(r"Published page:\s+(http://127\.0\.0\.1:\d+/periods/demo)\s", out)
    assert published, out

    names, cells = parse_matrix(out)
    days = sorted({day for day, _ in cells})
    first, second = (date.fromisoformat(d) for d in days)
    assert first.weekday() == 1 and second == first + timedelta(days=1)  # Tuesday, Wednesday
    assert (first, second) == school.evenings(first - timedelta(days=7))
    assert len(cells) == 2 * 16  # 15:00-19:00 in 15-minute slots, two evenings
    for (day, start), statuses in cells.items():
        evening = days.index(day)
        expected = ["busy" if is_busy(BUSY[n][evening], start) else "free" for n in names]
        assert statuses == expected, (day, start, dict(zip(names, statuses, strict=True)))
    busy = sum(s == "busy" for statuses in cells.values() for s in statuses)
    assert f"{6 * 32 - busy} available, {busy} busy, 0 held, 0 booked" in out

    # What the demo invites the reader to try works on the files it leaves in --dir.
    config = folder / "ptm-sync.toml"
    assert f"--config {config} slots --format json" in out
    slots = json.loads(ptm_sync(config, "slots", "--format", "json").stdout)
    ada = {s["start"] for s in slots if s["teacher"] == "ada.lovelace@lincoln.example.org"}
    free, meeting = (datetime.combine(first, t, school.TZ) for t in (time(15, 15), time(15, 30)))
    assert free.isoformat() in ada and meeting.isoformat() not in ada
