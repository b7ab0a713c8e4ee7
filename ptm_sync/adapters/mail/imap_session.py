"""One IMAP connection through imapclient: log in, select, search, fetch, mark, IDLE.

:class:`ImapSession` is the plumbing under :class:`ptm_sync.adapters.mail.imap.ImapReader`: each
method sends one IMAP command (a few for a move without RFC 6851), always by UID
(RFC 3501 §6.4.8).  Every imapclient, imaplib and socket failure is translated here:

* the connection is gone (socket error, timeout, ``BYE``, a broken IDLE): the session is
  marked :attr:`~ImapSession.broken` and :class:`MailUnavailable` (retryable) is raised;
* a login refused: :class:`MailAuthFailed`; ``[UNAVAILABLE]`` (RFC 5530 §3): MailUnavailable;
* a folder that cannot be opened or moved to: :class:`ConfigError` naming the key;
* any other ``NO`` / ``BAD``: :class:`MailError`.

No imapclient or imaplib exception leaves this module.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from ptm_sync.adapters.mail import imap_idle
from ptm_sync.config.settings import ImapConfig
from ptm_sync.core.errors import ConfigError, MailAuthFailed, MailError, MailUnavailable, PtmError

log = logging.getLogger(__name__)

#: The keyword that marks a message we processed (RFC 3501 §2.3.2 keywords).
PROCESSED_KEYWORD = "$PtmProcessed"
#: UIDs per STORE / MOVE command at most, so that a command line stays short.
UIDS_PER_COMMAND = 1000
#: RFC 5530 §3 response codes that mean "try again later".
_TEMPORARY = ("[UNAVAILABLE]", "[INUSE]")


@dataclass(frozen=True, slots=True)
class Folder:
    """What SELECT (RFC 3501 §6.3.1) said about the folder.

    ``keywords``: PERMANENTFLAGS allow new keywords (``\\*``) or ours already.
    """

    name: str
    uidvalidity: int | None
    keywords: bool


class ImapSession:
    """A logged-in imapclient connection; not thread-safe.  Open with :meth:`open`."""

    def __init__(self, client: IMAPClient, where: str, capabilities: frozenset[str]) -> None:
        self.client = client
        self.where = where
        self.capabilities = capabilities
        self.broken = False

    @classmethod
    def open(
        cls, config: ImapConfig, *, tls_context: ssl.SSLContext | None, timeout: float
    ) -> ImapSession:
        """Connect (implicit TLS with ``ssl``, else plain, upgraded with ``starttls``,
        RFC 3501 §6.2.1) and log in.  Certificates are always verified: ``tls_context``
        or the system's trusted ones, with host name checking.

        Raises:
            MailUnavailable: unreachable, TLS failed, timed out after ``timeout`` seconds.
            MailAuthFailed: the login was refused.
            ConfigError: no password, or ``starttls`` on a server without STARTTLS.
        """
        where = f"IMAP server {config.host}:{config.port}"
        if config.password is None:
            raise ConfigError("a password is needed", "mail.imap.password")
        context = tls_context or ssl.create_default_context()
        client: IMAPClient | None = None
        try:
            client = IMAPClient(
                config.host,
                config.port,
                ssl=config.ssl,
                ssl_context=context if config.ssl else None,
                timeout=timeout,
            )
            if config.starttls and not config.ssl:
                if not client.has_capability("STARTTLS"):
                    raise ConfigError(f"{where} does not offer STARTTLS", "mail.imap.starttls")
                client.starttls(context)
            offered = _capabilities(client)
            _login(client, config, where, offered)
            session = cls(client, where, _capabilities(client))
        except PtmError:
            _shutdown(client)
            raise
        except (IMAPClientError, OSError) as exc:
            _shutdown(client)
            raise MailUnavailable(f"{where}: {_reason(exc)}") from None
        log.debug("connected to %s", where)
        return session

    def close(self) -> None:
        """Log out; just close the socket when that fails.  Never raises."""
        if self.broken:
            _shutdown(self.client)
            return
        try:
            self.client.logout()
        except (IMAPClientError, OSError):
            _shutdown(self.client)
        self.broken = True

    # --- commands ---------------------------------------------------------------------

    def select(self, name: str) -> Folder:
        """SELECT ``name`` (RFC 3501 §6.3.1; imapclient sends it in modified UTF-7)."""
        with self._translated(f"opening folder {name!r}", key="mail.imap.folder"):
            info = self.client.select_folder(name)
        self.announced_new_mail()  # the folder's size now: only later EXISTS mean news
        uidvalidity = info.get(b"UIDVALIDITY")
        flags = info.get(b"PERMANENTFLAGS", ())
        keywords = b"\\*" in flags or PROCESSED_KEYWORD.encode() in flags
        return Folder(name, int(uidvalidity) if uidvalidity else None, keywords)

    def search_unprocessed(self, start: int, *, keywords: bool) -> list[int]:
        """UIDs from ``start`` on of messages not processed yet, ascending.

        Unprocessed: without :data:`PROCESSED_KEYWORD` (or without \\Seen where keywords
        cannot be stored) and not \\Deleted (on its way out after a COPY without MOVE).
        """
        unprocessed = ["UNKEYWORD", PROCESSED_KEYWORD] if keywords else ["UNSEEN"]
        with self._translated("searching for new messages"):
            found = self.client.search(["UID", f"{start}:*", "UNDELETED", *unprocessed])
        # RFC 3501 §6.4.8: "n:*" also matches the last message when n is past the end.
        return sorted(uid for uid in found if uid >= start)

    def announced_new_mail(self) -> bool:
        """Whether an answer since the last SELECT (or the last call) carried ``* n EXISTS``
        (RFC 3501 §7.3.1): the folder grew, maybe by a message that the command itself did
        not see (a server searches the folder as it was when the command began, and tells
        of the new message only with its answer).  IDLE would not tell of it again.

        imapclient hands the untagged responses of most commands to nobody; imaplib keeps
        them, and its public ``IMAP4.response()`` takes them out.  imapclient's imaplib
        object is ``_imap``: the one place where this module reaches into imapclient.
        """
        imap = getattr(self.client, "_imap", None)
        if imap is None:
            return False
        with self._translated("reading the server's announcements"):
            _, data = imap.response("EXISTS")
        return data != [None]

    def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The raw bytes of ``uids`` in one UID FETCH of ``BODY.PEEK[]``, which leaves
        \\Seen alone (RFC 3501 §6.4.5).  Messages expunged meanwhile are missing."""
        if not uids:
            return {}
        with self._translated(f"fetching {len(uids)} messages"):
            answer = self.client.fetch(list(uids), ["BODY.PEEK[]"])
        wanted = set(uids)
        return {
            uid: bytes(item[b"BODY[]"])
            for uid, item in answer.items()
            if uid in wanted and b"BODY[]" in item
        }

    def flag(self, uids: Sequence[int], flag: str) -> None:
        """Add ``flag`` to ``uids``: one UID STORE per :data:`UIDS_PER_COMMAND` UIDs."""
        for part in sequence_sets(uids):
            with self._translated(f"flagging messages {part}"):
                self.client.add_flags(part, [flag], silent=True)

    def move(self, uids: Sequence[int], folder: str, *, flag: str) -> None:
        """Move ``uids`` to ``folder``, creating it when the server says TRYCREATE.

        UID MOVE (RFC 6851) where offered; else UID COPY, then ``\\Deleted`` and ``flag``
        (so that an undeleted copy is still not new), then UID EXPUNGE of just these
        messages where UIDPLUS allows it (RFC 4315 §2.1); a plain EXPUNGE would remove what
        others marked \\Deleted.  Without MOVE a retry after a lost connection may copy a
        message twice; the original is processed once all the same.

        Raises:
            ConfigError: the server refused the move (key ``mail.imap.processed_folder``).
        """
        for part in sequence_sets(uids):
            doing = f"moving messages {part} to {folder!r}"
            with self._translated(doing, key="mail.imap.processed_folder"):
                try:
                    self._move_once(part, folder, flag)
                except IMAPClientAbortError:
                    raise
                except IMAPClientError as exc:
                    if "[TRYCREATE]" not in _reason(exc):  # RFC 3501 §6.4.7
                        raise
                    log.info("%s: creating folder %r", self.where, folder)
                    self.client.create_folder(folder)
                    self._move_once(part, folder, flag)

    def _move_once(self, uids: str, folder: str, flag: str) -> None:
        if "MOVE" in self.capabilities:
            self.client.move(uids, folder)
            return
        self.client.copy(uids, folder)
        self.client.add_flags(uids, ["\\Deleted", flag], silent=True)
        if "UIDPLUS" in self.capabilities:
            self.client.uid_expunge(uids)

    def idle(self, *, until: float, renew: float, stop: threading.Event | None) -> bool:
        """Wait with IDLE (RFC 2177) until new mail (True), ``until`` (a
        :func:`time.monotonic` instant) or ``stop`` (False).  The IDLE command is
        re-issued every ``renew`` seconds.

        Raises:
            MailUnavailable: the connection was lost or IDLE went wrong; the session is
                broken either way.
        """
        while stop is None or not stop.is_set():
            left = until - time.monotonic()
            if left <= 0:
                break
            with self._translated("waiting with IDLE", lost_on_error=True):
                if imap_idle.wait_once(self.client, min(left, renew), stop):
                    return True
        return False

    # --- errors -----------------------------------------------------------------------

    @contextmanager
    def _translated(
        self, doing: str, *, key: str | None = None, lost_on_error: bool = False
    ) -> Iterator[None]:
        """Translate what imapclient, imaplib and the socket raise while ``doing``.

        ``key``: a refusal is a :class:`ConfigError` of that config key.  ``lost_on_error``:
        any IMAP error leaves the connection in an unknown state (IDLE), so it is dropped.
        """
        try:
            yield
        except IMAPClientAbortError as exc:  # imaplib.IMAP4.abort: the connection is gone
            self._lost()
            reason = _reason(exc)
            raise MailUnavailable(
                f"{self.where}: connection lost while {doing}: {reason}"
            ) from None
        except IMAPClientError as exc:
            reason = _reason(exc)
            if lost_on_error:
                self._lost()
                raise MailUnavailable(f"{self.where}: {reason} while {doing}") from None
            if any(code in reason for code in _TEMPORARY):
                raise MailUnavailable(f"{self.where} refused {doing} for now: {reason}") from None
            if key is not None:
                raise ConfigError(f"{self.where} refused {doing}: {reason}", key) from None
            raise MailError(f"{self.where}: error while {doing}: {reason}") from None
        except OSError as exc:
            self._lost()
            raise MailUnavailable(f"{self.where}: {_reason(exc)} while {doing}") from None

    def _lost(self) -> None:
        self.broken = True
        _shutdown(self.client)


