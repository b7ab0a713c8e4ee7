"""Incoming mail: read new messages from an IMAP folder, mark them once their effect is kept.

:class:`ImapReader` works by UID (RFC 3501 §2.3.1.1) and never changes a message while
fetching it (``BODY.PEEK[]``).  A message counts as processed only when the caller says so
with :meth:`~ImapReader.mark_processed`, after its effect is committed; a crash in between
just means the message is fetched again on the next pass, and the caller recognizes it by
its digest.  Processed means: moved to ``processed_folder`` when one is configured,
otherwise flagged with the keyword :data:`PROCESSED_KEYWORD` where the folder accepts new
keywords (``\\*`` in PERMANENTFLAGS), otherwise flagged ``\\Seen``.

:meth:`~ImapReader.idle` waits for new mail with IDLE (RFC 2177) where the server offers it,
and by sleeping ``poll_seconds`` elsewhere.  imaplib (Python 3.11) has no IDLE, so
:mod:`ptm_sync.mail.idle` holds that conversation over imaplib's socket.
"""

from __future__ import annotations

import base64
import imaplib
import logging
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import TracebackType

from ptm_sync.config import ImapConfig
from ptm_sync.errors import ConfigError, MailAuthFailed, MailError, MailUnavailable, PtmError
from ptm_sync.mail import idle as idle_protocol

log = logging.getLogger(__name__)

#: The keyword that marks a message we processed (RFC 3501 §2.3.2 keywords).
PROCESSED_KEYWORD = "$PtmProcessed"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_UID = re.compile(rb"UID (\d+)")


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """One message as the server holds it: its UID in the folder and its raw bytes."""

    uid: int
    raw: bytes


