"""A Microsoft 365 school where a few mailboxes misbehave, through the command line (issue 14).

Four teachers on the Graph fake (the real msal and requests underneath): Ada's mailbox is
fine and busy one hour; Bob's address has a typo (getSchedule answers his schedule with
ErrorMailRecipientNotFound); Cleo's mailbox sits behind a failing proxy
(ErrorProxyRequestProcessingFailed, every time); Dan's free/busy has no data for part of
the evening (status ``unknown``).  `check` names each teacher with their own error, `sync`
fails Bob and Cleo alone and says how long Dan had no data, and the matrix offers Ada every
free slot, Dan none where nothing is known, and says ``not_synced`` there.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support import fake_graph
from tests.support.cli import config_text, ptm_sync, write_config

TZ = ZoneInfo("America/New_York")
WINDOW_START = datetime(2027, 4, 13, 15, 0, tzinfo=TZ)  # 15:00–17:00: eight 15-minute slots
ADA, BOB, CLEO, DAN = (f"{n}@lincoln.example.org" for n in ("ada", "bob", "cleo", "dan"))


def at(i: int) -> datetime:
    return WINDOW_START + i * timedelta(minutes=15)


@dataclass(frozen=True)
class School:
    config: Path
    graph: fake_graph.FakeGraph


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[School]:
    folder = tmp_path_factory.mktemp("truth")
    with fake_graph.running(folder) as graph:
        for teacher in (ADA, CLEO, DAN):
            graph.add_mailbox(teacher)
        graph.add_event(ADA, at(2), at(3))
        graph.fail_schedule(CLEO, "ErrorProxyRequestProcessingFailed")
        graph.no_data(DAN, at(4), at(6))
        keys = graph.account()
        assert keys.client_secret is not None
        account = {
            "id": "m365",
            "type": "graph",
            "tenant_id": keys.tenant_id,
            "client_id": keys.client_id,
            "client_secret": keys.client_secret.reveal(),
            "graph_url": keys.graph_url,
            "authority_url": keys.authority_url,
            "ca_file": str(keys.ca_file),
        }
        text = config_text(
            school={
                "name": "Lincoln High",
                "timezone": "America/New_York",
                "contact": "office@lincoln.example.org",
            },
            database_url=f"sqlite:///{folder / 'ptm.db'}",
            accounts=[account],
            periods=[
                {
                    "id": "spring",
                    "title": "Spring conferences",
                    "slot_minutes": 15,
                    "windows": ["2027-04-13T15:00/17:00"],
                }
            ],
        )
        config = write_config(folder, text)
        config.chmod(0o600)
        with (folder / "teachers.csv").open("w", newline="", encoding="utf-8") as out:
            rows = csv.writer(out)
            rows.writerow(["email", "name", "account", "calendar"])
            for email in (ADA, BOB, CLEO, DAN):
                mailbox = "bob@lincoln.exmaple.org" if email == BOB else email  # the typo
                rows.writerow([email, email.split("@")[0].title(), "m365", mailbox])
        imported = ptm_sync(config, "roster", "import", "teachers.csv")
        assert imported.returncode == 0, imported.stdout + imported.stderr
        yield School(config, graph)


def problem_lines(output: str) -> dict[str, str]:
    """Teacher email → their `check` line (lines about no teacher are keyed by "")."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith(("warning:", "note:")) or not line.strip():
            continue
        email = line.split()[1] if line.startswith("teacher ") else ""
        found[email] = line
    return found


def test_check_names_each_teacher_with_their_own_error(school: School) -> None:
    result = ptm_sync(school.config, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = problem_lines(result.stdout)
    assert set(lines) == {BOB, CLEO, DAN}, result.stdout
    assert "bob@lincoln.exmaple.org" in lines[BOB]
    assert "not found" in lines[BOB].lower() or "ErrorMailRecipientNotFound" in lines[BOB]
    assert CLEO in lines[CLEO] and "ErrorProxyRequestProcessingFailed" in lines[CLEO]
    assert "no free/busy data for 30 minutes of the periods' windows" in lines[DAN]
    for email, line in lines.items():  # each line tells its own teacher's trouble only
        others = {ADA, BOB, CLEO, DAN, "bob@lincoln.exmaple.org"} - {email}
        if email == BOB:
            others.discard("bob@lincoln.exmaple.org")
        assert not any(other in line.split(":", 1)[1] for other in others), line


def test_sync_fails_those_teachers_alone_and_no_data_is_never_free(school: School) -> None:
    result = ptm_sync(school.config, "sync")
    assert result.returncode == 1
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines() if "@" in line}
    assert "FAILED" in lines[BOB] and "FAILED" in lines[CLEO]
    assert "FAILED" not in lines[ADA] and "FAILED" not in lines[DAN]
    assert "no free/busy data for 30 minutes of the periods' windows" in lines[DAN]
    assert result.stdout.splitlines()[-1] == "synced 2 of 4 calendars"

    matrix = ptm_sync(school.config, "matrix", "--format", "json")
    assert matrix.returncode == 0, matrix.stderr
    statuses: dict[str, list[str]] = {}
    for row in sorted(json.loads(matrix.stdout), key=lambda r: r["start"]):
        statuses.setdefault(row["teacher"], []).append(row["status"])
    assert statuses[ADA] == ["available"] * 2 + ["busy"] + ["available"] * 5
    assert statuses[DAN] == ["available"] * 4 + ["not_synced"] * 2 + ["available"] * 2
    assert set(statuses[BOB]) == set(statuses[CLEO]) == {"not_synced"}  # never read

    slots = ptm_sync(school.config, "slots", "--teacher", DAN, "--format", "json")
    starts = [datetime.fromisoformat(r["start"]) for r in json.loads(slots.stdout)]
    assert starts == [at(i) for i in (0, 1, 2, 3, 6, 7)]
