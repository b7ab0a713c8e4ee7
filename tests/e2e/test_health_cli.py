"""A teacher's calendar that answers 404, as a new administrator meets it (issue 9, item 4).

The roster names a calendar that does not exist.  `check` names that teacher; `sync` fails
for them alone; the matrix says ``not_synced`` for them (not ``busy``) and `invite
--dry-run` says "not synced" (not "no free slot left"); the daemon's /healthz answers 503
naming the account, /metrics counts the failed read, and with ``--log-format json`` every
log line is a JSON object with no password in it.  A database path that names no file gets
a warning from `check`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.caldav_servers import EmbeddedCalDAV, make_calendar
from tests.support.cli import config_text, ptm_sync, write_config
from tests.support.sample_school import (
    ADA,
    NAMES,
    PERIOD_ID,
    SampleSchool,
    account_table,
    seed_calendars,
    write_school,
)
from tests.support.servers import free_port

#: The teacher whose calendar URL answers 404.
BROKEN = ADA
START_SECONDS = 60


@dataclass(frozen=True)
class School:
    config: Path
    listen: str
    password: str
    missing: str  # the calendar URL that answers 404


@pytest.fixture(scope="module")
def school(radicale_server: EmbeddedCalDAV, tmp_path_factory: pytest.TempPathFactory) -> School:
    folder = tmp_path_factory.mktemp("health")
    sample = SampleSchool(date.today())
    calendars = seed_calendars(radicale_server, sample, tag=f"health-{uuid.uuid4().hex[:8]}")
    calendars[BROKEN] = calendars[BROKEN].rstrip("/") + "-typo/"
    listen = f"127.0.0.1:{free_port()}"
    config = write_school(
        folder,
        sample,
        accounts=[account_table(radicale_server)],
        sections={"web": {"listen": listen}},
    )
    config.chmod(0o600)
    (folder / "teachers.csv").write_text(sample.teachers_csv(calendars), encoding="utf-8")
    (folder / "families.csv").write_text(sample.families_csv(), encoding="utf-8")
    imported = ptm_sync(config, "roster", "import", "teachers.csv", "families.csv")
    assert imported.returncode == 0, imported.stderr
    return School(config, listen, radicale_server.password or "", calendars[BROKEN])


def test_check_names_the_teacher_whose_calendar_cannot_be_read(school: School) -> None:
    result = ptm_sync(school.config, "check")
    assert result.returncode == 1, result.stdout + result.stderr
    problems = [
        line for line in result.stdout.splitlines() if not line.startswith(("note:", "warning:"))
    ]
    assert len(problems) == 1, result.stdout
    # The teacher, the roster row that names the calendar, the account, what is wrong.
    found = re.match(
        rf"teacher {re.escape(BROKEN)} \(teachers\.csv:(\d+)\): account district:", problems[0]
    )
    assert found, problems
    rows = (school.config.parent / "teachers.csv").read_text(encoding="utf-8").splitlines()
    assert BROKEN in rows[int(found[1]) - 1]  # the line it names is that teacher's row
    assert "404" in problems[0] or "not found" in problems[0].lower(), problems


def test_sync_fails_for_that_teacher_and_the_matrix_says_not_synced(school: School) -> None:
    synced = ptm_sync(school.config, "sync")
    assert synced.returncode == 1
    assert synced.stdout.splitlines()[-1] == f"synced 4 of {len(NAMES)} calendars"

    matrix = ptm_sync(school.config, "matrix", "--format", "json")
    assert matrix.returncode == 0, matrix.stderr
    statuses: dict[str, set[str]] = {}
    for row in json.loads(matrix.stdout):
        statuses.setdefault(row["teacher"], set()).add(row["status"])
    assert statuses.pop(BROKEN) == {"not_synced"}
    assert all("not_synced" not in found for found in statuses.values())
    assert all("available" in found for found in statuses.values())

    table = ptm_sync(school.config, "matrix")
    cells = len(json.loads(matrix.stdout)) // len(NAMES)
    assert table.stdout.splitlines()[-1].endswith(f", {cells} not_synced"), table.stdout

    slots = ptm_sync(school.config, "slots", "--format", "json")
    assert BROKEN not in {row["teacher"] for row in json.loads(slots.stdout)}

    plan = ptm_sync(school.config, "invite", "--period", PERIOD_ID, "--dry-run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    unplaced = [line for line in plan.stdout.splitlines() if line.startswith("not placed:")]
    assert unplaced and all(f"with {BROKEN}: not synced" in line for line in unplaced), unplaced
    assert "no free slot left" not in plan.stdout


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def daemon(school: School) -> Iterator[subprocess.Popen[str]]:
    environment = {k: v for k, v in os.environ.items() if k != "PTM_SYNC_CONFIG"}
    # --log-format before the command, -v after it: global options stand on either side.
    argv = [sys.executable, "-m", "ptm_sync", "--config", str(school.config), "--log-format"]
    process = subprocess.Popen(
        [*argv, "json", "run", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=school.config.parent,
        env=environment,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


def first_pass_done(process: subprocess.Popen[str], base: str) -> dict[str, Any]:
    """/healthz once the daemon's first sync pass is counted in /metrics."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the daemon exited with {process.returncode}:\n{out}\n{err}")
        try:
            status, body = get(base + "/metrics")
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
            continue
        if status == 200 and "ptm_sync_sync_passes_total 1.0" in body.decode():
            status, health = get(base + "/healthz")
            found: dict[str, Any] = json.loads(health)
            found["http_status"] = status
            return found
        time.sleep(0.2)
    process.kill()
    pytest.fail("the daemon never finished its first sync pass")


