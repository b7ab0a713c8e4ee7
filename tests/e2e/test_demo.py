"""`ptm-sync demo --once`: the story on embedded Radicale, as a newcomer first runs it."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
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


Matrix = dict[tuple[str, str], list[str]]


def parse_matrices(output: str) -> tuple[list[str], list[Matrix]]:
    """The teachers in column order, and each printed matrix: (date, start) → statuses."""
    names: list[str] = []
    matrices: list[Matrix] = []
    for line in output.splitlines():
        if line.startswith("time "):
            names = sorted(BUSY, key=line.index)
            assert all(name in line for name in names), line
            matrices.append({})
        elif found := ROW.match(line):
            matrices[-1][(found["date"], found["start"])] = line[found.end() :].split()
    return names, matrices


def is_busy(spans: list[tuple[str, str]], start: str) -> bool:
    return any(first <= start < last for first, last in spans)


def test_the_demo_tells_the_story_and_prints_the_matrix_and_the_published_page(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "demo"
    result = ptm_sync(
        None, "demo", "--once", "--dir", folder, cwd=tmp_path, timeout=180, process=True
    )  # its servers and signal handlers live with the process
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout

    assert "synced 6 of 6 calendars" in out
    published = re.search(r"Published page:\s+(http://127\.0\.0\.1:\d+/periods/demo)\s", out)
    assert published, out

    names, (before, after) = parse_matrices(out)
    days = sorted({day for day, _ in before})
    first, second = (date.fromisoformat(d) for d in days)
    assert first.weekday() == 1 and second == first + timedelta(days=1)  # Tuesday, Wednesday
    assert (first, second) == school.evenings(first - timedelta(days=7))
    assert len(before) == 2 * 16  # 15:00-19:00 in 15-minute slots, two evenings
    for (day, start), statuses in before.items():
        evening = days.index(day)
        expected = ["busy" if is_busy(BUSY[n][evening], start) else "available" for n in names]
        assert statuses == expected, (day, start, dict(zip(names, statuses, strict=True)))
    busy = sum(s == "busy" for statuses in before.values() for s in statuses)
    assert f"{6 * 32 - busy} available, {busy} busy, 0 held, 0 booked" in out

    # After the invitations and the parents' answers, meetings take free slots only; the
    # events written into teachers' calendars for them do not count as busy.
    assert after.keys() == before.keys()
    for slot, statuses in after.items():
        for was, now in zip(before[slot], statuses, strict=True):
            assert now == was or (was == "available" and now in ("held", "booked")), slot
    assert any("booked" in statuses for statuses in after.values())

    # The rest of the evening (issue 16): reminders once, a teacher running late (one
    # meeting moved, one family told), completion and a no-show, the report, a purge.
    assert "Reminder: Parent-teacher conferences with" in out
    assert "remind: 0 reminders queued" in out  # the second run sends nothing more
    assert re.search(r"^moved: meeting \d+ .*\(from \d\d:\d\d-\d\d:\d\d to ", out, re.M)
    assert re.search(r"^told: meeting \d+ ", out, re.M)
    assert "Running late: Parent-teacher conferences with Grace Hopper" in out
    assert re.search(r"^marked: meeting \d+ is no_show$", out, re.M)
    [school_row] = [line.split() for line in out.splitlines() if line.startswith("demo    (all)")]
    assert int(school_row[5]) == 1  # the no-show
    assert "the report after the purge is the same as before." in out

    # What the demo invites the reader to try works on the files it leaves in --dir.
    config = folder / "ptm-sync.toml"
    assert f"--config {config} " in out
    slots = json.loads(ptm_sync(config, "slots", "--format", "json").stdout)
    # `slots` offers exactly what the matrix shows free (read now from the same files: the
    # demo's second half ran with its clock after the evenings, so their meetings are over).
    cells = json.loads(ptm_sync(config, "matrix", "--format", "json").stdout)
    offered = {(s["teacher"], s["start"]) for s in slots}
    free = {(c["teacher"], c["start"]) for c in cells if c["status"] == "available"}
    assert offered == free and len(free) >= sum(
        status == "available" for statuses in after.values() for status in statuses
    )
