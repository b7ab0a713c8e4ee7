"""ImapReader against a private Dovecot: batched fetch without marking, batched marks after
commit, reconnects that lose nothing, UIDVALIDITY, IDLE with renewal and a stop event.

Round trips are counted by :class:`~tests.support.imap_relay.ImapRelay`, which also cuts
connections the way a crashed server process would (no BYE); ``kick()`` is Dovecot ending a
session itself (with BYE).  Nothing here measures time: waits are bounded by pytest-timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from ptm_sync.adapters.mail import imap
from ptm_sync.adapters.mail.backoff import Backoff
from ptm_sync.adapters.mail.imap import PROCESSED_KEYWORD, FetchedMessage, ImapReader
from ptm_sync.config.settings import ImapConfig, Secret
from ptm_sync.core.errors import ConfigError, MailAuthFailed, MailUnavailable, UserError
from tests.support.imap_relay import ImapRelay
from tests.support.mailservers import DovecotServer, Mailbox, TlsMaterial
from tests.support.servers import free_port

pytestmark = pytest.mark.dovecot

#: Reconnect at once, then after a few hundredths of a second: tests do not wait for long.
QUICK = Backoff(first=0.02, cap=0.2, attempts=3)
Relay = Callable[[int], ImapRelay]


def reply(n: int) -> bytes:
    return (
        f"From: parent{n}@example.org\r\nTo: conferences@school.test\r\n"
        f"Subject: Accepted: Conference {n}\r\nMessage-ID: <reply-{n}@example.org>\r\n"
        f"\r\nAccepted.\r\n"
    ).encode()


def reader_for(box: Mailbox, **overrides: object) -> ImapReader:
    return ImapReader(box.config(**overrides), timeout=10, backoff=QUICK)


def relayed(
    box: Mailbox,
    relay: ImapRelay,
    *,
    backoff: Backoff = QUICK,
    stop: threading.Event | None = None,
    idle_renew_seconds: float = 600.0,
    **overrides: object,
) -> ImapReader:
    """A reader that reaches ``box`` through ``relay``."""
    return ImapReader(
        box.config(port=relay.port, **overrides),
        timeout=10,
        backoff=backoff,
        stop=stop,
        idle_renew_seconds=idle_renew_seconds,
    )


def after(ready: Callable[[], object], then: Callable[[], object]) -> threading.Thread:
    """In another thread: wait for ``ready()`` (it blocks), then do ``then()``."""

    def run() -> None:
        ready()
        then()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


class MailLog(logging.Handler):
    """What ptm_sync.adapters.mail logs, debug included, for a test thread that waits for the reader
    to get somewhere (``idling``: IDLE was acknowledged; ``reconnecting in``: a pause)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.messages.append(record.getMessage())
            self.changed.notify_all()

    def count(self, text: str) -> int:
        with self.changed:
            return sum(text in m for m in self.messages)

    def wait_for(self, text: str, times: int = 1) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: sum(text in m for m in self.messages) >= times, timeout=30
            )


@pytest.fixture
def mail_log() -> Iterator[MailLog]:
    handler = MailLog()
    logger = logging.getLogger("ptm_sync.adapters.mail")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


# --- fetching and marking ---------------------------------------------------------------


def test_fetch_new_returns_appended_messages_byte_exact_oldest_first_and_unseen(
    mailbox: Mailbox,
) -> None:
    first, second = mailbox.append(reply(1)), mailbox.append(reply(2))
    with reader_for(mailbox) as reader:
        fetched = list(reader.fetch_new())
    assert fetched == [FetchedMessage(first, reply(1)), FetchedMessage(second, reply(2))]
    assert "\\Seen" not in mailbox.flags(first)
    assert "\\Seen" not in mailbox.flags(second)


def test_fetch_new_on_an_empty_folder_yields_nothing(mailbox: Mailbox) -> None:
    with reader_for(mailbox) as reader:
        assert list(reader.fetch_new()) == []


def test_a_processed_message_is_flagged_and_not_fetched_again(mailbox: Mailbox) -> None:
    first, second = mailbox.append(reply(1)), mailbox.append(reply(2))
    with reader_for(mailbox) as reader:
        for message in reader.fetch_new():
            if message.uid == first:
                reader.mark_processed(message.uid)
        assert [m.uid for m in reader.fetch_new()] == [second]
    assert PROCESSED_KEYWORD in mailbox.flags(first)
    assert "\\Seen" not in mailbox.flags(first)  # people reading the folder still see it new
    assert mailbox.uids() == [first, second]


