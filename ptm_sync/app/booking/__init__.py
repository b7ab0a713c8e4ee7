"""The applier (the one writer of meetings) and what it writes with, a concern a module.

``apply`` (:class:`~ptm_sync.app.booking.apply.Applier`: the only module that writes meetings,
their history and outbox rows), ``load`` (the store as the core's values), ``identity`` (a new
meeting's UID, ORGANIZER and video link), ``claims`` (a decision's claim on a slot),
``effects`` (the outbox rows a decision asks for), ``notification`` (the email when booking
opens) and ``waitlist`` (the waiting list, and a freed slot offered to it).
"""
