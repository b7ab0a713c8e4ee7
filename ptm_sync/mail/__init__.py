"""Mail transport: SMTP out (:mod:`.smtp`), IMAP in (:mod:`.imap`).

Both translate every server and socket failure into the errors of :mod:`ptm_sync.errors`:
``MailUnavailable`` (retryable), ``MailRejected``, ``MailAuthFailed`` (a ``UserError``).
"""

from __future__ import annotations

from ptm_sync.mail.imap import FetchedMessage, ImapReader
from ptm_sync.mail.smtp import SmtpSender

__all__ = ["FetchedMessage", "ImapReader", "SmtpSender"]