def test_messages_a_person_already_read_are_still_fetched(mailbox: Mailbox) -> None:
    uid = mailbox.append(reply(1), flags="\\Seen")
    with reader_for(mailbox) as reader:
        assert [m.uid for m in reader.fetch_new()] == [uid]


def test_a_crash_before_marking_means_the_message_is_fetched_again(mailbox: Mailbox) -> None:
    uid = mailbox.append(reply(1))
    crashed = reader_for(mailbox)
    assert [m.uid for m in crashed.fetch_new()] == [uid]
    # The process dies here: no mark_processed, no logout.
    with reader_for(mailbox) as restarted:
        assert list(restarted.fetch_new()) == [FetchedMessage(uid, reply(1))]
    crashed.close()


def test_a_message_handed_out_and_not_marked_comes_again_in_the_next_pass(
    mailbox: Mailbox,
) -> None:
    first, second = mailbox.append_many([reply(1), reply(2)])
    with reader_for(mailbox) as reader:
        assert [m.uid for m in reader.fetch_new()] == [first, second]
        reader.mark_processed(second)  # the first one failed: its effect was not kept
        assert [m.uid for m in reader.fetch_new()] == [first]


def test_processed_messages_move_to_the_processed_folder_which_is_created(
    mailbox: Mailbox,
) -> None:
    uid = mailbox.append(reply(1))
    with reader_for(mailbox, processed_folder="Processed") as reader:
        [message] = reader.fetch_new()
        reader.mark_processed(message.uid)
        assert list(reader.fetch_new()) == []
    assert mailbox.uids() == []
    assert mailbox.uids("INBOX", "DELETED") == []  # moved, not left behind as \Deleted
    with reader_for(mailbox, folder="Processed") as processed:
        assert [m.raw for m in processed.fetch_new()] == [reply(1)]
    assert uid not in mailbox.uids()


def test_without_move_a_processed_message_is_copied_and_flagged_deleted(
    minimal_mailbox: Mailbox,
) -> None:
    uid = minimal_mailbox.append(reply(1))
    with reader_for(minimal_mailbox, processed_folder="Processed") as reader:
        [message] = reader.fetch_new()
        assert "MOVE" not in reader.capabilities
        reader.mark_processed(message.uid)
        assert list(reader.fetch_new()) == []
    assert len(minimal_mailbox.uids("Processed")) == 1
    # Without UIDPLUS there is no safe expunge of one message: it stays, flagged \Deleted.
    assert "\\Deleted" in minimal_mailbox.flags(uid)


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("Erledigt Ü", "Erledigt &ANw-"),  # RFC 3501 §5.1.3, written by hand
        ("Tom & Jerry", "Tom &- Jerry"),
        ("日本語", "&ZeVnLIqe-"),
    ],
)
def test_processed_folder_names_go_out_in_modified_utf7(
    mailbox: Mailbox, name: str, wire: str
) -> None:
    mailbox.append(reply(1))
    with reader_for(mailbox, processed_folder=name) as reader:
        [message] = reader.fetch_new()
        reader.mark_processed(message.uid)
    assert len(mailbox.uids(wire)) == 1


# --- batches ----------------------------------------------------------------------------


def test_120_messages_come_in_three_batches_each_one_fetch_round_trip(
    mailbox: Mailbox, imap_relay: Relay
) -> None:
    uids = mailbox.append_many([reply(n) for n in range(120)])
    relay = imap_relay(mailbox.server.port)
    with relayed(mailbox, relay) as reader:
        batches = list(reader.fetch_batches(size=50))
    assert [len(b) for b in batches] == [50, 50, 20]
    assert [m.uid for b in batches for m in b] == uids
    assert [m.raw for b in batches for m in b] == [reply(n) for n in range(120)]
    assert relay.count("UID FETCH") == 3
    assert all("BODY.PEEK[]" in c for c in relay.commands if c.startswith("UID FETCH"))
    assert mailbox.uids("INBOX", "SEEN") == []


def test_fetch_new_yields_one_message_at_a_time_but_fetches_50_per_round_trip(
    mailbox: Mailbox, imap_relay: Relay
) -> None:
    uids = mailbox.append_many([reply(n) for n in range(120)])
    relay = imap_relay(mailbox.server.port)
    with relayed(mailbox, relay) as reader:
        assert [m.uid for m in reader.fetch_new()] == uids
    assert relay.count("UID FETCH") <= 3


