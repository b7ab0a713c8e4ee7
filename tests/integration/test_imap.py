"""ImapReader against a private Dovecot: fetch without marking, mark after commit, IDLE."""

from __future__ import annotations

import threading
import time

import pytest

from ptm_sync.config import ImapConfig, Secret
from ptm_sync.errors import ConfigError, MailAuthFailed, MailUnavailable, UserError
from ptm_sync.mail import imap
from ptm_sync.mail.imap import PROCESSED_KEYWORD, FetchedMessage, ImapReader, mailbox_name
from tests.support.mailservers import Mailbox, TlsMaterial
from tests.support.servers import free_port

pytestmark = pytest.mark.dovecot


def reply(n: int) -> bytes:
    return (
        f"From: parent{n}@example.org\r\nTo: conferences@school.test\r\n"
        f"Subject: Accepted: Conference {n}\r\nMessage-ID: <reply-{n}@example.org>\r\n"
        f"\r\nAccepted.\r\n"
    ).encode()


def reader_for(box: Mailbox, **overrides: object) -> ImapReader:
    return ImapReader(box.config(**overrides), timeout=10)


def append_later(box: Mailbox, raw: bytes, delay: float = 0.3) -> threading.Thread:
    """APPEND from another connection a moment from now, as a mail server delivering."""

    def deliver() -> None:
        time.sleep(delay)
        box.append(raw)

    thread = threading.Thread(target=deliver)
    thread.start()
    return thread


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


def test_processed_folder_names_go_out_in_modified_utf7(mailbox: Mailbox) -> None:
    mailbox.append(reply(1))
    with reader_for(mailbox, processed_folder="Erledigt Ü") as reader:
        [message] = reader.fetch_new()
        reader.mark_processed(message.uid)
    assert len(mailbox.uids("Erledigt &ANw-")) == 1  # RFC 3501 §5.1.3, written by hand


@pytest.mark.parametrize(
    ("name", "wire"),
    [
        ("INBOX", '"INBOX"'),
        ("Erledigt Ü", '"Erledigt &ANw-"'),
        ("Tom & Jerry", '"Tom &- Jerry"'),
        ("日本語", '"&ZeVnLIqe-"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
    ],
)
def test_mailbox_name_is_modified_utf7_and_quoted(name: str, wire: str) -> None:
    assert mailbox_name(name) == wire


# --- IDLE and polling -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_idle_returns_true_soon_after_another_connection_appends(mailbox: Mailbox) -> None:
    with reader_for(mailbox) as reader:
        assert list(reader.fetch_new()) == []
        assert "IDLE" in reader.capabilities
        delivery = append_later(mailbox, reply(1))
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
def test_idle_ends_early_when_the_stop_event_is_set(mailbox: Mailbox) -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    with reader_for(mailbox) as reader:
        assert reader.idle(timeout=3600, stop=stop) is False
        assert list(reader.fetch_new()) == []


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
        delivery = append_later(mailbox, reply(1))
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
        ImapReader(mailbox.config(tls=True)) as reader,
        pytest.raises(MailUnavailable, match="certificate"),
    ):
        list(reader.fetch_new())


def test_fetch_new_reconnects_after_the_server_dropped_the_connection(
    mailbox: Mailbox,
) -> None:
    with reader_for(mailbox) as reader:
        assert list(reader.fetch_new()) == []
        mailbox.kick()
        uid = mailbox.append(reply(1))
        assert [m.uid for m in reader.fetch_new()] == [uid]


def test_idle_on_a_dropped_connection_is_retryable_and_the_next_pass_reconnects(
    mailbox: Mailbox,
) -> None:
    with reader_for(mailbox) as reader:
        assert list(reader.fetch_new()) == []
        mailbox.kick()
        with pytest.raises(MailUnavailable) as caught:
            reader.idle(timeout=3600)
        assert caught.value.retryable
        uid = mailbox.append(reply(1))
        assert [m.uid for m in reader.fetch_new()] == [uid]


def test_wrong_password_is_mail_auth_failed_which_the_user_must_fix(mailbox: Mailbox) -> None:
    config = mailbox.config(password=Secret(key="mail.imap.password", value="wrong"))
    with ImapReader(config) as reader, pytest.raises(MailAuthFailed) as caught:
        list(reader.fetch_new())
    assert isinstance(caught.value, UserError)
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
    with ImapReader(config) as reader, pytest.raises(MailUnavailable) as caught:
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
