"""Outgoing mail: one SMTP connection reused for a batch, errors translated where they arise.

:class:`SmtpSender` connects lazily on the first :meth:`~SmtpSender.send`, keeps the
connection for the next messages and, when the server dropped it in between (an idle
timeout, a restart), reconnects once without the caller noticing.  It runs the transaction
itself (MAIL, RCPT, DATA) so that every reply is judged where it arrives:

* no connection, a timeout, a 4xx reply or a dropped connection → :class:`MailUnavailable`
  (retryable: the outbox tries again later);
* a 5xx reply to the sender, a recipient or the message → :class:`MailRejected`;
* a refused login → :class:`MailAuthFailed` (a :class:`UserError`: fix the credentials).

A message goes to all of its recipients or to none: when any recipient is refused, the
transaction is reset before DATA, so a retry never sends twice to the ones that were taken.
Passwords and message bodies never reach the log.
"""

from __future__ import annotations

import copy
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from types import TracebackType

from ptm_sync.config.settings import SmtpConfig
from ptm_sync.core.errors import (
    ConfigError,
    MailAuthFailed,
    MailRejected,
    MailUnavailable,
    PtmError,
)

log = logging.getLogger(__name__)

_LINE_END = re.compile(rb"\r\n|\r|\n")

#: Seconds to wait for a connection (and, with ``ssl``, its TLS handshake): a server that
#: cannot be reached costs little, whatever ``[mail.smtp] timeout`` allows each reply.  A
#: module constant: DESIGN §8 has no key for it.
CONNECT_SECONDS = 5.0