def test_the_daemon_reports_the_broken_calendar_in_health_metrics_and_json_logs(
    school: School, daemon: subprocess.Popen[str]
) -> None:
    base = f"http://{school.listen}"
    health = first_pass_done(daemon, base)
    assert health["http_status"] == 503 and health["status"] == "degraded"
    # Its every read failed: it is failing (fix something), by kind, not "never synced".
    assert health["problems"] == [
        "1 calendar failing on account 'district' "
        "(not_found: 1; 1 never read: no slots offered; see `ptm-sync check`)"
    ]
    assert BROKEN not in json.dumps(health)

    _, body = get(base + "/metrics")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    reads = "ptm_sync_sync_requests_total"
    assert samples[(reads, (("account", "district"), ("result", "failed")))] == 1
    assert samples[(reads, (("account", "district"), ("result", "ok")))] == len(NAMES) - 1
    assert samples[("ptm_sync_calendars_not_synced", (("account", "district"),))] == 0
    assert samples[("ptm_sync_calendars_failing", (("account", "district"),))] == 1
    by_problem = "ptm_sync_calendars_by_problem"
    assert samples[(by_problem, (("account", "district"), ("problem", "not_found")))] == 1
    assert samples[(by_problem, (("account", "district"), ("problem", "unavailable")))] == 0
    problems = "ptm_sync_calendar_problems_total"
    assert samples[(problems, (("account", "district"), ("problem", "not_found")))] == 1
    assert ("ptm_sync_sync_lag_seconds", (("account", "district"),)) in samples

    daemon.terminate()
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    entries = [json.loads(line) for line in err.splitlines()]  # every line is one object
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(
        e["level"] == "WARNING" and e["logger"] == "ptm_sync.app.sync" and BROKEN in e["message"]
        for e in entries
    ), entries
    assert school.password not in err


def test_once_the_calendar_answers_check_warns_until_a_sync_succeeds(
    school: School, radicale_server: EmbeddedCalDAV
) -> None:
    """The administrator creates the missing calendar: `check` no longer fails, but says
    it was never read; after `sync` all is well and the matrix offers that teacher."""
    assert make_calendar(radicale_server, school.missing.rstrip("/").rsplit("/", 1)[1])
    checked = ptm_sync(school.config, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    warned = [line for line in checked.stdout.splitlines() if line.startswith("warning:")]
    assert warned == [
        f"warning: roster: 1 teacher's calendar was never read ({BROKEN}): no slots are "
        "offered until `ptm-sync sync` reads them"
    ]

    assert ptm_sync(school.config, "sync").returncode == 0
    again = ptm_sync(school.config, "check")
    assert not [line for line in again.stdout.splitlines() if line.startswith("warning:")]
    matrix = json.loads(ptm_sync(school.config, "matrix", "--format", "json").stdout)
    assert {row["status"] for row in matrix if row["teacher"] == BROKEN} == {"available"}


def test_check_warns_when_the_database_file_did_not_exist(tmp_path: Path) -> None:
    period = {"id": "p", "title": "P", "windows": ["2030-03-05T16:00/17:00"]}
    school = {"name": "S", "timezone": "Europe/Berlin", "contact": "o@s.test"}
    config = write_config(
        tmp_path, config_text(school=school, database_url="sqlite:///tpyo.db", periods=[period])
    )
    config.chmod(0o600)
    first = ptm_sync(config, "check")
    assert first.returncode == 0, first.stdout + first.stderr  # warnings only
    warned = [line for line in first.stdout.splitlines() if line.startswith("warning:")]
    assert (
        f"warning: database: the database file {tmp_path / 'tpyo.db'} did not exist: created empty"
    ) in warned[0], warned
    assert warned[1].startswith("warning: roster: no teachers yet"), warned
    again = ptm_sync(config, "check")
    assert "did not exist" not in again.stdout
