"""Mail transport: SMTP out (:mod:`.smtp`), IMAP in (:mod:`.imap`).

Both translate every server and socket failure into the errors of :mod:`ptm_sync.core.errors`:
``MailUnavailable`` (retryable), ``MailRejected``, ``MailAuthFailed`` (a ``UserError``).
"""

from __future__ import annotations

from ptm_sync.adapters.mail.imap import FetchedMessage, ImapReader
from ptm_sync.adapters.mail.smtp import SmtpSender

__all__ = ["FetchedMessage", "ImapReader", "SmtpSender"]