@pytest.mark.parametrize(
    ("processed_folder", "command"), [("", "UID STORE"), ("Processed", "UID MOVE")]
)
def test_a_batch_is_marked_processed_with_one_command(
    mailbox: Mailbox, imap_relay: Relay, processed_folder: str, command: str
) -> None:
    uids = mailbox.append_many([reply(n) for n in range(50)])
    mailbox.create_folder("Processed")
    relay = imap_relay(mailbox.server.port)
    with relayed(mailbox, relay, processed_folder=processed_folder) as reader:
        [batch] = reader.fetch_batches(size=50)
        reader.mark_processed_many(m.uid for m in batch)
        assert list(reader.fetch_new()) == []
    assert relay.count(command) == 1
    if processed_folder:
        assert len(mailbox.uids("Processed")) == 50
        assert mailbox.uids() == []
    else:
        assert all(PROCESSED_KEYWORD in mailbox.flags(uid) for uid in (uids[0], uids[-1]))
        assert mailbox.uids("INBOX", f"UNKEYWORD {PROCESSED_KEYWORD}") == []


def test_fetch_batches_refuses_an_empty_batch_size(mailbox: Mailbox) -> None:
    with reader_for(mailbox) as reader, pytest.raises(ValueError):
        next(reader.fetch_batches(size=0))


# --- reconnecting -----------------------------------------------------------------------


def test_a_connection_cut_between_batches_loses_nothing_and_repeats_nothing_marked(
    mailbox: Mailbox, imap_relay: Relay
) -> None:
    uids = mailbox.append_many([reply(n) for n in range(120)])
    relay = imap_relay(mailbox.server.port)
    handed: list[int] = []
    with relayed(mailbox, relay) as reader:
        for batch in reader.fetch_batches(size=50):
            handed += [m.uid for m in batch]
            reader.mark_processed_many(m.uid for m in batch)
            relay.cut()  # the next batch finds the connection gone
        assert list(reader.fetch_new()) == []
    assert handed == uids
    assert relay.connections >= 3
    assert mailbox.uids("INBOX", f"UNKEYWORD {PROCESSED_KEYWORD}") == []


def test_a_connection_cut_before_marking_is_made_again_and_the_mark_lands(
    mailbox: Mailbox, imap_relay: Relay
) -> None:
    uid = mailbox.append(reply(1))
    relay = imap_relay(mailbox.server.port)
    with relayed(mailbox, relay) as reader:
        [message] = reader.fetch_new()
        relay.cut()
        reader.mark_processed(message.uid)
        assert list(reader.fetch_new()) == []
    assert relay.connections == 2
    assert PROCESSED_KEYWORD in mailbox.flags(uid)


def test_after_a_reconnect_unmarked_messages_come_again_and_the_search_resumes_by_uid(
    mailbox: Mailbox, imap_relay: Relay
) -> None:
    first, second, third = mailbox.append_many([reply(1), reply(2), reply(3)])
    relay = imap_relay(mailbox.server.port)
    with relayed(mailbox, relay) as reader:
        assert [m.uid for m in reader.fetch_new()] == [first, second, third]
        reader.mark_processed_many([first, third])
        relay.cut()
        fourth = mailbox.append(reply(4))
        assert [m.uid for m in reader.fetch_new()] == [second, fourth]
        reader.mark_processed_many([second, fourth])
        fifth = mailbox.append(reply(5))
        relay.cut()
        assert [m.uid for m in reader.fetch_new()] == [fifth]
    searches = [c for c in relay.commands if c.startswith("UID SEARCH")]
    assert [s.split()[3] for s in searches] == ["1:*", f"{second}:*", f"{fourth + 1}:*"]


def test_a_session_dovecot_ends_with_bye_is_made_again(mailbox: Mailbox) -> None:
    with reader_for(mailbox) as reader:
        assert list(reader.fetch_new()) == []
        mailbox.kick()
        uid = mailbox.append(reply(1))
        assert [m.uid for m in reader.fetch_new()] == [uid]