def sequence_sets(uids: Sequence[int]) -> Iterator[str]:
    """``uids`` as RFC 3501 §9 sequence sets (``1:5,9``), :data:`UIDS_PER_COMMAND` at a time."""
    ordered = sorted(set(uids))
    for at in range(0, len(ordered), UIDS_PER_COMMAND):
        part = ordered[at : at + UIDS_PER_COMMAND]
        runs: list[str] = []
        first = last = part[0]
        for uid in part[1:]:
            if uid != last + 1:
                runs.append(f"{first}:{last}" if last > first else str(first))
                first = uid
            last = uid
        runs.append(f"{first}:{last}" if last > first else str(first))
        yield ",".join(runs)


def _login(client: IMAPClient, config: ImapConfig, where: str, offered: frozenset[str]) -> None:
    assert config.password is not None
    try:
        client.login(_quoted(config.username), config.password.reveal())
    except LoginError as exc:
        # imapclient turns every failure of LOGIN into LoginError; the cause tells them apart.
        cause = exc.__context__
        if isinstance(cause, IMAPClientAbortError | OSError):
            raise MailUnavailable(f"{where}: connection lost while logging in") from None
        reason = _reason(cause or exc)
        if "[UNAVAILABLE]" in reason:  # RFC 5530 §3: try again later
            raise MailUnavailable(f"{where}: login failed for now: {reason}") from None
        hint = ""
        if "PRIVACYREQUIRED" in reason or "LOGINDISABLED" in offered:
            hint = "; set ssl = true or starttls = true"
        raise MailAuthFailed(
            f"{where} refused the login of {config.username!r}: {reason}{hint}"
        ) from None


def _capabilities(client: IMAPClient) -> frozenset[str]:
    return frozenset(c.decode("ascii", "replace").upper() for c in client.capabilities())


def _quoted(text: str) -> str:
    """An IMAP quoted string (RFC 3501 §4.3): imaplib sends LOGIN's user name as it is."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reason(exc: BaseException) -> str:
    """Readable text of an error: socket errors by name, IMAP answers as the server said."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    parts = [a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in exc.args]
    return " ".join(parts) or type(exc).__name__


def _shutdown(client: IMAPClient | None) -> None:
    if client is not None:
        with suppress(IMAPClientError, OSError):
            client.shutdown()