class ImapReader:
    """Reads the ``[mail.imap]`` folder over one IMAP connection (not thread-safe).

    Args:
        config: the ``[mail.imap]`` section.
        tls_context: TLS settings for ``ssl`` / ``starttls``; by default the system's
            trusted certificates with host name checking.
        timeout: seconds to wait for the server on every read and write.
    """

    def __init__(
        self,
        config: ImapConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self._tls_context = tls_context
        self._conn: imaplib.IMAP4 | None = None
        self._caps: frozenset[str] = frozenset()
        self._selected = False
        self._uidvalidity: int | None = None
        self._keywords = False

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
        """What the server offers after login (upper case), empty before connecting."""
        return self._caps

    def connect(self) -> None:
        """Connect, log in and select the folder now instead of at the first call."""
        self._ready()

    def close(self) -> None:
        """Log out and close; harmless when not connected."""
        conn, self._conn = self._conn, None
        self._selected = False
        if conn is None:
            return
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            conn.shutdown()

    # --- the API ----------------------------------------------------------------------

    def fetch_new(self) -> Iterator[FetchedMessage]:
        """Yield the messages of the folder not processed yet, oldest UID first.

        Fetching leaves the messages untouched (no \\Seen): only :meth:`mark_processed`
        changes them.  The folder is selected afresh on every call.
        """
        conn = self._ready(reselect=True)
        # Deleted messages are on their way out (a COPY + \Deleted move without UIDPLUS).
        unprocessed = f"UNKEYWORD {PROCESSED_KEYWORD}" if self._keywords else "UNSEEN"
        with self._guard("searching for new messages"):
            typ, data = conn.uid("SEARCH", f"UNDELETED {unprocessed}")
        if typ != "OK":
            raise MailError(f"{self.where} refused the search: {_text(data)}")
        uids = sorted(int(n) for n in (data[0] or b"").split())
        for uid in uids:
            conn = self._ready()
            with self._guard(f"fetching message {uid}"):
                typ, data = conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
            if typ != "OK":
                raise MailError(f"{self.where} refused to fetch message {uid}: {_text(data)}")
            raw = _body(data, uid)
            if raw is None:  # expunged by somebody else since the search
                continue
            yield FetchedMessage(uid=uid, raw=raw)

    def mark_processed(self, uid: int) -> None:
        """Mark a fetched message as processed; call it only once its effect is committed.

        Moves the message to ``processed_folder`` when one is configured (MOVE, RFC 6851,
        or COPY + \\Deleted + UID EXPUNGE, RFC 4315), otherwise flags it.  If the folder's
        UIDVALIDITY changed since the fetch the UID names another message: nothing is
        changed and the message is simply fetched again.
        """
        fetched_under = self._uidvalidity
        conn = self._ready()
        if fetched_under is not None and self._uidvalidity != fetched_under:
            log.warning(
                "%s: UIDVALIDITY changed; message %d will be fetched again", self.where, uid
            )
            return
        if self.config.processed_folder:
            self._move(conn, uid, self.config.processed_folder)
            return
        flag = PROCESSED_KEYWORD if self._keywords else "\\Seen"
        with self._guard(f"flagging message {uid}"):
            typ, data = conn.uid("STORE", str(uid), "+FLAGS.SILENT", f"({flag})")
        if typ != "OK":
            raise MailError(f"{self.where} refused to flag message {uid}: {_text(data)}")

    def idle(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Wait up to ``timeout`` seconds for new mail in the folder.

        With IDLE (RFC 2177, offered by the server and ``idle = true``) returns True as soon
        as the server reports new mail (EXISTS) and False when the time is up.  Without IDLE
        sleeps ``poll_seconds`` (at most ``timeout``) and returns False: the caller looks
        with :meth:`fetch_new` after every return either way.  Setting ``stop`` ends the
        wait early with False.
        """
        conn = self._ready() if self.config.idle else None
        if conn is None or "IDLE" not in self._caps:
            pause = min(timeout, float(self.config.poll_seconds))
            (stop or threading.Event()).wait(pause)
            return False
        # New mail reported with the answer to an earlier command: IDLE would not repeat it.
        if conn.response("EXISTS")[1] != [None]:
            return True
        with self._guard("waiting with IDLE"):
            try:
                return idle_protocol.wait(conn, timeout, stop)
            except idle_protocol.ServerClosed as exc:
                self._discard()
                raise MailUnavailable(f"{self.where} ended the connection: {exc}") from None
            except idle_protocol.IdleRefused as exc:
                raise MailError(f"{self.where} refused IDLE: {exc}") from None

    # --- the connection ---------------------------------------------------------------

    def _ready(self, *, reselect: bool = False) -> imaplib.IMAP4:
        """A logged-in connection with the folder selected; reconnects once if it was lost."""
        reused = self._conn is not None
        try:
            return self._select(self._connection(), force=reselect)
        except MailUnavailable:
            if not reused:
                raise
            log.info("%s: the connection was lost; reconnecting", self.where)
        return self._select(self._connection(), force=True)

    def _connection(self) -> imaplib.IMAP4:
        if self._conn is None:
            self._conn = self._open()
            self._selected = False
        return self._conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        self._selected = False
        if conn is not None:
            with suppress(OSError):
                conn.shutdown()

    def _open(self) -> imaplib.IMAP4:
        cfg = self.config
        context = self._tls_context or ssl.create_default_context()
        conn: imaplib.IMAP4 | None = None
        try:
            if cfg.ssl:
                conn = imaplib.IMAP4_SSL(
                    cfg.host, cfg.port, ssl_context=context, timeout=self.timeout
                )
            else:
                conn = imaplib.IMAP4(cfg.host, cfg.port, timeout=self.timeout)
            if cfg.starttls and not cfg.ssl:
                if "STARTTLS" not in conn.capabilities:
                    raise ConfigError(f"{self.where} does not offer STARTTLS", "mail.imap.starttls")
                conn.starttls(ssl_context=context)
            self._login(conn)
            _, data = conn.capability()
            self._caps = frozenset(_text(data).upper().split())
        except PtmError:
            _shutdown(conn)
            raise
        except (imaplib.IMAP4.error, OSError) as exc:
            _shutdown(conn)
            raise MailUnavailable(f"{self.where}: {_reason(exc)}") from None
        log.debug("connected to %s", self.where)
        return conn

    def _login(self, conn: imaplib.IMAP4) -> None:
        cfg = self.config
        if cfg.password is None:
            raise ConfigError("a password is needed", "mail.imap.password")
        password = cfg.password.reveal()
        try:
            conn.login(_quoted(cfg.username), password)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            reason = _reason(exc)
            if "[UNAVAILABLE]" in reason:  # RFC 5530 §3: try again later
                raise MailUnavailable(f"{self.where}: login failed for now: {reason}") from None
            hint = ""
            if "PRIVACYREQUIRED" in reason or "LOGINDISABLED" in conn.capabilities:
                hint = "; set ssl = true or starttls = true"
            raise MailAuthFailed(
                f"{self.where} refused the login of {cfg.username!r}: {reason}{hint}"
            ) from None

    def _select(self, conn: imaplib.IMAP4, *, force: bool) -> imaplib.IMAP4:
        if self._selected and not force:
            return conn
        folder = self.config.folder
        with self._guard(f"opening folder {folder!r}"):
            typ, data = conn.select(mailbox_name(folder))
            if typ != "OK":
                raise ConfigError(
                    f"folder {folder!r} cannot be opened on {self.where}: {_text(data)}",
                    "mail.imap.folder",
                )
            uidvalidity = conn.response("UIDVALIDITY")[1][0]
            flags = _text(conn.response("PERMANENTFLAGS")[1])
            conn.response("EXISTS")  # the folder's size now; later EXISTS mean new mail
        self._uidvalidity = int(uidvalidity) if uidvalidity else None
        self._keywords = "\\*" in flags or PROCESSED_KEYWORD in flags
        self._selected = True
        return conn

    def _move(self, conn: imaplib.IMAP4, uid: int, folder: str) -> None:
        target = mailbox_name(folder)
        with self._guard(f"moving message {uid} to {folder!r}"):
            typ, data = self._move_once(conn, uid, target)
            if typ != "OK" and "[TRYCREATE]" in _text(data):  # RFC 3501 §6.4.7
                log.info("%s: creating folder %r", self.where, folder)
                conn.create(target)
                typ, data = self._move_once(conn, uid, target)
        if typ != "OK":
            raise ConfigError(
                f"cannot move message {uid} to {folder!r} on {self.where}: {_text(data)}",
                "mail.imap.processed_folder",
            )

    def _move_once(self, conn: imaplib.IMAP4, uid: int, target: str) -> tuple[str, list[object]]:
        if "MOVE" in self._caps:
            typ, data = conn.uid("MOVE", str(uid), target)
            return typ, list(data)
        typ, data = conn.uid("COPY", str(uid), target)
        if typ != "OK":
            return typ, list(data)
        # Flagged processed as well: should somebody undelete it, it is still not new.
        processed = PROCESSED_KEYWORD if self._keywords else "\\Seen"
        conn.uid("STORE", str(uid), "+FLAGS.SILENT", f"(\\Deleted {processed})")
        if "UIDPLUS" in self._caps:
            # Only this message: a plain EXPUNGE would remove what others marked \Deleted.
            conn.uid("EXPUNGE", str(uid))
        return typ, list(data)

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Translate what imaplib and the socket raise while ``doing`` something."""
        try:
            yield
        except imaplib.IMAP4.abort as exc:
            self._discard()
            raise MailUnavailable(f"{self.where}: connection lost while {doing}: {exc}") from None
        except imaplib.IMAP4.error as exc:
            raise MailError(f"{self.where}: error while {doing}: {_reason(exc)}") from None
        except OSError as exc:
            self._discard()
            raise MailUnavailable(f"{self.where}: {_reason(exc)} while {doing}") from None


def mailbox_name(name: str) -> str:
    """A folder name as IMAP wants it: modified UTF-7 (RFC 3501 §5.1.3), quoted."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            utf16 = "".join(run).encode("utf-16-be")
            b64 = base64.b64encode(utf16).decode("ascii").rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            run.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    flush()
    return _quoted("".join(out))


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _body(data: list[object], uid: int) -> bytes | None:
    """The BODY[] literal of ``uid`` in a FETCH answer, skipping unrelated FETCH responses."""
    for i, item in enumerate(data):
        if not (isinstance(item, tuple) and b"BODY[]" in item[0]):
            continue
        found = _UID.search(item[0])
        after = data[i + 1] if i + 1 < len(data) else None
        if found is None and isinstance(after, bytes):
            found = _UID.search(after)
        if found is not None and int(found.group(1)) == uid:
            return bytes(item[1])
    return None


def _text(data: object) -> str:
    """Readable text of an imaplib answer (bytes, str or a list of them)."""
    if isinstance(data, list | tuple):
        return " ".join(_text(d) for d in data if d is not None)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _text(list(exc.args)) or type(exc).__name__


def _shutdown(conn: imaplib.IMAP4 | None) -> None:
    if conn is not None:
        with suppress(OSError):
            conn.shutdown()


def check(config: ImapConfig, *, tls_context: ssl.SSLContext | None = None) -> list[str]:
    """Problems with ``[mail.imap]`` for ``ptm-sync check``: connect, log in, open the folder.

    Nothing is fetched or changed.  Returns one line per problem; empty when all is well.
    """
    problems: list[str] = []
    if not (config.ssl or config.starttls) and config.host not in _LOOPBACK:
        problems.append(
            "mail.imap: the password would travel in clear; set ssl = true or starttls = true"
        )
    reader = ImapReader(config, tls_context=tls_context)
    try:
        reader.connect()
    except PtmError as exc:
        problems.append(f"mail.imap: {exc}")
    finally:
        reader.close()
    return problems