@pytest.mark.timeout(60)
def test_the_reader_waits_with_backoff_for_a_restarted_dovecot_and_misses_nothing(
    mailbox: Mailbox, dovecot: DovecotServer, mail_log: MailLog
) -> None:
    stop = threading.Event()
    patient = Backoff(first=0.05, cap=0.2, attempts=None)
    first = mailbox.append(reply(1))
    with ImapReader(mailbox.config(), timeout=10, backoff=patient, stop=stop) as reader:
        assert [m.uid for m in reader.fetch_new()] == [first]
        reader.mark_processed(first)
        dovecot.stop()
        restart = after(
            lambda: mail_log.wait_for("reconnecting in", times=3),
            lambda: (dovecot.start(), mailbox.append(reply(2))),
        )
        try:
            assert reader.idle(timeout=3600) is True
        finally:
            stop.set()  # ends the reader's wait should the restart never come
            restart.join()
        assert [m.raw for m in reader.fetch_new()] == [reply(2)]
    assert mail_log.wait_for("reconnecting in", times=3)


def test_the_reader_gives_up_after_the_backoffs_attempts_with_a_retryable_error(
    mailbox: Mailbox, imap_relay: Relay
) -> None:
    nobody = imap_relay(free_port())  # accepts, then closes: a server going down
    reader = relayed(mailbox, nobody, backoff=Backoff(first=0.01, cap=0.01, attempts=2))
    with reader, pytest.raises(MailUnavailable) as caught:
        list(reader.fetch_new())
    assert caught.value.retryable
    assert nobody.connections == 3  # the first attempt and two more


@pytest.mark.timeout(60)
def test_the_stop_event_ends_a_pause_between_reconnects(
    mailbox: Mailbox, imap_relay: Relay, mail_log: MailLog
) -> None:
    stop = threading.Event()
    nobody = imap_relay(free_port())
    forever = Backoff(first=3600.0, cap=3600.0, attempts=None)
    stopper = after(lambda: mail_log.wait_for("reconnecting in", times=2), stop.set)
    with (
        relayed(mailbox, nobody, backoff=forever, stop=stop) as reader,
        pytest.raises(MailUnavailable),
    ):
        list(reader.fetch_new())
    stopper.join()
    assert nobody.connections == 2  # at once, then the pause the stop event ended


# --- UIDVALIDITY ------------------------------------------------------------------------


def test_a_new_uidvalidity_forgets_the_uids_and_rescans_every_unprocessed_message(
    mailbox: Mailbox, mail_log: MailLog
) -> None:
    mailbox.append_many([reply(1), reply(2)], folder="Replies")
    with reader_for(mailbox, folder="Replies") as reader:
        fetched = list(reader.fetch_new())
        reader.mark_processed_many(m.uid for m in fetched)
        assert list(reader.fetch_new()) == []
        # The folder is replaced, e.g. restored from a backup: UIDs start again at 1.
        mailbox.recreate_folder("Replies")
        mailbox.append_many([reply(3), reply(4)], folder="Replies")
        assert [m.raw for m in reader.fetch_new()] == [reply(3), reply(4)]
    assert any("UIDVALIDITY" in m and "rescanning" in m for m in mail_log.messages)


def test_a_uid_handed_out_before_the_uidvalidity_changed_is_not_marked(
    mailbox: Mailbox, mail_log: MailLog
) -> None:
    mailbox.append(reply(1), folder="Replies")
    with reader_for(mailbox, folder="Replies") as reader:
        [old] = reader.fetch_new()
        mailbox.recreate_folder("Replies")
        new = mailbox.append(reply(2), folder="Replies")
        assert new == old.uid  # the same number now names another message
        mailbox.kick()  # the reader learns of the new folder when it selects it again
        reader.mark_processed(old.uid)
        assert [m.raw for m in reader.fetch_new()] == [reply(2)]
    assert PROCESSED_KEYWORD not in mailbox.flags(new, "Replies")
    assert any("left alone" in m for m in mail_log.messages)


# --- IDLE and polling -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_idle_returns_true_soon_after_another_connection_appends(
    mailbox: Mailbox, imap_relay: Relay
) -> None:
    relay = imap_relay(mailbox.server.port)
    with relayed(mailbox, relay) as reader:
        assert list(reader.fetch_new()) == []
        assert "IDLE" in reader.capabilities
        delivery = after(lambda: relay.wait_for("IDLE"), lambda: mailbox.append(reply(1)))
        assert reader.idle(timeout=3600) is True
        delivery.join()
        assert [m.raw for m in reader.fetch_new()] == [reply(1)]


def test_idle_returns_false_when_nothing_arrives_and_the_connection_stays_usable(
    mailbox: Mailbox,
) -> None:
    with reader_for(mailbox) as reader:
        assert reader.idle(timeout=0.5) is False
        mailbox.append(reply(1))
        assert [m.raw for m in reader.fetch_new()] == [reply(1)]


