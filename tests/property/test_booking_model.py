"""A model-based test of the booking life cycle (DESIGN §3; issue 7 item 10).

A Hypothesis state machine drives random sequences of what happens to a school's meetings
against the real store and booking core (a seeded school with a student who has two
guardians; :func:`ptm_sync.app.channels.replies.process`, :mod:`ptm_sync.app.channels.staff`,
:func:`ptm_sync.app.channels.teacher_calendar.follow`, the expiry job) — parents' replies (accept,
decline, tentative, by either guardian), Propose new time (Outlook's COUNTER, Gmail's reply
with a new time), REFRESH, requests to a booking address and the parent's own moves and
cancellations of them, staff bookings, moves and cancellations, the teacher dragging or
deleting our event (the mirror rows a sync writes), hold expiry, the same message delivered
twice, and crashes (the write transaction lost before or after its commit — the inbound
crash points made to raise — then the same message again, as the MTA retries) — and after
every step compares the database with a simple model written here:

* each step changes the meetings the way DESIGN §3 says (where the rule decides without
  the admission rule: replies, cancellations, expiry, duplicates, crashes), or, where the
  admission rule decides (counter, request, staff book and move, teacher move), either
  grants it as asked or changes nothing of the meeting;
* no slot is held twice: no two active meetings of one teacher overlap;
* each guardian's last iTIP message for a meeting says its state (REQUEST CONFIRMED,
  REQUEST TENTATIVE, CANCEL; for a parent's own booking, our REPLY ACCEPTED);
* the history explains the state: its entries chain (each from_state is the previous
  to_state) and the last to_state is the state; SEQUENCE never decreases.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from ptm_sync.adapters.store import (
    BusyTime,
    Calendar,
    CalendarEvent,
    Database,
    Guardian,
    Meeting,
    MeetingGuardian,
    MeetingHistory,
    Outbox,
    Teacher,
)
from ptm_sync.app import outbox
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.channels import replies as inbound
from ptm_sync.app.channels import staff
from ptm_sync.app.channels import teacher_calendar as teacher_changes
from ptm_sync.app.channels.replies import Outcome
from ptm_sync.app.services import expire_holds
from ptm_sync.core.booking.events import CalendarWritten
from ptm_sync.core.booking.notices import email_of
from ptm_sync.core.errors import BookingRefused, SlotTaken
from ptm_sync.core.model import Interval
from tests.support import model_stores
from tests.support.booking import (
    ADA,
    ALAN,
    BROWNS,
    CHRIS,
    FAMILIES,
    PAT,
    SAM,
    SeededSchool,
    calendar_of,
    refresh_message,
)
from tests.support.booking_address import booking_request
from tests.support.database import postgres_base_url

OPEN = ("proposed", "confirmed")
ALL = (*OPEN, "declined", "cancelled", "expired", "superseded")
SLOTS = 12  # the "spring" grid of the seeded school
#: (teacher, guardian) the roster links; Chris and Alex Brown are both Zoe's guardians.
PAIRS = [(ADA, PAT), (ALAN, PAT), (ADA, SAM), (ADA, CHRIS)]

CRASHES = st.sampled_from([None, None, "after-decide", "after-commit"])
Snapshot = dict[int, tuple[str, Any, int]]  # meeting id -> (state, start, sequence)


class Crash(OperationalError):
    """What a lost connection or a killed process does to the write: it never commits."""

    def __init__(self) -> None:
        super().__init__("injected crash", {}, Exception("the process died"))


@contextmanager
def crash_at(point: str) -> Iterator[None]:
    """Make the inbound pipeline's crash point ``point`` raise :class:`Crash` (in process:
    the real crash points end the process, which a test cannot survive)."""
    original = inbound.crash_point

    def crash(name: str) -> None:
        if name == point:
            raise Crash()

    inbound.crash_point = crash  # type: ignore[assignment]
    try:
        yield
    finally:
        inbound.crash_point = original  # type: ignore[assignment]


class BookingModel(RuleBasedStateMachine):
    """One seeded school per example; ``database`` makes (and ``drop`` removes) its store."""

    database: Callable[[], tuple[str, Callable[[], None]]]

    def __init__(self) -> None:
        super().__init__()
        url, self.drop = self.database()
        self.db = Database(url)
        self.db.migrate()
        self.school = SeededSchool.create(self.db, families=FAMILIES + BROWNS)
        self.at = timedelta(minutes=1)  # the clock: the school's now + at
        self.delivered: list[bytes] = []  # messages delivered, for duplicates
        self.sequences: dict[int, int] = {}
        self.etags = 0
        self.bookings: list[tuple[str, str, str]] = []  # parents' own: (UID, guardian, teacher)
        self.sequence_of: dict[str, int] = {}
        self.read: dict[int, Any] = {}  # outbox email rows read: (method, event, to) or None

    def teardown(self) -> None:
        self.db.dispose()
        self.drop()

    # --- reading the store ------------------------------------------------------------------

    @property
    def now(self) -> Any:
        return self.school.now + self.at

    def snapshot(self) -> Snapshot:
        with self.db.read() as session:
            return {
                m.id: (m.state, m.start, m.sequence)
                for m in session.scalars(select(Meeting).order_by(Meeting.id))
            }

    def meetings(self, states: tuple[str, ...] = OPEN) -> list[int]:
        return [i for i, (state, _, _) in self.snapshot().items() if state in states]

    def tick(self) -> None:
        self.at += timedelta(minutes=3)

    def deliver(self, raw: bytes) -> Outcome:
        self.tick()
        outcome = inbound.process(
            self.db, self.school.config, raw, now=self.now, video=self.school.video
        )
        self.delivered.append(raw)
        return outcome

    def deliver_through(self, raw: bytes, crash: str | None, before: Snapshot) -> Outcome:
        """Deliver ``raw``; with ``crash``, first a delivery that dies at that crash point
        (rolled back before the commit, or lost after it), then the MTA's retry."""
        first: Outcome | None = None
        if crash is not None:
            try:
                with crash_at(crash):
                    first = self.deliver(raw)
            except Crash:
                if crash == "after-decide":
                    self.check_only(before, {}, set())  # rolled back: nothing at all
            else:
                # Only a message that ends in quarantine is never decided.
                assert crash == "after-decide" and first.outcome == "quarantined", first
        outcome = self.deliver(raw)
        if crash == "after-commit" or first is not None:
            assert outcome.outcome == "duplicate"  # kept once; the retry changes nothing
        return outcome

    def check_only(self, before: Snapshot, changed: dict[int, set[str]], new: set[str]) -> None:
        """Meetings not named in ``changed`` are as ``before``; a named one ends in one of
        its states (or as it was: "same"); meetings that are new are in a state of ``new``."""
        after = self.snapshot()
        for mid, was in before.items():
            allowed = changed.get(mid)
            if allowed is None:
                assert after[mid] == was, f"meeting {mid} changed: {was} -> {after[mid]}"
            else:
                assert after[mid] == was or after[mid][0] in allowed, (mid, was, after[mid])
        born = {mid: after[mid] for mid in after.keys() - before.keys()}
        assert all(state in new for state, _, _ in born.values()), born

    # --- set-up -------------------------------------------------------------------------------

    @initialize(
        slots=st.lists(
            st.integers(0, SLOTS - 1), min_size=len(PAIRS), max_size=len(PAIRS), unique=True
        )
    )
    def offer(self, slots: list[int]) -> None:
        """Booking opens: one proposal per (teacher, guardian) need, where the slot allows."""
        for (teacher, guardian), slot in zip(PAIRS, slots, strict=True):
            # Too close to the family's other meeting: not proposed.
            with suppress(BookingRefused, SlotTaken):
                self.school.propose(teacher, guardian, slot=slot, now=self.now)

    # --- the parents ------------------------------------------------------------------------

    @precondition(lambda self: bool(self.our_meetings()))
    @rule(
        data=st.data(),
        partstat=st.sampled_from(["ACCEPTED", "DECLINED", "TENTATIVE"]),
        client=st.sampled_from(["outlook", "gmail", "apple", "thunderbird"]),
        crash=CRASHES,
    )
    def reply(self, data: st.DataObject, partstat: str, client: str, crash: str | None) -> None:
        mid = data.draw(st.sampled_from(self.our_meetings()))
        guardians = self.guardians_of(mid)
        by = data.draw(st.sampled_from(guardians))
        before = self.snapshot()
        state = before[mid][0]
        raw = self.school.reply(mid, partstat, client=client, at=self.at, by=by)
        outcome = self.deliver_through(raw, crash, before)
        hold = self.school.meeting(mid).hold_until
        expect: set[str] = {state}
        if partstat == "ACCEPTED" and state == "proposed":
            expect = {"expired"} if hold is not None and self.now >= hold else {"confirmed"}
        elif partstat == "DECLINED" and state in OPEN:
            expect = {"declined" if state == "proposed" else "cancelled"}
            if len(guardians) > 1:
                expect.add(state)  # the other guardian may still attend (decline-recorded)
        after = self.snapshot()
        assert after[mid][0] in expect, (partstat, state, after[mid], outcome)
        freed = state in OPEN and after[mid][0] not in OPEN
        self.check_only(before, {mid: expect}, {"proposed"} if freed else set())

    @precondition(lambda self: bool(self.our_meetings(OPEN)))
    @rule(
        data=st.data(),
        slot=st.integers(0, SLOTS - 1),
        client=st.sampled_from(["outlook", "gmail"]),
        crash=CRASHES,
    )
    def counter(self, data: st.DataObject, slot: int, client: str, crash: str | None) -> None:
        """Propose new time: confirmed at that time, or nothing changes (DECLINECOUNTER)."""
        mid = data.draw(st.sampled_from(self.our_meetings(OPEN)))
        before = self.snapshot()
        by = data.draw(st.sampled_from(self.guardians_of(mid)))
        raw = self.school.counter(mid, slot=slot, client=client, at=self.at, by=by)
        self.deliver_through(raw, crash, before)
        after = self.snapshot()
        if after[mid] != before[mid]:
            assert after[mid][:2] == ("confirmed", self.school.slot(slot).start), after[mid]
        self.check_only(before, {mid: {"confirmed"}}, {"proposed"})

    @rule(pair=st.sampled_from(PAIRS), slot=st.integers(0, SLOTS - 1), crash=CRASHES)
    def request(self, pair: tuple[str, str], slot: int, crash: str | None) -> None:
        """A request to the teacher's booking address: booked (the family's unanswered
        proposal for that teacher superseded), or declined and nothing booked."""
        teacher, guardian = pair
        before = self.snapshot()
        mine = self.of(guardian, teacher, ("proposed",))
        uid = f"{len(self.bookings):04d}model{len(before):04d}@google.com"
        raw = booking_request(self.school, guardian, teacher, slot=slot, at=self.at, uid=uid)
        self.deliver_through(raw, crash, before)
        self.bookings.append((uid, guardian, teacher))
        self.check_only(before, {m: {"superseded"} for m in mine}, {"confirmed", "proposed"})

    @precondition(lambda self: bool(self.bookings))
    @rule(data=st.data(), slot=st.one_of(st.none(), st.integers(0, SLOTS - 1)))
    def request_again(self, data: st.DataObject, slot: int | None) -> None:
        """The parent moves their own booking to ``slot`` (SEQUENCE + 1) or cancels it
        (None): moved or cancelled when it is booked, else nothing changes."""
        uid, guardian, teacher = data.draw(st.sampled_from(self.bookings))
        with self.db.read() as session:
            found = session.execute(
                select(Meeting.id, Meeting.start).where(Meeting.uid == uid)
            ).one_or_none()
        if found is None:
            return  # declined when asked: there is nothing to change
        mid, start = found
        self.sequence_of[uid] = self.sequence_of.get(uid, 0) + 1
        when = self.school.slot(slot) if slot is not None else None
        raw = booking_request(
            self.school,
            guardian,
            teacher,
            slot=when or Interval(start, start + timedelta(minutes=15)),
            at=self.at,
            uid=uid,
            sequence=self.sequence_of[uid],
            method="REQUEST" if slot is not None else "CANCEL",
        )
        before = self.snapshot()
        self.deliver(raw)
        after = self.snapshot()
        if before[mid][0] != "confirmed":
            self.check_only(before, {}, set())
        elif slot is None:
            assert after[mid][0] == "cancelled", after[mid]
            self.check_only(before, {mid: {"cancelled"}}, {"proposed"})
        else:
            assert after[mid][0] == "confirmed" and after[mid][1] in (start, when.start)
            self.check_only(before, {mid: {"confirmed"}}, {"proposed"})

    @precondition(lambda self: bool(self.our_meetings(ALL)))
    @rule(data=st.data())
    def refresh(self, data: st.DataObject) -> None:
        """REFRESH: the current version again, to the one who asked; nothing changes."""
        mid = data.draw(st.sampled_from(self.our_meetings(ALL)))
        before = self.snapshot()
        self.tick()
        guardian = data.draw(st.sampled_from(self.guardians_of(mid)))
        self.deliver(refresh_message(self.school.meeting(mid), guardian, now=self.now))
        self.check_only(before, {}, set())

    # --- staff --------------------------------------------------------------------------------

    @rule(pair=st.sampled_from(PAIRS), slot=st.integers(0, SLOTS - 1))
    def staff_book(self, pair: tuple[str, str], slot: int) -> None:
        teacher, guardian = pair
        before = self.snapshot()
        mine = self.of(guardian, teacher, ("proposed",))
        self.tick()
        try:
            staff.book(
                self.db,
                self.school.config,
                guardian=guardian,
                teacher=teacher,
                start=self.school.slot(slot).start,
                now=self.now,
                video=self.school.video,
            )
        except BookingRefused:
            self.check_only(before, {}, set())
            return
        self.check_only(before, {m: {"superseded"} for m in mine}, {"confirmed"})

    @precondition(lambda self: bool(self.our_meetings(OPEN)))
    @rule(data=st.data(), slot=st.integers(0, SLOTS - 1))
    def staff_reschedule(self, data: st.DataObject, slot: int) -> None:
        mid = data.draw(st.sampled_from(self.our_meetings(OPEN)))
        before = self.snapshot()
        self.tick()
        try:
            staff.reschedule(
                self.db,
                self.school.config,
                mid,
                self.school.slot(slot).start,
                now=self.now,
                video=self.school.video,
            )
        except BookingRefused:
            self.check_only(before, {}, set())
            return
        after = self.snapshot()
        assert after[mid][0] == before[mid][0] and after[mid][1] == self.school.slot(slot).start
        assert after[mid][2] == before[mid][2] + 1
        self.check_only(before, {mid: {before[mid][0]}}, {"proposed"})

    @precondition(lambda self: bool(self.snapshot()))
    @rule(data=st.data())
    def staff_cancel(self, data: st.DataObject) -> None:
        mid = data.draw(st.sampled_from(sorted(self.snapshot())))
        before = self.snapshot()
        self.tick()
        try:
            staff.cancel(self.db, self.school.config, mid, now=self.now, video=self.school.video)
        except BookingRefused:
            assert before[mid][0] not in OPEN, "an open meeting must be cancellable"
            self.check_only(before, {}, set())
            return
        assert before[mid][0] in OPEN and self.snapshot()[mid][0] == "cancelled"
        self.check_only(before, {mid: {"cancelled"}}, {"proposed"})

    # --- the teacher's calendar, the clock, the mail server -------------------------------

    @precondition(lambda self: bool(self.meetings(("confirmed",))))
    @rule(data=st.data(), slot=st.one_of(st.none(), st.integers(0, SLOTS - 1)))
    def teacher_changes(self, data: st.DataObject, slot: int | None) -> None:
        """The teacher drags our event to ``slot`` (None: deletes it); a sync's mirror rows
        are written as sync would, and :func:`ptm_sync.app.channels.teacher_calendar.follow`
        decides."""
        mid = data.draw(st.sampled_from(self.meetings(("confirmed",))))
        self.teacher_change(mid, slot)

    def teacher_change(self, mid: int, slot: int | None) -> None:
        before = self.snapshot()
        teacher_id = self.written_and_changed(mid, slot)
        self.tick()
        teacher_changes.follow(
            self.db, self.school.config, teacher_id, now=self.now, video=self.school.video
        )
        self.forget_mirror(teacher_id)
        after = self.snapshot()
        if slot is None:
            assert after[mid][0] == "cancelled"
        elif self.held_by_another(mid, slot):
            # Onto a time another meeting holds: nothing moves (the log tells; DESIGN §3).
            assert after[mid] == before[mid]
        elif after[mid] != before[mid]:
            assert after[mid][:2] == ("confirmed", self.school.slot(slot).start)
        self.check_only(before, {mid: {"confirmed", "cancelled"}}, {"proposed"})

    @rule(hours=st.sampled_from([1, 24, 49]))
    def expire(self, hours: int) -> None:
        """Time passes and the expiry job runs: exactly the proposals past their hold end."""
        self.at += timedelta(hours=hours)
        before = self.snapshot()
        with self.db.read() as session:
            due = set(
                session.scalars(
                    select(Meeting.id).where(
                        Meeting.state == "proposed", Meeting.hold_until <= self.now
                    )
                )
            )
        expire_holds(self.db, self.school.config, now=self.now, video=self.school.video)
        assert {m for m in due if self.snapshot()[m][0] == "expired"} == due
        self.check_only(before, {m: {"expired"} for m in due}, {"proposed"})

    @precondition(lambda self: bool(self.delivered))
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        """The same message again (the MTA or IMAP repeats it): processed once."""
        raw = data.draw(st.sampled_from(self.delivered))
        before = self.snapshot()
        assert self.deliver(raw).outcome == "duplicate"
        self.check_only(before, {}, set())

    # --- the invariants -----------------------------------------------------------------------

    @invariant()
    def no_slot_held_twice(self) -> None:
        with self.db.read() as session:
            active = session.execute(
                select(Meeting.teacher_id, Meeting.start, Meeting.end, Meeting.id).where(
                    Meeting.state.in_(OPEN)
                )
            ).all()
        for a in active:
            for b in active:
                if a.id < b.id and a.teacher_id == b.teacher_id:
                    assert a.end <= b.start or b.end <= a.start, f"{a.id} and {b.id} overlap"

    @invariant()
    def history_explains_the_state_and_sequence_never_drops(self) -> None:
        with self.db.read() as session:
            meetings = list(session.scalars(select(Meeting)))
            history = list(session.scalars(select(MeetingHistory).order_by(MeetingHistory.id)))
        for m in meetings:
            mine = [h for h in history if h.meeting_id == m.id]
            assert mine and mine[0].from_state is None, f"meeting {m.id}: no first entry"
            for earlier, later in itertools.pairwise(mine):
                assert later.from_state == earlier.to_state, f"meeting {m.id}: history broken"
            assert mine[-1].to_state == m.state, f"meeting {m.id}: {mine[-1].to_state} {m.state}"
            assert m.sequence >= self.sequences.get(m.id, 0), f"meeting {m.id}: SEQUENCE dropped"
            self.sequences[m.id] = m.sequence

    @invariant()
    def each_guardians_last_message_says_the_state(self) -> None:
        last: dict[tuple[str, str], Any] = {}
        with self.db.read() as session:
            rows = session.execute(
                select(Outbox.id, Outbox.payload)
                .where(Outbox.kind == outbox.EMAIL, Outbox.id.not_in(list(self.read)))
                .order_by(Outbox.id)
            ).all()
        for row_id, payload in rows:
            raw = email_of(json.loads(payload))
            cal = calendar_of(raw)
            method = str(cal["METHOD"]) if cal is not None else None
            if cal is not None and method in ("REQUEST", "CANCEL", "REPLY"):
                self.read[row_id] = (method, cal.events[0], json.loads(payload)["to"][0])
            else:
                self.read[row_id] = None
        accepted: dict[tuple[str, str], Any] = {}  # our last REPLY ACCEPTED to a parent
        for row_id in sorted(self.read):
            found = self.read[row_id]
            if found is not None:
                method, event, to = found
                last[(str(event["UID"]), to)] = (method, event)
                if method == "REPLY" and "PARTSTAT=ACCEPTED" in event.to_ical().decode():
                    accepted[(str(event["UID"]), to)] = event
        with self.db.read() as session:
            meetings = list(session.scalars(select(Meeting)))
            for m in meetings:
                parent = m.origin == "booking_address"
                for link in m.guardians:
                    seen = last.get((m.uid, m.organizer if parent else link.guardian.email))
                    assert seen is not None, f"meeting {m.id}: its guardian never heard of it"
                    method, event = seen
                    if parent:
                        # The parent organizes: our last acceptance names the booked time
                        # (a refused move is a REPLY DECLINED to the time asked for).
                        if m.state == "confirmed":
                            booked = accepted.get((m.uid, m.organizer))
                            assert booked is not None and booked.start == m.start, m.id
                        continue
                    status = str(event.get("STATUS", ""))
                    if m.state in OPEN:
                        want = "CONFIRMED" if m.state == "confirmed" else "TENTATIVE"
                        assert (method, status) == ("REQUEST", want), (m.id, m.state, method)
                        assert event.start == m.start and int(event["SEQUENCE"]) == m.sequence
                    else:
                        assert method == "CANCEL", (m.id, m.state, method)

    # --- helpers ------------------------------------------------------------------------------

    def our_meetings(self, states: tuple[str, ...] = (*OPEN, "declined", "cancelled")) -> list[int]:
        """Meetings we organise (their guardians got our REQUEST) in ``states``."""
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(Meeting.id)
                    .where(Meeting.state.in_(states), Meeting.origin != "booking_address")
                    .order_by(Meeting.id)
                )
            )

    def guardians_of(self, mid: int) -> list[str]:
        """The emails of meeting ``mid``'s guardians (its parties), in order."""
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(Guardian.email)
                    .join(MeetingGuardian, MeetingGuardian.guardian_id == Guardian.id)
                    .where(MeetingGuardian.meeting_id == mid)
                    .order_by(Guardian.email)
                )
            )

    def held_by_another(self, mid: int, slot: int) -> bool:
        """Whether another active meeting of ``mid``'s teacher overlaps ``slot``."""
        when = self.school.slot(slot)
        with self.db.read() as session:
            teacher = session.scalar(select(Meeting.teacher_id).where(Meeting.id == mid))
            return bool(
                session.scalars(
                    select(Meeting.id).where(
                        Meeting.teacher_id == teacher,
                        Meeting.id != mid,
                        Meeting.state.in_(OPEN),
                        Meeting.start < when.end,
                        Meeting.end > when.start,
                    )
                ).first()
            )

    def of(self, guardian: str, teacher: str, states: tuple[str, ...]) -> list[int]:
        with self.db.read() as session:
            return list(
                session.scalars(
                    select(Meeting.id)
                    .join(Teacher, Teacher.id == Meeting.teacher_id)
                    .join(Guardian, Guardian.id == Meeting.guardian_id)
                    .where(
                        Teacher.email == teacher,
                        Guardian.email == guardian,
                        Meeting.state.in_(states),
                    )
                )
            )

    def written_and_changed(self, mid: int, slot: int | None) -> int:
        """Deliver meeting ``mid``'s calendar writes (as the outbox would), then write the
        mirror a sync would: our events as we wrote them, ``mid``'s moved or gone."""
        self.etags += 1
        with self.db.write() as session:
            meeting = session.get(Meeting, mid)
            assert meeting is not None
            session.execute(
                update(Outbox)
                .where(Outbox.meeting_id == mid, Outbox.kind == outbox.CALENDAR)
                .values(state=outbox.DONE)
            )
            written = CalendarWritten(href=f"/cal/{meeting.uid}.ics", etag=f"ours-{self.etags}")
            Applier(self.school.config, now=self.now, video=self.school.video).handle(
                session, meeting, written
            )
            calendar = session.scalars(
                select(Calendar).where(Calendar.teacher_id == meeting.teacher_id)
            ).one()
            ours = session.scalars(
                select(Meeting).where(
                    Meeting.teacher_id == meeting.teacher_id,
                    Meeting.state == "confirmed",
                    Meeting.remote_href.is_not(None),
                )
            ).all()
            for m in ours:
                if m.id == mid and slot is None:
                    continue  # deleted by the teacher
                event = CalendarEvent(
                    calendar_id=calendar.id,
                    href=m.remote_href or "",
                    etag=m.remote_etag if m.id != mid else f"teacher-{self.etags}",
                    uid=m.uid,
                    ics="",
                )
                session.add(event)
                if m.id == mid and slot is not None:
                    when = self.school.slot(slot)
                    session.flush()
                    session.add(
                        BusyTime(
                            event_id=event.id,
                            teacher_id=m.teacher_id,
                            start=when.start,
                            end=when.end,
                        )
                    )
            return meeting.teacher_id

    def forget_mirror(self, teacher_id: int) -> None:
        """The mirror rows go again: the model keeps no busy times of its own."""
        with self.db.write() as session:
            for calendar in session.scalars(
                select(Calendar).where(Calendar.teacher_id == teacher_id)
            ):
                for event in session.scalars(
                    select(CalendarEvent).where(CalendarEvent.calendar_id == calendar.id)
                ):
                    session.delete(event)


