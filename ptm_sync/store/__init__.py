"""Persistence: tables, sessions and migrations (SQLite by default, PostgreSQL)."""

from ptm_sync.store.db import Database
from ptm_sync.store.tables import (
    Base,
    BusyTime,
    Calendar,
    CalendarEvent,
    Guardian,
    Inbound,
    Link,
    Meeting,
    MeetingGuardian,
    MeetingHistory,
    MeetingStudent,
    Outbox,
    Period,
    Setting,
    Student,
    Teacher,
    WaitlistEntry,
)

__all__ = [
    "Base",
    "BusyTime",
    "Calendar",
    "CalendarEvent",
    "Database",
    "Guardian",
    "Inbound",
    "Link",
    "Meeting",
    "MeetingGuardian",
    "MeetingHistory",
    "MeetingStudent",
    "Outbox",
    "Period",
    "Setting",
    "Student",
    "Teacher",
    "WaitlistEntry",
]
