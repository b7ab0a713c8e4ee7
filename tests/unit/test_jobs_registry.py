"""The registry of scheduled jobs: names, cadences and the next run (DESIGN §3, §7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ptm_sync.app import jobs
from ptm_sync.core.errors import NotFoundError

NOW = datetime(2027, 4, 12, 19, 0, tzinfo=UTC)


def test_the_jobs_are_designs_with_its_cadences() -> None:
    cadences = {job.name.value: job.cadence for job in jobs.JOBS}
    assert cadences == {
        "open": timedelta(minutes=1),
        "expire": timedelta(minutes=1),
        "remind": timedelta(minutes=5),
        "complete": timedelta(minutes=5),
        "feedback": timedelta(minutes=15),
        "digest": timedelta(minutes=10),
        "purge": timedelta(days=1),
    }
    assert tuple(cadences) == jobs.NAMES


@pytest.mark.parametrize(
    ("name", "last_run", "expected"),
    [
        ("remind", None, NOW),  # never ran: due now
        ("remind", NOW - timedelta(minutes=2), NOW + timedelta(minutes=3)),
        ("feedback", NOW - timedelta(hours=1), NOW - timedelta(minutes=45)),  # overdue
        ("purge", NOW - timedelta(hours=1), NOW + timedelta(hours=23)),
    ],
)
def test_the_next_run_is_the_last_run_plus_the_cadence(
    name: str, last_run: datetime | None, expected: datetime
) -> None:
    assert jobs.find(name).next_run(last_run, NOW) == expected


def test_an_unknown_job_names_the_jobs() -> None:
    with pytest.raises(NotFoundError) as caught:
        jobs.find("remnd")
    assert str(caught.value) == (
        "no job 'remnd': the jobs are open, expire, remind, complete, feedback, digest, purge"
    )


def test_a_run_with_a_problem_is_recorded_as_failed_with_its_sentence() -> None:
    assert jobs.Done("2 reminders queued", queued=True).result == "ok"
    partly = jobs.Done("1 reminder queued", queued=True, problem="meeting 7: no period 'x'")
    assert partly.result == "failed: meeting 7: no period 'x'"
