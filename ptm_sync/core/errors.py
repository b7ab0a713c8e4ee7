"""The one exception hierarchy of ptm-sync.

Everything the program raises on purpose derives from :class:`PtmError`.  Two flags decide
what happens next, each in one ``isinstance`` or attribute check:

* :class:`UserError` — something the user can fix (config, roster, arguments).  The command
  line prints the message on one line, without a traceback, and exits with code 1.
* ``retryable`` — a transient failure (server down, throttled).  The outbox and the daemon
  try again later, honouring ``retry_after`` when the far side named a delay.

Connector errors are translated where they arise: nothing above ``connectors/`` sees an
HTTP or SDK exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class PtmError(Exception):
    """Base of every error ptm-sync raises on purpose."""

    retryable: bool = False
    retry_after: float | None = None


class UserError(PtmError):
    """Raised for a problem the user can fix; printed as one line, exit code 1."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake in the configuration: what is wrong, the dotted key (``mail.smtp.port``)
    and the 1-based line of the file it is written on, when known."""

    message: str
    key: str | None = None
    line: int | None = None

    def text(self, path: str | None = None) -> str:
        """``path:line: key: message``, leaving out what is not known."""
        where = path or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        head = f"{where}: " if where else ""
        what = f"{self.key}: " if self.key else ""
        return f"{head}{what}{self.message}"


class ConfigError(UserError):
    """Raised when the configuration file is missing, malformed or invalid.

    ``problems`` holds every mistake found (the loader reports them all at once, each with
    its line, DESIGN §7); a single problem can be given as ``message`` and ``key`` (a dotted
    path such as ``mail.smtp.port``).  ``key`` is the first problem's key.  The text is one
    ``path:line: key: message`` line, or a count followed by one such line per problem.
    """

    def __init__(
        self,
        message: str = "",
        key: str | None = None,
        path: str | None = None,
        *,
        problems: Sequence[ConfigProblem] = (),
    ) -> None:
        self.problems = list(problems) or [ConfigProblem(message, key)]
        self.key = self.problems[0].key
        self.path = path
        lines = [p.text(path) for p in self.problems]
        if len(lines) > 1:
            lines.insert(0, f"{path or 'configuration'}: {len(lines)} problems; nothing was done")
        super().__init__("\n".join(lines))


class RosterError(UserError):
    """Raised when a roster import finds bad rows; nothing was imported.

    ``problems`` holds one ``file:line: reason`` string per bad row.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        head = f"roster not imported: {count} problem{'s' if count != 1 else ''}"
        super().__init__(head + "\n" + "\n".join(problems))


class NotFoundError(UserError):
    """Raised when a command names a period, teacher, guardian or meeting that does not exist."""


class StoreError(PtmError):
    """Raised when the database cannot be opened or migrated."""


class SlotTaken(PtmError):
    """Raised when a booking loses the race for a slot: another active meeting holds it."""


class BookingRefused(UserError):
    """Raised when a requested booking breaks a rule (outside the period, off the grid, closed)."""


# --- connectors -----------------------------------------------------------------------


class CalendarProblem(StrEnum):
    """What is wrong with one teacher's calendar, as ``/healthz`` and the metrics count it
    per account (DESIGN §5): never a teacher's address, only the kind."""

    #: The calendar (mailbox, collection, calendar id) does not exist or cannot be seen.
    NOT_FOUND = "not_found"
    #: The calendar exists but shares no free/busy with the account (not retryable).
    ACCESS_DENIED = "access_denied"
    #: The server answered without data for some of the time asked (EWS ``NoData``, a
    #: ``None`` view, Graph ``unknown``, Google without ``busy``): no slot is offered there.
    NO_DATA = "no_data"
    #: The account's credentials were refused (account-wide).
    AUTH = "auth"
    #: The server or this calendar's part of it failed now; retried (retryable).
    UNAVAILABLE = "unavailable"
    #: Any other failure: an answer that cannot be read, a feature the server lacks.
    FAILED = "failed"


class ConnectorError(PtmError):
    """Base of the errors a calendar connector raises.

    ``problem`` is the kind ``/healthz`` and the metrics count it as (:class:`CalendarProblem`).
    """

    problem: ClassVar[CalendarProblem] = CalendarProblem.FAILED


def problem_of(error: PtmError) -> CalendarProblem:
    """The kind a calendar read's failure is counted as: a connector error's ``problem``,
    :attr:`CalendarProblem.FAILED` for anything else (a missing extra, bad data)."""
    return error.problem if isinstance(error, ConnectorError) else CalendarProblem.FAILED


class AuthFailed(ConnectorError, UserError):
    """Raised when a calendar server refuses our credentials (HTTP 401/403, bad token).

    Always account-wide: its message names the account and the server, never a teacher's
    calendar, and says what the server wants (a password, an OAuth token, Windows sign-in),
    read from its ``WWW-Authenticate`` challenge where it sends one
    (:mod:`connectors.challenge`)."""

    problem = CalendarProblem.AUTH


