"""The booking core: every rule of a meeting's life, in one package (DESIGN §3).

* :mod:`~ptm_sync.core.booking.values` and :mod:`~ptm_sync.core.booking.events` — the meeting, the
  period's rules, the events of every channel and the decision, as frozen values;
* :mod:`~ptm_sync.core.booking.table` — the transition table (state × event → state, SEQUENCE,
  messages, calendar action), to read next to DESIGN §3;
* :mod:`~ptm_sync.core.booking.decide` — ``decide(meeting, event, context) -> Decision``, which
  hands each event to the rules of its channel: :mod:`~ptm_sync.core.booking.answers` (the
  parents' REPLY, COUNTER, REFRESH), :mod:`~ptm_sync.core.booking.requests` (booking
  addresses), :mod:`~ptm_sync.core.booking.office` (offers and staff),
  :mod:`~ptm_sync.core.booking.lifecycle` (deadlines, the teacher's calendar), all building
  their decisions from a row with :mod:`~ptm_sync.core.booking.rows`;
* :mod:`~ptm_sync.core.booking.admission` — "may this party have this time?", for every channel;
* :mod:`~ptm_sync.core.booking.letters` — a decision's messages as letters (stored in the
  outbox), and :mod:`~ptm_sync.core.booking.notices`, which renders a letter as the email;
* :mod:`~ptm_sync.core.booking.addresses` — teachers' booking addresses;
* :mod:`~ptm_sync.app.booking.load` — the store's rows as the core's values (reads only);
* :mod:`~ptm_sync.app.booking.apply` — the one writer of meetings, their history and outbox rows,
  with :mod:`~ptm_sync.app.booking.waitlist` for the waiting list's rows.

All but the last three are PURE: they import no store, mail, connector, socket or clock (a test
checks).  Only ``load``, ``apply`` and ``waitlist`` touch the database, and only ``apply``
writes meetings, their history and outbox rows.
"""