class _ConnectQuickly:
    """Connects within :data:`CONNECT_SECONDS`, then waits ``timeout`` for each reply."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        quick = min(timeout, CONNECT_SECONDS) if timeout else CONNECT_SECONDS
        sock: socket.socket = super()._get_socket(host, port, quick)  # type: ignore[misc]
        sock.settimeout(timeout)
        return sock


class _Smtp(_ConnectQuickly, smtplib.SMTP):
    pass


class _SmtpSsl(_ConnectQuickly, smtplib.SMTP_SSL):
    pass


class _Dropped(Exception):
    """The server closed the connection before DATA: resending cannot duplicate the message."""


class SmtpSender:
    """Sends messages over one SMTP connection, built from ``[mail.smtp]``.

    Use it as a context manager around a batch; it is not thread-safe (one per worker).

    Args:
        config: the ``[mail.smtp]`` section.
        tls_context: the TLS settings for ``ssl`` / ``starttls``; by default the system's
            trusted certificates with host name checking.
        local_hostname: the name we give in EHLO; by default this machine's FQDN.
    """

    def __init__(
        self,
        config: SmtpConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.config = config
        self._tls_context = tls_context
        self._local_hostname = local_hostname
        self._conn: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpSender:
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
        return f"SMTP server {self.config.host}:{self.config.port}"

    def connect(self) -> None:
        """Open the connection now (EHLO, STARTTLS, login) instead of at the first send."""
        if self._conn is None:
            self._conn = self._open()

    def close(self) -> None:
        """Say QUIT and close; harmless when not connected."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()

    def send(self, msg: EmailMessage | bytes, *, sender: str, recipients: Sequence[str]) -> None:
        """Send one message to every recipient, or raise without sending it to any.

        ``msg`` is sent as it is: an :class:`EmailMessage` is serialized with CRLF line ends
        (and without its Bcc header); bytes only have their line ends made CRLF.

        Raises:
            MailUnavailable: the server cannot be reached or answered 4xx; try again later.
            MailRejected: the server refused the sender, a recipient or the message (5xx).
            MailAuthFailed: the server refused our login.
        """
        if not recipients:
            raise ValueError("a message needs at least one recipient")
        data = _wire_bytes(msg)
        reused = self._conn is not None
        try:
            self._transaction(self._connection(), data, sender, recipients)
        except _Dropped:
            self._discard()
            if not reused:
                raise MailUnavailable(f"{self.where} closed the connection") from None
            log.info("%s dropped the idle connection; reconnecting", self.where)
            try:
                self._transaction(self._connection(), data, sender, recipients)
            except _Dropped:
                self._discard()
                raise MailUnavailable(f"{self.where} closed the connection") from None

    # --- the transaction --------------------------------------------------------------

    def _transaction(
        self, conn: smtplib.SMTP, data: bytes, sender: str, recipients: Sequence[str]
    ) -> None:
        options = self._mail_options(conn, data, sender, recipients)
        try:
            code, reply = conn.mail(sender, options)
            if code == 421:  # RFC 5321 §3.8: the server is closing the channel
                raise _Dropped
            if code != 250:
                self._reset(conn)
                raise _refusal(code, reply, f"sender {sender}", self.where)
            refused: dict[str, tuple[int, bytes]] = {}
            for recipient in recipients:
                code, reply = conn.rcpt(recipient)
                if code == 421:
                    raise _Dropped
                if code not in (250, 251):
                    refused[recipient] = (code, reply)
            if refused:
                self._reset(conn)
                raise _refused_recipients(refused, self.where)
        except smtplib.SMTPServerDisconnected as exc:
            if _timed_out(exc):  # no answer: reconnecting would only wait as long again
                self._discard()
                raise self._no_answer() from None
            raise _Dropped from None
        except OSError as exc:
            self._discard()
            raise MailUnavailable(f"{self.where}: {_os_reason(exc)}") from None
        try:
            code, reply = conn.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself was refused (no 354)
            self._reset(conn)
            raise _refusal(exc.smtp_code, exc.smtp_error, "message", self.where) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # The message may or may not have been taken: the outbox retries, and the
            # fixed Message-ID lets the far side see the duplicate.
            self._discard()
            raise MailUnavailable(f"{self.where} lost the connection during DATA") from exc
        if code != 250:
            self._reset(conn)
            raise _refusal(code, reply, "message", self.where)
        log.debug("sent a message to %d recipient(s) via %s", len(recipients), self.where)

    def _mail_options(
        self, conn: smtplib.SMTP, data: bytes, sender: str, recipients: Sequence[str]
    ) -> list[str]:
        options: list[str] = []
        if not data.isascii() and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")  # RFC 6152
        if not all(a.isascii() for a in (sender, *recipients)):
            if not conn.has_extn("smtputf8"):
                raise MailRejected(f"{self.where} cannot take non-ASCII addresses (no SMTPUTF8)")
            options.append("SMTPUTF8")  # RFC 6531
        return options

    def _reset(self, conn: smtplib.SMTP) -> None:
        """RSET after a failed transaction; a connection that cannot reset is dropped."""
        try:
            code, _ = conn.rset()
        except (smtplib.SMTPException, OSError):
            code = 0
        if code != 250:
            self._discard()

    # --- the connection ---------------------------------------------------------------

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _open(self) -> smtplib.SMTP:
        cfg = self.config
        context = self._tls_context
        if context is None and (cfg.ssl or cfg.starttls):
            context = ssl.create_default_context()  # reads the system's CAs: only for TLS
        conn: smtplib.SMTP | None = None
        try:
            if cfg.ssl:
                conn = _SmtpSsl(
                    cfg.host,
                    cfg.port,
                    local_hostname=self._local_hostname,
                    timeout=cfg.timeout,
                    context=context,
                )
            else:
                conn = _Smtp(
                    cfg.host, cfg.port, local_hostname=self._local_hostname, timeout=cfg.timeout
                )
            conn.ehlo_or_helo_if_needed()
            if cfg.starttls:
                if not conn.has_extn("starttls"):
                    raise ConfigError(f"{self.where} does not offer STARTTLS", "mail.smtp.starttls")
                conn.starttls(context=context)
                conn.ehlo()  # RFC 3207 §4.2: forget what was said before TLS
            if cfg.username:
                self._login(conn)
        except PtmError:
            _close_quietly(conn)
            raise
        except (smtplib.SMTPException, OSError) as exc:
            _close_quietly(conn)
            raise self._translate(exc) from None
        log.debug("connected to %s", self.where)
        return conn

    def _login(self, conn: smtplib.SMTP) -> None:
        cfg = self.config
        if cfg.password is None:
            raise ConfigError("a password is needed with username", "mail.smtp.password")
        password = cfg.password.reveal()
        try:
            conn.login(cfg.username, password)
        except smtplib.SMTPNotSupportedError:
            hint = "" if (cfg.starttls or cfg.ssl) else "; set starttls = true or ssl = true"
            raise MailAuthFailed(f"{self.where} offers no login (AUTH){hint}") from None
        except smtplib.SMTPAuthenticationError as exc:
            if 400 <= exc.smtp_code < 500:
                raise MailUnavailable(
                    f"{self.where}: login failed for now: {exc.smtp_code}"
                ) from None
            raise MailAuthFailed(
                f"{self.where} refused the login of {cfg.username!r}: "
                f"{exc.smtp_code} {_text(exc.smtp_error)}"
            ) from None
        except smtplib.SMTPException as exc:
            if isinstance(exc, smtplib.SMTPServerDisconnected):
                raise
            raise MailAuthFailed(f"{self.where}: cannot log in: {exc}") from None

    def _translate(self, exc: smtplib.SMTPException | OSError) -> PtmError:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return MailUnavailable(
                f"{self.where}: TLS certificate not trusted: {exc.verify_message}"
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            return MailUnavailable(f"{self.where}: {exc.smtp_code} {_text(exc.smtp_error)}")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            if _timed_out(exc):
                return self._no_answer()
            return MailUnavailable(f"{self.where} closed the connection")
        if isinstance(exc, OSError):
            return MailUnavailable(f"{self.where}: {_os_reason(exc)}")
        return MailUnavailable(f"{self.where}: {exc}")

    def _no_answer(self) -> MailUnavailable:
        return MailUnavailable(f"{self.where} did not answer within {self.config.timeout:g} s")


def _timed_out(exc: smtplib.SMTPServerDisconnected) -> bool:
    """smtplib reports a reply that never came as a closed connection ("Connection
    unexpectedly closed: timed out"): tell the two apart."""
    return isinstance(exc.__context__, TimeoutError) or "timed out" in str(exc)


def _wire_bytes(msg: EmailMessage | bytes) -> bytes:
    """The message as SMTP carries it: CRLF line ends (RFC 5321 §2.3.8), no Bcc."""
    if isinstance(msg, bytes):
        return _LINE_END.sub(b"\r\n", msg)
    if "Bcc" in msg or "Resent-Bcc" in msg:
        msg = copy.copy(msg)
        del msg["Bcc"]
        del msg["Resent-Bcc"]
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def _refusal(code: int, reply: bytes | str, what: str, where: str) -> PtmError:
    text = f"{where} refused the {what}: {code} {_text(reply)}"
    if 400 <= code < 500:
        return MailUnavailable(text)
    return MailRejected(text)


def _refused_recipients(refused: dict[str, tuple[int, bytes]], where: str) -> PtmError:
    listed = "; ".join(f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in refused.items())
    if any(code >= 500 for code, _ in refused.values()):
        return MailRejected(f"{where} refused recipients: {listed}")
    return MailUnavailable(f"{where} deferred recipients: {listed}")


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    return " ".join(reply.split())


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__


def _close_quietly(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        conn.close()


def check(config: SmtpConfig, *, tls_context: ssl.SSLContext | None = None) -> list[str]:
    """Problems with ``[mail.smtp]`` for ``ptm-sync check``: connect, EHLO, STARTTLS, login.

    No mail is sent.  Returns one line per problem; empty when all is well.
    """
    problems: list[str] = []
    # A login without TLS is a warning of `check` (ptm_sync.app.checks.cleartext_logins).
    sender = SmtpSender(config, tls_context=tls_context)
    try:
        sender.connect()
    except PtmError as exc:
        problems.append(f"mail.smtp: {exc}")
    finally:
        sender.close()
    return problems
