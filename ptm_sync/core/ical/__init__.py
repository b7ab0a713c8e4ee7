"""iCalendar (RFC 5545) and iTIP (RFC 5546): one parser, text, busy time, scheduling methods."""
