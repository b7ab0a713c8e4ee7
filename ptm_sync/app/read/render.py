"""Slots and the matrix as iCalendar and HTML, shared by the command line and the web.

Published output carries no guardian or student data and never the title of a teacher's own
event: only teachers' names and the times they can be booked.
"""

from __future__ import annotations

import html
from collections import Counter, OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event

from ptm_sync.app.read.availability import MatrixRow, SlotRow
from ptm_sync.core.model import SlotStatus

PRODID = "-//ptm-sync//published slots//EN"


def slots_ics(rows: Sequence[SlotRow], *, title: str, now: datetime) -> bytes:
    """A feed of bookable slots: one transparent event per slot, stable UIDs."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("x-wr-calname", title)
    for row in rows:
        event = Event()
        event.add("uid", f"slot-{row.teacher_key}-{row.start.strftime('%Y%m%dT%H%M%S%z')}@ptm-sync")
        event.add("dtstamp", now)
        event.add("dtstart", row.start)
        event.add("dtend", row.end)
        event.add("summary", f"Bookable: {row.teacher_name}")
        # A feed of free times must not make the subscriber look busy.
        event.add("transp", "TRANSPARENT")
        cal.add_component(event)
    if rows:
        # The VTIMEZONE the events refer to, with only the transitions around them.
        first = min(r.start for r in rows).date() - timedelta(days=366)
        last = max(r.end for r in rows).date() + timedelta(days=366)
        cal.add_missing_timezones(first_date=first, last_date=last)
    return cal.to_ical()


def matrix_grid(rows: Sequence[MatrixRow]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Pivot matrix rows: teacher columns, one line per time slot."""
    teachers: OrderedDict[str, str] = OrderedDict()
    for row in sorted(rows, key=lambda r: (r.teacher_name, r.teacher)):
        teachers.setdefault(row.teacher, row.teacher_name or row.teacher)
    # One line per instant: the night clocks go back has two 01:15s, each its own line,
    # told apart by the zone's abbreviation (EDT, EST).
    lines: dict[datetime, dict[str, str]] = {}
    labels: dict[datetime, str] = {}
    for row in rows:
        instant = row.start.astimezone(UTC)
        labels[instant] = f"{row.start:%a %Y-%m-%d %H:%M}-{row.end:%H:%M}"
        lines.setdefault(instant, {})[row.teacher] = row.status.value
    seen = Counter(labels.values())
    for row in rows:
        instant = row.start.astimezone(UTC)
        if seen[labels[instant]] > 1:
            labels[instant] = f"{row.start:%a %Y-%m-%d %H:%M}-{row.end:%H:%M} {row.start:%Z}"
    header = list(teachers.values())
    body = [
        (labels[instant], [lines[instant].get(t, "") for t in teachers])
        for instant in sorted(lines)
    ]
    return header, body


def matrix_text(rows: Sequence[MatrixRow]) -> str:
    header, body = matrix_grid(rows)
    first = max([len("time")] + [len(label) for label, _ in body])
    widths = [max([len(h), 6] + [len(cells[i]) for _, cells in body]) for i, h in enumerate(header)]
    out = [
        "  ".join(["time".ljust(first)] + [h.ljust(w) for h, w in zip(header, widths, strict=True)])
    ]
    for label, cells in body:
        out.append(
            "  ".join(
                [label.ljust(first)] + [c.ljust(w) for c, w in zip(cells, widths, strict=True)]
            )
        )
    counts = {s: sum(1 for r in rows if r.status == s) for s in SlotStatus}
    # not_synced only when some teacher is: a school that synced sees the four it knows.
    shown = [s for s in SlotStatus if s != SlotStatus.NOT_SYNCED or counts[s]]
    out.append("")
    out.append(", ".join(f"{counts[s]} {s.value}" for s in shown))
    return "\n".join(line.rstrip() for line in out) + "\n"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#222}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}}
.available{{background:#e6f4ea}} .busy{{background:#eee;color:#777}} .held{{background:#fff4d6}}
.booked{{background:#fde2e1}} .not_synced{{background:#fff;color:#a00;font-style:italic}}
ul.times{{columns:4 10rem}} .muted{{color:#666}}
</style></head><body>
{body}
</body></html>
"""


def page(title: str, body: str) -> str:
    return PAGE.format(title=html.escape(title), body=body)


def matrix_html(rows: Sequence[MatrixRow], *, title: str) -> str:
    header, body = matrix_grid(rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = "".join(
        f"<tr><th>{html.escape(label)}</th>"
        + "".join(f'<td class="{c}">{c}</td>' for c in cells)
        + "</tr>"
        for label, cells in body
    )
    table = f"<table><thead><tr><th>time</th>{head}</tr></thead><tbody>{lines}</tbody></table>"
    return page(title, f"<h1>{html.escape(title)}</h1>{table}")
