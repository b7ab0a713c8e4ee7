"""Exchange on premises through EWS (``exchangelib``): GetUserAvailability, SyncFolderItems,
Create / Update / DeleteItem with ``SEND_TO_NONE``.

Each teacher's ``calendar`` is a mailbox address; the account's login reaches it by
impersonation (the ApplicationImpersonation role; Microsoft, "Impersonation and EWS in
Exchange").  Events we write carry our UID twice: in ``calendar:UID`` and in a named extended
property ``ptm-sync-uid`` (PS_PUBLIC_STRINGS), because EWS cannot restrict a FindItem on
``calendar:UID``; the property finds an event on a create retry and tells our events from the
teacher's in the change feed.

Requests per operation (Exchange 2016 schema, fixed: no version-guessing request):

* ``free_busy``: one GetUserAvailability per 100 mailboxes (the most one request may name,
  "GetUserAvailability operation") per window of at most 42 days ("TimeWindow": the default
  maximum; longer ranges are split); each mailbox answered on its own, every view shape read
  (:mod:`connectors.ews_freebusy`).
* ``changes``: SyncFolderItems pages (``page_size`` changes each) until
  ``IncludesLastItemInRange``.
* ``create_event``: FindItem on the property (+ GetItem when found) + CreateItem.
* ``update_event``: UpdateItem (ConflictResolution NeverOverwrite on the ChangeKey); on a
  conflict one GetItem to see whether the item already says the same.
* ``delete_event``: GetItem (the change key) + DeleteItem.
* ``check``: one FindItem per mailbox (GetServerTimeZones when given none).

A refused login says what the server's 401 offers (``WWW-Authenticate``,
:func:`connectors.ews_session.refused`), naming the account and host, never a mailbox.

A full sync pass of N teachers over a range of D days costs ceil(N / 100) * ceil(D / 42)
GetUserAvailability requests, and an idle pass the same (plus one SyncFolderItems for each
calendar that holds events of ours); OAuth adds a token request per hour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from exchangelib import IMPERSONATION, Account, CalendarItem
from exchangelib import UTC as EWS_UTC
from exchangelib import errors as ews_errors
from exchangelib.folders import Calendar, Root
from exchangelib.items import NEVER_OVERWRITE, SEND_TO_NONE
from exchangelib.protocol import Protocol

from connectors.base import (
    CalendarRef,
    Capability,
    ChangeSet,
    FreeBusy,
    FreeBusyAnswer,
    Horizon,
    MeetingEvent,
    RemoteEvent,
    RemoteRef,
)
from connectors.ews_freebusy import MERGED_INTERVAL, ask, merge, read_batch
from connectors.ews_items import FETCH_FIELDS, SYNC_FIELDS, item_fields, item_ics, says
from connectors.ews_session import (
    NoRight,
    make_configuration,
    make_credentials,
    no_right,
    refused,
    translate,
)
from ptm_sync.config.settings import AccountConfig
from ptm_sync.core.errors import ConnectorError, NotFound, PtmError, WrongEtag
from ptm_sync.core.model import Busy, Interval
from ptm_sync.ops.throttle import RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")

#: GetUserAvailability: at most 100 mailboxes per request and a 42-day TimeWindow.
MAX_MAILBOXES = 100
MAX_WINDOW = timedelta(days=42)
#: SyncFolderItems MaxChangesReturned: its maximum (1..512, "MaxChangesReturned").
PAGE_SIZE = 512


class EWSConnector:
    """An Exchange (EWS) account; see :class:`connectors.base.CalendarConnector`.

    ``retry`` is the :class:`RetryPolicy` for ErrorServerBusy and HTTP 429/503 (a test may
    replace it); ``page_size`` is SyncFolderItems' MaxChangesReturned; ``merged_interval``
    is GetUserAvailability's MergedFreeBusyIntervalInMinutes (5; see
    :mod:`connectors.ews_freebusy`).
    """

    kind = "ews"
    capabilities = frozenset({Capability.SERVER_FREE_BUSY, Capability.CHANGE_FEED})

    def __init__(self, account: AccountConfig, tz: ZoneInfo, horizon: Horizon) -> None:
        self.account = account
        self.tz = tz
        self.horizon = horizon
        self.retry = RetryPolicy()
        self.page_size = PAGE_SIZE
        self.merged_interval = MERGED_INTERVAL
        self._credentials = make_credentials(account)
        self._config = make_configuration(account, self._credentials)
        self._accounts: dict[str, Account] = {}
        self._calendars: dict[str, Any] = {}

    # --- plumbing ---------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T], *, once: bool = False) -> T:
        """``call()`` with exchangelib's failures translated, a refused OAuth token renewed
        once, and short server back-offs waited out (``self.retry``)."""

        def attempt() -> T:
            renewed = False
            while True:
                try:
                    return call()
                except ews_errors.UnauthorizedError as exc:
                    if self.account.auth != "oauth" or renewed:
                        raise refused(self.account, exc) from exc
                    renewed = True
                    self._renew_token()
                except PtmError:
                    raise
                except Exception as exc:
                    raise translate(exc, self.account, what) from exc

        return attempt() if once else self.retry.run(attempt)

    def _renew_token(self) -> None:
        """Drop the access token and the sessions holding it: the next request fetches one."""
        log.info("EWS account %s: access token refused, fetching a new one", self.account.id)
        protocol = self._protocol()
        # The Protocol exchangelib shares between equal credentials holds the token.
        protocol.credentials.access_token = None
        protocol.close()

    def _protocol(self) -> Any:
        # Protocol instances are cached by exchangelib per endpoint and credentials.
        return Protocol(config=self._config)

    def _mailbox(self, mailbox: str) -> Account:
        found = self._accounts.get(mailbox.lower())
        if found is None:
            found = Account(
                primary_smtp_address=mailbox,
                config=self._config,
                autodiscover=False,
                access_type=IMPERSONATION,
                default_timezone=EWS_UTC,
            )
            self._accounts[mailbox.lower()] = found
        return found

    def _calendar(self, mailbox: str) -> Any:
        """The mailbox's calendar, addressed as DistinguishedFolderId "calendar" with the
        mailbox (no GetFolder request: exchangelib builds the id for a distinguished folder
        class under a root that has no id of its own)."""
        found = self._calendars.get(mailbox.lower())
        if found is None:
            found = Calendar(root=Root(account=self._mailbox(mailbox)))
            found.to_id()  # sets the id now: exchangelib hashes folders by it
            self._calendars[mailbox.lower()] = found
        return found

    # --- free/busy --------------------------------------------------------------------

    def free_busy(
        self, calendars: Sequence[CalendarRef], start: datetime, end: datetime
    ) -> FreeBusyAnswer:
        """Each mailbox's :class:`FreeBusy` from GetUserAvailability, or its own error
        (:mod:`connectors.ews_freebusy` reads the views and maps the per-mailbox codes).

        Batches of 100 mailboxes, windows of 42 days, ``RequestedView`` FreeBusyMerged at
        ``self.merged_interval`` minutes.  A mailbox's error in any window is its answer.

        Raises:
            AuthFailed: the login was refused (the message says what the server wants).
            Unavailable: Exchange unreachable, or busy for the whole request (after
                ``self.retry``).
            ConnectorError: the whole request was refused (a SOAP fault).
        """
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        refs = list(dict.fromkeys(calendars))
        busy: dict[CalendarRef, list[Busy]] = {ref: [] for ref in refs}
        unknown: dict[CalendarRef, list[Interval]] = {ref: [] for ref in refs}
        failed: dict[CalendarRef, ConnectorError] = {}
        window_start = start
        while window_start < end:
            window_end = min(end, window_start + MAX_WINDOW)
            for first in range(0, len(refs), MAX_MAILBOXES):
                batch = refs[first : first + MAX_MAILBOXES]
                mailboxes = [ref.calendar for ref in batch]
                answers = self._call(
                    "free/busy", partial(self._ask, mailboxes, window_start, window_end)
                )
                results = read_batch(
                    mailboxes, answers, window_start, window_end, self.merged_interval
                )
                for ref, result in zip(batch, results, strict=True):
                    if isinstance(result, ConnectorError):
                        failed.setdefault(ref, result)
                    else:
                        busy[ref].extend(result.busy)
                        unknown[ref].extend(result.unknown)
            window_start = window_end
        return {
            ref: failed.get(ref) or FreeBusy(tuple(busy[ref]), tuple(merge(unknown[ref])))
            for ref in refs
        }

    def _ask(self, mailboxes: list[str], start: datetime, end: datetime) -> list[Any]:
        return ask(self._protocol(), mailboxes, start, end, self.merged_interval)

    # --- change feed ------------------------------------------------------------------

    def changes(self, calendar: CalendarRef, token: str | None) -> ChangeSet:
        """Our events in the mailbox's calendar from SyncFolderItems since ``token`` (a
        sync state; None: all, ``full``).  A deleted item is in ``removed`` by ItemId (EWS
        does not say whose it was); a cancelled one of ours too.

        Raises:
            SyncTokenInvalid: ErrorInvalidSyncStateData.
            NotFound: the mailbox does not exist.
        """
        what = f"calendar of {calendar.calendar}"

        def run() -> ChangeSet:
            folder = self._calendar(calendar.calendar)
            folder.item_sync_state = token  # (exchangelib would resume from the last state)
            changed: list[RemoteEvent] = []
            removed: list[str] = []
            for change, item in folder.sync_items(
                sync_state=token, only_fields=list(SYNC_FIELDS), max_changes_returned=self.page_size
            ):
                if change == "delete":
                    removed.append(item.id)
                elif change in ("create", "update") and getattr(item, "ptm_uid", None):
                    if item.is_cancelled:
                        removed.append(item.id)
                    elif self._in_horizon(item):
                        changed.append(RemoteEvent(item.id, item.changekey, item_ics(item)))
            return ChangeSet(folder.item_sync_state, tuple(changed), tuple(removed), token is None)

        return self._call(what, run)

    def _in_horizon(self, item: Any) -> bool:
        return bool(item.start < self.horizon.end and item.end > self.horizon.start)

    # --- writes -----------------------------------------------------------------------

    def _find(self, mailbox: str, uid: str) -> Any | None:
        folder = self._calendar(mailbox)
        ids = list(folder.filter(ptm_uid=uid).only("id", "changekey"))
        if not ids:
            return None
        items = list(self._fetch(mailbox, ids[:1]))
        return items[0] if items and not isinstance(items[0], Exception) else None

    def create_event(self, calendar: CalendarRef, event: MeetingEvent) -> RemoteRef:
        """CreateItem in the mailbox's calendar, no attendees, SendMeetingInvitations
        SendToNone, sensitivity Private; a retry finds the event by its ``ptm-sync-uid``.

        Raises:
            NotFound: the mailbox does not exist.
            WrongEtag: the existing event changed while we updated it.
        """
        what = f"calendar of {calendar.calendar}"

        def run() -> RemoteRef:
            existing = self._find(calendar.calendar, event.uid)
            if existing is not None:
                if says(existing, event):
                    return RemoteRef(existing.id, existing.changekey)
                return self._update(calendar, RemoteRef(existing.id, existing.changekey), event)
            item = CalendarItem(
                account=self._mailbox(calendar.calendar),
                folder=self._calendar(calendar.calendar),
                uid=event.uid,
                ptm_uid=event.uid,
                **item_fields(event),
            )
            item.save(send_meeting_invitations=SEND_TO_NONE)
            return RemoteRef(item.id, item.changekey)

        return self._call(what, run)

    def update_event(self, calendar: CalendarRef, ref: RemoteRef, event: MeetingEvent) -> RemoteRef:
        """UpdateItem on ``ref`` (ItemId, ChangeKey) with ConflictResolution NeverOverwrite and
        SendMeetingInvitationsOrCancellations SendToNone.

        Raises:
            WrongEtag: ErrorIrresolvableConflict and the item says something else now.
            NotFound: ErrorItemNotFound.
        """
        return self._call(
            f"event in {calendar.calendar}", lambda: self._update(calendar, ref, event)
        )

    def _update(self, calendar: CalendarRef, ref: RemoteRef, event: MeetingEvent) -> RemoteRef:
        account = self._mailbox(calendar.calendar)
        fields = item_fields(event)
        item = CalendarItem(account=account, id=ref.href, changekey=ref.etag, **fields)
        try:
            item.save(
                update_fields=list(fields),
                conflict_resolution=NEVER_OVERWRITE,
                send_meeting_invitations=SEND_TO_NONE,
            )
        except ews_errors.ErrorIrresolvableConflict as exc:
            current = self._get(calendar, ref.href)
            if current is not None and says(current, event):
                return RemoteRef(current.id, current.changekey)
            raise WrongEtag(f"event in {calendar.calendar}: changed since {ref.etag}") from exc
        except ews_errors.ErrorItemNotFound as exc:
            raise NotFound(f"event in {calendar.calendar}: gone from the calendar") from exc
        return RemoteRef(item.id, item.changekey)

    def _fetch(self, mailbox: str, ids: list[Any]) -> Any:
        """GetItem of ``ids`` with the fields we compare (one request)."""
        folder = self._calendar(mailbox)
        return self._mailbox(mailbox).fetch(ids=ids, folder=folder, only_fields=list(FETCH_FIELDS))

    def _get(self, calendar: CalendarRef, href: str) -> Any | None:
        found = list(self._fetch(calendar.calendar, [(href, None)]))
        if not found or isinstance(found[0], ews_errors.ErrorItemNotFound):
            return None
        if isinstance(found[0], Exception):
            raise found[0]
        return found[0]

    def delete_event(self, calendar: CalendarRef, ref: RemoteRef) -> None:
        """DeleteItem (HardDelete, SendMeetingCancellations SendToNone) after a GetItem that
        compares the ChangeKey (DeleteItem itself takes no condition); absent = success.

        Raises:
            WrongEtag: the item's ChangeKey is no longer ``ref.etag``.
        """

        def run() -> None:
            current = self._get(calendar, ref.href)
            if current is None:
                return
            if ref.etag is not None and current.changekey != ref.etag:
                raise WrongEtag(f"event in {calendar.calendar}: changed since {ref.etag}")
            try:
                current.delete(send_meeting_cancellations=SEND_TO_NONE)
            except ews_errors.ErrorItemNotFound:
                return

        self._call(f"event in {calendar.calendar}", run)

    # --- check ------------------------------------------------------------------------

    def check(self, calendars: Iterable[CalendarRef] = ()) -> list[str]:
        """One line per problem: refused password / token, no impersonation right on a
        mailbox, unknown mailbox, unreachable server.  Each calendar costs one FindItem;
        without calendars one GetServerTimeZones tests the login.  No retries: a person is
        waiting."""
        name = f"account {self.account.id}"  # the area `ptm-sync check` names

        def line(exc: PtmError) -> str:  # a login refusal names the account already
            return str(exc) if str(exc).startswith(f"{name} ") else f"{name}: {exc}"

        refs = list(calendars)
        problems: list[str] = []
        try:
            if not refs:
                self._call(
                    "the login",
                    lambda: list(self._protocol().get_timezones(timezones=[EWS_UTC])),
                    once=True,
                )
        except PtmError as exc:
            return [line(exc)]
        for ref in refs:
            try:
                what = f"mailbox {ref.calendar}"
                self._call(what, partial(self._test_mailbox, ref.calendar), once=True)
            except NotFound:
                problems.append(f"{name}: mailbox {ref.calendar} not found on Exchange")
            except NoRight:
                problems.append(f"{name}: {no_right(self.account, ref.calendar)}")
            except PtmError as exc:  # a refused login, unreachable, TLS: the whole account
                return [line(exc)]
        return problems

    def _test_mailbox(self, mailbox: str) -> None:
        """One FindItem in the mailbox's calendar (impersonating its owner): exchangelib's
        ``test_access``, for a mailbox that is missing or that we may not open."""
        self._calendar(mailbox).test_access()

    def close(self) -> None:
        self._protocol().close()