@pytest.mark.timeout(60)
def test_idle_reports_mail_announced_while_another_command_ran(mailbox: Mailbox) -> None:
    first = mailbox.append(reply(1))
    with reader_for(mailbox) as reader:
        [message] = reader.fetch_new()
        mailbox.append(reply(2))
        reader.mark_processed(message.uid)  # the server may announce the new mail here
        assert reader.idle(timeout=3600) is True
        assert [m.raw for m in reader.fetch_new()] == [reply(2)]
    assert PROCESSED_KEYWORD in mailbox.flags(first)


@pytest.mark.timeout(60)
def test_idle_reports_mail_that_came_after_the_last_pass_at_once(mailbox: Mailbox) -> None:
    """Dovecot searches the folder as it was when the SEARCH began and announces a message
    that came since with the search's answer, without it in the result."""
    with reader_for(mailbox) as reader:
        assert list(reader.fetch_new()) == []
        mailbox.append(reply(1))
        assert reader.idle(timeout=3600) is True
        assert [m.raw for m in reader.fetch_new()] == [reply(1)]


@pytest.mark.timeout(60)
def test_idle_is_renewed_every_idle_renew_seconds_on_the_same_connection(
    mailbox: Mailbox, imap_relay: Relay
) -> None:
    relay = imap_relay(mailbox.server.port)
    with relayed(mailbox, relay, idle_renew_seconds=0.2) as reader:
        assert list(reader.fetch_new()) == []
        delivery = after(lambda: relay.wait_for("IDLE", 3), lambda: mailbox.append(reply(1)))
        assert reader.idle(timeout=3600) is True
        delivery.join()
        assert [m.raw for m in reader.fetch_new()] == [reply(1)]
    assert relay.count("IDLE") >= 3
    assert relay.count("DONE") == relay.count("IDLE")  # each IDLE ended before the next
    assert relay.connections == 1


@pytest.mark.parametrize("renew", [0, 29 * 60])
def test_idle_renewal_must_be_inside_rfc_2177s_29_minutes(mailbox: Mailbox, renew: float) -> None:
    with pytest.raises(ValueError, match="29 minutes"):
        ImapReader(mailbox.config(), idle_renew_seconds=renew)


@pytest.mark.timeout(60)
def test_idle_ends_early_when_the_stop_event_is_set_and_the_connection_stays_usable(
    mailbox: Mailbox, imap_relay: Relay
) -> None:
    stop = threading.Event()
    relay = imap_relay(mailbox.server.port)
    stopper = after(lambda: relay.wait_for("IDLE"), stop.set)
    with relayed(mailbox, relay) as reader:
        assert reader.idle(timeout=3600, stop=stop) is False
        stopper.join()
        assert relay.count("DONE") == 1
        uid = mailbox.append(reply(1))
        assert [m.uid for m in reader.fetch_new()] == [uid]
    assert relay.connections == 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("how", "tls"), [("kick", False), ("cut", False), ("cut", True)])
def test_idle_makes_a_lost_connection_again_and_reports_mail_that_came_meanwhile(
    mailbox: Mailbox,
    imap_relay: Relay,
    tls_material: TlsMaterial,
    mail_log: MailLog,
    how: str,
    tls: bool,
) -> None:
    """``kick``: Dovecot says BYE; ``cut``: the connection just ends, which imapclient's
    idle_check() would take for silence (mjs/imapclient#565), over TLS as well."""
    relay = imap_relay(mailbox.server.tls_port if tls else mailbox.server.port)
    drop = mailbox.kick if how == "kick" else relay.cut
    config = mailbox.config(port=relay.port, tls=tls)
    context = tls_material.client_context()
    with ImapReader(config, tls_context=context, timeout=10, backoff=QUICK) as reader:
        assert list(reader.fetch_new()) == []
        dropped = after(
            lambda: mail_log.wait_for("idling"), lambda: (drop(), mailbox.append(reply(1)))
        )
        assert reader.idle(timeout=3600) is True
        dropped.join()
        assert [m.raw for m in reader.fetch_new()] == [reply(1)]
    assert relay.connections == 2


@pytest.mark.timeout(60)
def test_without_idle_on_the_server_the_reader_polls_every_poll_seconds(
    minimal_mailbox: Mailbox,
) -> None:
    with reader_for(minimal_mailbox, poll_seconds=1) as reader:
        reader.connect()
        assert "IDLE" not in reader.capabilities
        assert reader.idle(timeout=3600) is False


