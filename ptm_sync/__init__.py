"""ptm-sync: parent-teacher conferences through the calendars and inboxes people already use."""

__version__ = "0.1.0"