sqlite_store = model_stores.sqlite_store("ptm-model-")
postgres_store = model_stores.postgres_store("m_")


def run(store: model_stores.StoreMaker, examples: int, steps: int) -> None:
    model_stores.run_model(BookingModel, store, examples, steps)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_teacher_move_onto_a_held_time_changes_nothing(store: str) -> None:
    """The model's first failing example, shrunk: Ada has Sam's proposal at slot 0 and,
    booked by staff, Pat's meeting at slot 1; she drags Pat's event onto slot 0.

    The move used to raise IntegrityError (loading the meeting's guardians autoflushed the
    new time before the write could turn the database's refusal into SlotTaken), so the
    teacher's sync failed; now it is refused and nothing changes."""
    if store == "postgresql":
        postgres_base_url()  # skips (or fails in CI) without PostgreSQL
    maker = sqlite_store if store == "sqlite" else postgres_store
    model = type("Model", (BookingModel,), {"database": staticmethod(maker)})()
    try:
        model.offer(slots=[11, 5, 0, 8])
        model.staff_book(pair=(ADA, PAT), slot=1)
        pats = [m for m in model.of(PAT, ADA, ("confirmed",))]
        assert len(pats) == 1 and model.held_by_another(pats[0], 0)
        before = model.snapshot()
        model.teacher_change(pats[0], 0)
        assert model.snapshot() == before
    finally:
        model.teardown()


def test_the_booking_life_cycle_follows_the_model_on_sqlite() -> None:
    run(sqlite_store, examples=40, steps=25)


@pytest.mark.postgres
def test_the_booking_life_cycle_follows_the_model_on_postgresql() -> None:
    postgres_base_url()  # skips (or fails in CI) without PostgreSQL
    run(postgres_store, examples=8, steps=15)