class Unavailable(ConnectorError):
    """Raised when a server is down, times out or throttles us; try again later.

    Also given for one calendar alone in a free/busy answer (a mailbox behind a failing
    proxy, Google ``internalError``): that calendar is asked again, batched, once per pass.
    ``retry_after``: seconds the server named, or None.
    """

    problem = CalendarProblem.UNAVAILABLE
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WrongEtag(ConnectorError):
    """Raised when a conditional write fails (HTTP 412): the event changed on the server."""


class NotFound(ConnectorError):
    """Raised when a calendar or an event does not exist on the server."""

    problem = CalendarProblem.NOT_FOUND


class AccessDenied(ConnectorError):
    """Given (in a free/busy answer) or raised when a calendar exists but shares no
    free/busy with the account: Graph ``ErrorNoFreeBusyAccess``, EWS
    ``ErrorNoFreeBusyAccess``, CalDAV 403 on the collection (Google says ``notFound`` for
    a calendar it will not show: that is :class:`NotFound`).  Not retryable: the teacher or
    the administrator must share the calendar."""

    problem = CalendarProblem.ACCESS_DENIED


class SyncTokenInvalid(ConnectorError):
    """Raised when the server no longer accepts our sync token; do a full resync."""


class Unsupported(ConnectorError):
    """Raised when a server lacks a feature we asked for."""


# --- calendar data --------------------------------------------------------------------


class BadCalendarData(PtmError):
    """Raised when an iCalendar object cannot be parsed or expanded.

    One bad object must never stop a whole teacher's sync: the caller catches this, records
    the object (``href`` when known) and carries on with the others.
    """

    def __init__(self, message: str, href: str | None = None) -> None:
        self.href = href
        super().__init__(f"{href}: {message}" if href else message)


# --- mail -----------------------------------------------------------------------------


class MailError(PtmError):
    """Raised when sending or fetching mail fails."""


class MailUnavailable(MailError):
    """Raised when the mail server is unreachable or answers with a temporary failure."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MailRejected(MailError):
    """Raised when the mail server rejects a message permanently (5xx)."""


class MailAuthFailed(MailError, UserError):
    """Raised when the SMTP or IMAP server refuses our login; fix the credentials."""


class QuarantineReason(StrEnum):
    """Why an inbound message went to quarantine (DESIGN §7 ``quarantine``: the reasons the
    README lists; ``ptm-sync quarantine`` explains each).  An answer to a meeting that is
    no longer open is quarantined as ``meeting-<state>`` (e.g. ``meeting-cancelled``),
    which is built from the state and so is no member here."""

    ATTENDEE_NOT_INVITED = "attendee-not-invited"
    AUTHENTICATION_FAILED = "authentication-failed"
    AUTO_REPLY = "auto-reply"
    BOOKING_ADDRESS_MANUAL = "booking-address-manual"
    BOUNCE = "bounce"
    BROKEN_ICALENDAR = "broken-icalendar"
    COUNTER_WITHOUT_TIME = "counter-without-time"
    INTERNAL_ERROR = "internal-error"
    LINE_TOO_LONG = "line-too-long"
    MULTIPLE_UIDS = "multiple-uids"
    NO_CALENDAR_PART = "no-calendar-part"
    NO_METHOD = "no-method"
    NO_ORGANIZER = "no-organizer"
    NO_UID = "no-uid"
    NO_VEVENT = "no-vevent"
    NOT_AN_EMAIL = "not-an-email"
    NOT_FOR_A_BOOKING_ADDRESS = "not-for-a-booking-address"
    READ_RECEIPT = "read-receipt"
    RECURRENCE_TOO_LARGE = "recurrence-too-large"
    REQUEST_WITHOUT_TIME = "request-without-time"
    SENDER_NOT_ATTENDEE = "sender-not-attendee"
    SENDER_NOT_ORGANIZER = "sender-not-organizer"
    STRANGER = "stranger"
    TOO_DEEP = "too-deep"
    TOO_LARGE = "too-large"
    TOO_MANY_COMPONENTS = "too-many-components"
    TOO_MANY_PARTS = "too-many-parts"
    TOO_MANY_PROPERTIES = "too-many-properties"
    UID_CONFLICT = "uid-conflict"
    UID_TOO_LONG = "uid-too-long"
    UNKNOWN_UID = "unknown-uid"
    UNSTORABLE = "unstorable"
    UNSUPPORTED_METHOD = "unsupported-method"
    UNSUPPORTED_PARTSTAT = "unsupported-partstat"
    WRONG_TOKEN = "wrong-token"


class Unusable(PtmError):
    """Raised when an inbound message cannot be used; it goes to quarantine with ``reason``."""

    def __init__(self, reason: QuarantineReason | str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class UnreadableCalendar(Unusable, BadCalendarData):
    """Raised when iCalendar data cannot be parsed at all (``ptm_sync.core.ical.parse``).

    One parser serves inbound mail and calendar sync, so its error is both: an
    :class:`Unusable` with reason ``broken-icalendar`` (the message goes to quarantine) and a
    :class:`BadCalendarData` (the sync records the object and carries on).  Callers keep
    catching the class they always caught.
    """

    def __init__(self, detail: str) -> None:
        super().__init__("broken-icalendar", detail)
