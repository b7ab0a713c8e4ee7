"""The circuit breaker of one delivery destination (pure: the time is an argument)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ptm_sync.app.outbox.dispatch import COOLDOWN, COOLDOWN_CAP, THRESHOLD, Breaker, is_outage
from ptm_sync.core.errors import MailRejected, MailUnavailable, PtmError, Unavailable, WrongEtag

T0 = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)


def test_it_opens_after_threshold_outages_in_a_row_and_lets_one_try_after_the_cooldown() -> None:
    breaker = Breaker()
    for _ in range(THRESHOLD - 1):
        assert not breaker.record(outage=True, now=T0)
        assert breaker.allows(T0)
    assert breaker.record(outage=True, now=T0)
    assert not breaker.allows(T0 + COOLDOWN - timedelta(seconds=1))
    assert breaker.allows(T0 + COOLDOWN)  # half-open: one more try


def test_a_failed_try_after_the_cooldown_opens_it_for_longer_up_to_the_cap() -> None:
    breaker = Breaker()
    now = T0
    waits = []
    for _ in range(THRESHOLD + 8):
        breaker.record(outage=True, now=now)
        if breaker.open_until is not None:
            waits.append(breaker.open_until - now)
            now = breaker.open_until
    assert waits[:3] == [COOLDOWN, COOLDOWN * 2, COOLDOWN * 4]
    assert max(waits) == COOLDOWN_CAP


def test_an_answer_closes_it_and_starts_the_count_again() -> None:
    breaker = Breaker()
    for _ in range(THRESHOLD):
        breaker.record(outage=True, now=T0)
    breaker.record(outage=False, now=T0 + COOLDOWN)
    assert breaker.allows(T0 + COOLDOWN) and breaker.failures == 0
    for _ in range(THRESHOLD - 1):
        breaker.record(outage=True, now=T0)
    assert breaker.allows(T0)


def test_outages_are_the_errors_that_say_the_server_cannot_be_reached() -> None:
    assert is_outage(Unavailable("timed out"))
    assert is_outage(MailUnavailable("connection refused"))
    # The server answered: about this one row, not about the destination.
    assert not is_outage(MailRejected("550 no such user"))
    assert not is_outage(WrongEtag("412"))
    assert not is_outage(PtmError("a bug"))
