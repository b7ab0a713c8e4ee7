"""Free/busy of many mailboxes through Graph ``calendar/getSchedule``, calendar by calendar.

Requests: one ``POST /users/{X}/calendar/getSchedule`` per batch of ≤ 20 mailboxes and per
span of < 62 days (:mod:`connectors.graph_schedule`), batches in parallel (up to
``workers`` threads), the spans of one batch one after the other.

The mailbox ``X`` in the URL: any mailbox will do for the app (Calendars.Read reads every
schedule), but when ``X`` is unknown Graph answers 404 for the whole call.  So the reader
remembers, for the life of the connector, how each mailbox fared: whose schedule came
back without error, whose with an error, and which were not found (a 404 in the URL, or a
schedule error saying so).  ``X`` is the batch's first mailbox known to answer, else its
first not known to fail, else a mailbox of another batch known to answer.  When ``X``
gets a 404 all the same, the same batch is asked again with another ``X`` (at most
:data:`URL_TRIES` calls in all); the unknown mailbox then gets its own schedule error in
the answer, or :class:`~ptm_sync.core.errors.NotFound` when Graph gives none for it.  With one
unknown mailbox among N, a pass costs ⌈N/20⌉ calls plus at most one, and only the first
pass of a connector pays that one: never one call per teacher.

A 403 ``ErrorAccessDenied`` for ``X`` while the app holds the permission means ``X`` is
outside the app's management scope (RBAC for Applications, or an application access
policy: Exchange Online answers 403 for a mailbox the app may not touch): ``X`` is treated
like an unknown one (another ``X`` is tried) and gets its own
:class:`~ptm_sync.core.errors.AccessDenied` unless its schedule came back through another
mailbox.  Only when the app lacks the permission (the token's ``roles``), or when it cannot
be told and every try was refused, is the 403 the whole account's
:class:`~ptm_sync.core.errors.AuthFailed`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, tzinfo
from typing import Any

from connectors import graph_schedule as schedule
from connectors.base import FreeBusy
from connectors.graph_schedule import Part
from connectors.graph_wire import error_code
from ptm_sync.core.errors import AccessDenied, ConnectorError, NotFound, Unavailable

log = logging.getLogger(__name__)

#: getSchedule calls for one batch and span, each with another mailbox in the URL.
URL_TRIES = 3

#: How a mailbox fared, best first (the order URL mailboxes are chosen in).
_ANSWERS, _UNSEEN, _FAILED, _MISSING = range(4)

#: POSTs one getSchedule: (URL mailbox, request body) → (HTTP status, JSON payload).
#: Raises what the connector raises for the whole call (AuthFailed, Unavailable).
Post = Callable[[str, Mapping[str, Any]], tuple[int, Any]]
#: The exception for a whole-call answer that is neither 200 nor the URL mailbox's 404.
Fail = Callable[[int, Any], Exception]
#: Whether the app holds the permission getSchedule needs (the token's ``roles``); None
#: when it cannot be told.
Granted = Callable[[], bool | None]


class ScheduleReader:
    """Reads free/busy for one Graph account; keeps how each mailbox fared (thread-safe)."""

    def __init__(
        self,
        account: str,
        post: Post,
        fail: Fail,
        fallback: tzinfo = UTC,
        granted: Granted = lambda: None,
    ) -> None:
        self.account = account
        self.fallback = fallback
        self._post = post
        self._fail = fail
        self._granted = granted
        self._lock = threading.Lock()
        self._standing: dict[str, int] = {}
        self._refused: set[str] = set()  # lower-case mailboxes that got 404 in the URL
        self._denied: set[str] = set()  # lower-case mailboxes that got 403 in the URL

    def read(
        self, mailboxes: Sequence[str], start: datetime, end: datetime, *, workers: int = 4
    ) -> dict[str, Part]:
        """Each mailbox's :class:`~connectors.base.FreeBusy` over ``[start, end)`` or its
        own error (:func:`connectors.graph_schedule.read_schedule`), keyed by the lower-case
        mailbox; ``mailboxes`` hold no two alike without case.

        Raises:
            AuthFailed: the token was refused after renewal, or 403 (missing permission).
            Unavailable: Graph unreachable, or 5xx/429 for a whole call beyond a short wait.
            ConnectorError: any other refusal of a whole call (HTTP 400 …).
        """
        pieces = list(schedule.spans(start, end))
        groups = list(schedule.batches(mailboxes))
        if workers <= 1 or len(groups) <= 1:
            done = [self._batch(group, pieces) for group in groups]
        else:
            pool = ThreadPoolExecutor(min(workers, len(groups)), thread_name_prefix="graph")
            try:
                futures = [pool.submit(self._batch, group, pieces) for group in groups]
                done = [future.result() for future in futures]
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        found: dict[str, Part] = {}
        for parts in done:
            for key, answers in parts.items():
                found[key] = schedule.merge(answers) if answers else FreeBusy()
        return found

    def candidates(self, batch: Sequence[str]) -> list[str]:
        """URL mailboxes for ``batch``, best first: its mailboxes known to answer, then those
        not seen yet, then those whose schedule failed, then one mailbox of another batch
        known to answer; mailboxes not found come last, and only when nothing else is."""
        keys = {m.lower() for m in batch}
        with self._lock:
            ranked = sorted(batch, key=lambda m: self._rank(m.lower()))
            usable = [m for m in ranked if self._rank(m.lower()) < _MISSING]
            elsewhere = next(
                (
                    m
                    for m, fared in self._standing.items()
                    if fared == _ANSWERS
                    and m not in keys
                    and m not in self._refused
                    and m not in self._denied
                ),
                None,
            )
        tail = [elsewhere] if elsewhere else []
        return (usable + tail) or ranked

    def _rank(self, key: str) -> int:
        if key in self._refused or key in self._denied:
            return _MISSING
        return self._standing.get(key, _UNSEEN)

    def _batch(
        self, batch: list[str], pieces: Sequence[tuple[datetime, datetime]]
    ) -> dict[str, list[Part]]:
        answers: dict[str, list[Part]] = {m.lower(): [] for m in batch}
        for first, last in pieces:
            infos, refused, denied = self._ask(batch, first, last)
            for mailbox in batch:
                key = mailbox.lower()
                info = infos.get(key) if infos is not None else None
                if info is not None:
                    part = schedule.read_schedule(
                        info,
                        first,
                        last,
                        account=self.account,
                        mailbox=mailbox,
                        fallback=self.fallback,
                    )
                elif key in refused:
                    part = NotFound(
                        f"Graph account {self.account!r}: mailbox {mailbox!r} not found "
                        "(HTTP 404 for it in getSchedule's URL)"
                    )
                elif key in denied:
                    part = AccessDenied(
                        f"Graph account {self.account!r}: mailbox {mailbox!r} refused the app "
                        "(ErrorAccessDenied): it is outside the app's management scope or "
                        "access policy"
                    )
                elif infos is None:
                    part = Unavailable(
                        f"Graph account {self.account!r}: mailbox {mailbox!r}: not read this "
                        "time (its getSchedule call found no mailbox to be asked through)"
                    )
                else:
                    part = ConnectorError(
                        f"Graph account {self.account!r}: mailbox {mailbox!r}: getSchedule "
                        "answered without its schedule"
                    )
                self._note(key, part)
                answers[key].append(part)
        return answers

    def _ask(
        self, batch: list[str], first: datetime, last: datetime
    ) -> tuple[dict[str, Mapping[str, Any]] | None, set[str], set[str]]:
        """The batch's scheduleInformation by mailbox (None when every URL mailbox tried
        was refused), the lower-case mailboxes that got a 404 in the URL, and those that got
        a 403 there while the app holds the permission (outside its scope).

        Raises:
            AuthFailed: 403 and the app lacks the permission (or it cannot be told and
                every mailbox tried was refused).
        """
        body = schedule.schedule_request(batch, first, last)
        refused: set[str] = set()
        denied: set[str] = set()
        last_refusal: tuple[int, Any] | None = None
        for url_mailbox in self.candidates(batch)[:URL_TRIES]:
            status, payload = self._post(url_mailbox, body)
            if status == 200:
                with self._lock:
                    self._standing[url_mailbox.lower()] = _ANSWERS  # as a URL mailbox
                value = payload.get("value") if isinstance(payload, Mapping) else None
                infos = schedule.by_mailbox(value if isinstance(value, list) else [], batch)
                return infos, refused, denied
            code = error_code(payload)[0]
            if status == 403:
                if self._granted() is False:
                    raise self._fail(status, payload)  # the app lacks the permission
                last_refusal = (status, payload)
                denied.add(url_mailbox.lower())
                with self._lock:
                    self._denied.add(url_mailbox.lower())
                log.info(
                    "Graph account %r: getSchedule through a mailbox outside the app's scope "
                    "(403 %s); asking through another mailbox",
                    self.account,
                    code,
                )
                continue
            if status != 404:
                raise self._fail(status, payload)
            if not code:
                raise ConnectorError(
                    f"Graph account {self.account!r}: getSchedule answered HTTP 404 without a "
                    "Graph error (is graph_url right?)"
                )
            log.info(
                "Graph account %r: getSchedule through an unknown mailbox (404 %s); asking "
                "through another mailbox",
                self.account,
                code,
            )
            refused.add(url_mailbox.lower())
            with self._lock:
                self._refused.add(url_mailbox.lower())
        if last_refusal is not None and not refused and self._granted() is None:
            raise self._fail(*last_refusal)  # every try refused, and no telling why
        return None, refused, denied

    def _note(self, key: str, part: Part) -> None:
        if isinstance(part, NotFound):
            fared = _MISSING
        elif isinstance(part, ConnectorError):
            fared = _FAILED
        else:
            fared = _ANSWERS
        with self._lock:
            self._standing[key] = fared