@pytest.mark.timeout(60)
def test_idle_switched_off_in_the_config_polls(mailbox: Mailbox) -> None:
    with reader_for(mailbox, idle=False, poll_seconds=1) as reader:
        assert reader.idle(timeout=3600) is False


@pytest.mark.timeout(60)
def test_polling_ends_early_when_the_stop_event_is_set(minimal_mailbox: Mailbox) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with reader_for(minimal_mailbox, poll_seconds=3600) as reader:
        assert reader.idle(timeout=3600, stop=stop) is False


# --- connections and errors -------------------------------------------------------------


def test_implicit_tls_reads_the_folder(mailbox: Mailbox, tls_material: TlsMaterial) -> None:
    uid = mailbox.append(reply(1))
    config = mailbox.config(tls=True)
    with ImapReader(config, tls_context=tls_material.client_context()) as reader:
        assert [m.uid for m in reader.fetch_new()] == [uid]


@pytest.mark.timeout(60)
def test_idle_over_tls_returns_true_after_an_append(
    mailbox: Mailbox, tls_material: TlsMaterial
) -> None:
    config = mailbox.config(tls=True)
    with ImapReader(config, tls_context=tls_material.client_context()) as reader:
        assert list(reader.fetch_new()) == []
        delivery = after(lambda: None, lambda: mailbox.append(reply(1)))
        assert reader.idle(timeout=3600) is True
        delivery.join()
        assert [m.raw for m in reader.fetch_new()] == [reply(1)]


def test_starttls_reads_the_folder(mailbox: Mailbox, tls_material: TlsMaterial) -> None:
    uid = mailbox.append(reply(1))
    config = mailbox.config(starttls=True)
    with ImapReader(config, tls_context=tls_material.client_context()) as reader:
        assert [m.uid for m in reader.fetch_new()] == [uid]


def test_untrusted_certificate_is_refused(mailbox: Mailbox) -> None:
    with (
        ImapReader(mailbox.config(tls=True), backoff=QUICK) as reader,
        pytest.raises(MailUnavailable, match="certificate"),
    ):
        list(reader.fetch_new())


def test_wrong_password_is_mail_auth_failed_which_the_user_must_fix(mailbox: Mailbox) -> None:
    config = mailbox.config(password=Secret(key="mail.imap.password", value="wrong"))
    with ImapReader(config) as reader, pytest.raises(MailAuthFailed) as caught:
        list(reader.fetch_new())
    assert isinstance(caught.value, UserError)
    assert "AUTHENTICATIONFAILED" in str(caught.value)
    assert mailbox.server.password not in str(caught.value)


def test_missing_folder_names_the_config_key(mailbox: Mailbox) -> None:
    with (
        reader_for(mailbox, folder="Replies") as reader,
        pytest.raises(ConfigError, match=r"mail\.imap\.folder.*'Replies'"),
    ):
        list(reader.fetch_new())


def test_server_not_listening_is_mail_unavailable() -> None:
    config = ImapConfig(
        host="127.0.0.1",
        port=free_port(),
        ssl=False,
        username="nobody",
        password=Secret(key="mail.imap.password", value="x"),
    )
    with ImapReader(config, backoff=QUICK) as reader, pytest.raises(MailUnavailable) as caught:
        list(reader.fetch_new())
    assert caught.value.retryable


def test_check_finds_no_problem_and_changes_nothing(mailbox: Mailbox) -> None:
    uid = mailbox.append(reply(1))
    assert imap.check(mailbox.config()) == []
    flags = mailbox.flags(uid)
    assert "\\Seen" not in flags
    assert PROCESSED_KEYWORD not in flags


def test_check_reports_a_missing_folder_on_one_line(mailbox: Mailbox) -> None:
    [problem] = imap.check(mailbox.config(folder="Replies"))
    assert problem.startswith("mail.imap: ")
    assert "mail.imap.folder" in problem
    assert "\n" not in problem


def test_check_reports_a_wrong_password_on_one_line_after_one_attempt(
    mailbox: Mailbox, imap_relay: Relay
) -> None:
    relay = imap_relay(mailbox.server.port)
    config = mailbox.config(port=relay.port, password=Secret(key="k", value="wrong"))
    [problem] = imap.check(config)
    assert problem.startswith("mail.imap: ") and "refused the login" in problem
    assert "\n" not in problem
    assert relay.connections == 1
