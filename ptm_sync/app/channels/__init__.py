"""Where events come from: replies, booking addresses, staff, offers, teachers' calendars."""
