"""Incoming mail: read new messages from an IMAP folder, mark them once their effect is kept.

:class:`ImapReader` works by UID (RFC 3501 §2.3.1.1) and never changes a message while
fetching it (``BODY.PEEK[]``, up to :data:`FETCH_BATCH` messages per round trip).  A message
counts as processed only when the caller says so (:meth:`~ImapReader.mark_processed`,
:meth:`~ImapReader.mark_processed_many`), after its effect is committed; a crash in between
just means the message is fetched again, and the caller recognizes it by its digest.
Processed means: moved to ``processed_folder`` when one is configured (MOVE, RFC 6851),
otherwise flagged with the keyword :data:`PROCESSED_KEYWORD` where the folder accepts new
keywords (``\\*`` in PERMANENTFLAGS), otherwise flagged ``\\Seen``.

The reader survives a dropped connection: it reconnects with a :class:`Backoff` and goes on
from the highest UID it handed out, so nothing is missed.  UIDVALIDITY is compared on every
SELECT; when it changed, the UIDs remembered are meaningless, so the reader forgets them and
looks at every unprocessed message again.  A message handed out but not marked is handed out
again by the next pass.

:meth:`~ImapReader.idle` waits for new mail with IDLE (RFC 2177), re-issued every
``idle_renew_seconds``, where the server offers it, and by sleeping ``poll_seconds``
elsewhere.  The IMAP plumbing is in :mod:`ptm_sync.adapters.mail.imap_session`.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import TypeVar

from ptm_sync.adapters.mail.backoff import Backoff
from ptm_sync.adapters.mail.imap_idle import RFC2177_LIMIT_SECONDS
from ptm_sync.adapters.mail.imap_session import PROCESSED_KEYWORD, Folder, ImapSession
from ptm_sync.config.settings import ImapConfig
from ptm_sync.core.errors import MailUnavailable, PtmError
from ptm_sync.ops.crashpoints import crash_point
from ptm_sync.ops.metrics import PROCESS

__all__ = ["PROCESSED_KEYWORD", "Backoff", "FetchedMessage", "ImapReader", "check"]

log = logging.getLogger(__name__)

#: Messages fetched per round trip by default.
FETCH_BATCH = 50
#: Seconds between two IDLE commands: well inside RFC 2177's 29 minutes.
IDLE_RENEW_SECONDS = 600.0
#: Reconnecting by default: at once, then after about 0.5 and 1 seconds, then give up.
RECONNECT = Backoff(first=0.5, cap=300.0, attempts=3)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """One message as the server holds it: its UID in the folder and its raw bytes."""

    uid: int
    raw: bytes


class ImapReader:
    """Reads the ``[mail.imap]`` folder over one IMAP connection at a time (not thread-safe).

    Args:
        config: the ``[mail.imap]`` section.
        tls_context: TLS settings for ``ssl`` / ``starttls``; by default the system's
            trusted certificates with host name checking.  Verification is never off.
        timeout: seconds to wait for the server on every read and write.
        idle_renew_seconds: seconds after which IDLE is ended and sent again (RFC 2177 §3
            asks for less than 29 minutes).
        backoff: how to reconnect after the connection dropped or could not be made.
        stop: set it to end waits (IDLE, polling, pauses between reconnects) early.

    Raises:
        ValueError: ``idle_renew_seconds`` not within (0, 29 minutes).
    """

    def __init__(
        self,
        config: ImapConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        idle_renew_seconds: float = IDLE_RENEW_SECONDS,
        backoff: Backoff = RECONNECT,
        stop: threading.Event | None = None,
    ) -> None:
        if not 0 < idle_renew_seconds < RFC2177_LIMIT_SECONDS:
            raise ValueError("idle_renew_seconds must be above 0 and below 29 minutes")
        self.config = config
        self.timeout = timeout
        self.idle_renew_seconds = idle_renew_seconds
        self.backoff = backoff
        self._tls_context = tls_context
        self._stop = stop
        self._session: ImapSession | None = None
        self._folder: Folder | None = None
        # Kept across reconnects: the folder's UIDVALIDITY when last selected, the highest
        # UID handed out under it, and the UIDs handed out but not marked yet (with the
        # UIDVALIDITY they were handed out under).
        self._uidvalidity: int | None = None
        self._high = 0
        self._pending: dict[int, int | None] = {}

    def __enter__(self) -> ImapReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def where(self) -> str:
        return f"IMAP server {self.config.host}:{self.config.port}"

    @property
    def capabilities(self) -> frozenset[str]:
        """What the server offers after login (upper case), empty when not connected."""
        return self._session.capabilities if self._session is not None else frozenset()

    def connect(self) -> None:
        """Connect, log in and select the folder now instead of at the first call.

        Raises:
            MailUnavailable: the server cannot be reached, even after reconnecting.
            MailAuthFailed: the login was refused.
            ConfigError: the folder cannot be opened, STARTTLS is missing.
        """
        self._call(lambda session: None)

    def close(self) -> None:
        """Log out and close; harmless when not connected.  The reader can be used again:
        it reconnects and goes on where it was (what is remembered by UID stays)."""
        session, self._session, self._folder = self._session, None, None
        if session is not None:
            session.close()

    # --- fetching -----------------------------------------------------------------------

    def fetch_new(self) -> Iterator[FetchedMessage]:
        """Yield the messages of the folder not processed yet, oldest UID first.

        Fetched :data:`FETCH_BATCH` at a time; see :meth:`fetch_batches`.
        """
        for batch in self.fetch_batches(FETCH_BATCH):
            yield from batch

    def fetch_batches(self, size: int = FETCH_BATCH) -> Iterator[list[FetchedMessage]]:
        """Yield the unprocessed messages in lists of at most ``size``, oldest UID first.

        One pass: the folder is selected afresh (its UIDVALIDITY compared), one UID SEARCH
        finds the unprocessed messages from the lowest UID handed out and not marked (or
        past the highest handed out), and each list costs one UID FETCH.  Fetching leaves
        the messages untouched: only marking them processed changes them.

        Raises:
            MailUnavailable: the connection was lost and could not be made again.
            MailError, ConfigError: the server refused a command.
            ValueError: ``size`` below 1.
        """
        if size < 1:
            raise ValueError("size must be at least 1")
        uids, validity = self._call(self._search, reselect=True)
        while uids:
            chunk = uids[:size]
            raws, now_valid = self._call(partial(self._fetch, chunk))
            if now_valid != validity:  # a reconnect found a new folder: search it afresh
                uids, validity = self._call(self._search)
                continue
            uids = uids[size:]
            batch = [FetchedMessage(uid, raws[uid]) for uid in chunk if uid in raws]
            self._high = max(self._high, chunk[-1])  # the missing ones were expunged
            for message in batch:
                self._pending[message.uid] = validity
            if batch:
                yield batch

    def _fetch(self, uids: list[int], session: ImapSession) -> tuple[dict[int, bytes], int | None]:
        return session.fetch(uids), self._uidvalidity

    def _search(self, session: ImapSession) -> tuple[list[int], int | None]:
        """Resume by UID: from the oldest message handed out and not marked (all at or below
        the highest handed out), else just past the highest handed out."""
        current = self._uidvalidity
        start = min(
            (uid for uid, under in self._pending.items() if under == current),
            default=self._high + 1,
        )
        return session.search_unprocessed(start, keywords=self._keywords), current

    # --- marking ------------------------------------------------------------------------

    def mark_processed(self, uid: int) -> None:
        """Mark one fetched message as processed: :meth:`mark_processed_many` of one."""
        self.mark_processed_many([uid])

    def mark_processed_many(self, uids: Iterable[int]) -> None:
        """Mark fetched messages as processed; call it only once their effect is committed.

        One command for the lot (per 1,000 UIDs): UID MOVE to ``processed_folder`` when one
        is configured (RFC 6851; without MOVE, COPY + \\Deleted + UID EXPUNGE, RFC 4315),
        otherwise UID STORE of the keyword or \\Seen.  Both may be repeated after a lost
        connection: flagging twice or moving a UID that is gone changes nothing.  A UID
        handed out before the folder's UIDVALIDITY changed names another message now: it is
        left alone, and the message is fetched again.

        Raises:
            MailUnavailable: the connection was lost and could not be made again.
            MailError, ConfigError: the server refused to flag or move.
        """
        wanted = sorted(set(uids))
        if not wanted:
            return
        crash_point("mid-imap-flag")
        stale = self._call(lambda session: self._mark(session, wanted))
        if stale:
            log.warning(
                "%s: UIDVALIDITY changed since %d message(s) were fetched; left alone, "
                "they will be fetched again",
                self.where,
                len(stale),
            )
        for uid in wanted:
            self._pending.pop(uid, None)

    def _mark(self, session: ImapSession, uids: list[int]) -> list[int]:
        current = self._uidvalidity
        stale = [uid for uid in uids if self._pending.get(uid, current) != current]
        fresh = [uid for uid in uids if self._pending.get(uid, current) == current]
        if fresh:
            flag = PROCESSED_KEYWORD if self._keywords else "\\Seen"
            if self.config.processed_folder:
                session.move(fresh, self.config.processed_folder, flag=flag)
            else:
                session.flag(fresh, flag)
        return stale

    # --- waiting ------------------------------------------------------------------------

    def idle(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Wait up to ``timeout`` seconds for new mail in the folder.

        With IDLE (RFC 2177, offered by the server and ``idle = true``) returns True at once
        when messages came in since the last fetch (also those announced with the answer
        to an earlier command, which IDLE would not repeat), else as soon as the server
        reports new mail, and False when the time is up.  IDLE is re-issued every
        ``idle_renew_seconds``; a lost connection is made again (and looked at again).
        Without IDLE sleeps ``poll_seconds`` (at most ``timeout``) and returns False: the
        caller looks with :meth:`fetch_new` after every return either way.  Setting
        ``stop`` (or the reader's stop event) ends the wait early with False.

        Raises:
            MailUnavailable: the connection was lost and could not be made again, or the
                stop event was set while waiting to reconnect.
        """
        stop = stop or self._stop
        until = time.monotonic() + timeout
        if self.config.idle:
            waited = self._call(lambda session: self._idle(session, until, stop), stop=stop)
            if waited is not None:
                return waited
        pause = min(max(0.0, until - time.monotonic()), float(self.config.poll_seconds))
        (stop or threading.Event()).wait(pause)
        return False

    def _idle(
        self, session: ImapSession, until: float, stop: threading.Event | None
    ) -> bool | None:
        if "IDLE" not in session.capabilities:
            return None
        # New since the last fetch: found now, or told of with the answer to an earlier
        # command (this search's included), which IDLE would not repeat.
        if session.search_unprocessed(self._high + 1, keywords=self._keywords):
            return True
        if session.announced_new_mail():
            return True
        return session.idle(until=until, renew=self.idle_renew_seconds, stop=stop)

    # --- the connection -------------------------------------------------------------------

    @property
    def _keywords(self) -> bool:
        return self._folder is not None and self._folder.keywords

    def _call(
        self,
        operation: Callable[[ImapSession], T],
        *,
        reselect: bool = False,
        stop: threading.Event | None = None,
    ) -> T:
        """Run ``operation`` on a ready session; when the connection is lost, reconnect
        following :attr:`backoff` and run it again (every operation here may be repeated).

        Raises:
            MailUnavailable: the last attempt failed, or ``stop`` (by default the reader's
                stop event) was set meanwhile.
        """
        stop = stop or self._stop
        pauses = self.backoff.delays()
        while True:
            try:
                return operation(self._ready(reselect=reselect))
            except MailUnavailable as exc:
                PROCESS.imap_connected(False)  # metrics, health
                self.close()
                pause = next(pauses, None)
                if pause is None or (stop is not None and stop.is_set()):
                    raise
                log.warning("%s; reconnecting in %.1f s", exc, pause)
                if stop is not None:
                    if stop.wait(pause):
                        raise
                else:
                    time.sleep(pause)

    def _ready(self, *, reselect: bool) -> ImapSession:
        """A logged-in session with the folder selected: connects when there is none."""
        session = self._session
        if session is not None and session.broken:
            self.close()
            session = None
        if session is None:
            try:
                session = ImapSession.open(
                    self.config, tls_context=self._tls_context, timeout=self.timeout
                )
            except PtmError:  # unreachable, or the login refused
                PROCESS.imap_connected(False)  # metrics, health
                raise
            PROCESS.imap_connected(True)  # metrics, health
            self._session, self._folder = session, None
        if reselect or self._folder is None:
            self._selected(session.select(self.config.folder))
        return session

    def _selected(self, folder: Folder) -> None:
        """Note a SELECT's answer; a new UIDVALIDITY (RFC 3501 §2.3.1.1) voids our UIDs."""
        if self._uidvalidity is not None and folder.uidvalidity != self._uidvalidity:
            log.warning(
                "%s: UIDVALIDITY of folder %r changed from %s to %s: forgetting UID %d, "
                "rescanning every unprocessed message",
                self.where,
                folder.name,
                self._uidvalidity,
                folder.uidvalidity,
                self._high,
            )
            self._high = 0
        self._uidvalidity = folder.uidvalidity
        self._folder = folder


def check(config: ImapConfig, *, tls_context: ssl.SSLContext | None = None) -> list[str]:
    """Problems with ``[mail.imap]`` for ``ptm-sync check``: connect, log in, open the folder.

    One attempt, no reconnecting; nothing is fetched or changed.  Returns one line per
    problem; empty when all is well.
    """
    problems: list[str] = []
    # A login without TLS is a warning of `check` (ptm_sync.app.checks.cleartext_logins).
    reader = ImapReader(config, tls_context=tls_context, backoff=Backoff(attempts=0))
    try:
        reader.connect()
    except PtmError as exc:
        problems.append(f"mail.imap: {exc}")
    finally:
        reader.close()
    return problems
