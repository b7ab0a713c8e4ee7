"""SmtpSender against a real aiosmtpd server: delivery, TLS, login, one connection, errors."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest

from ptm_sync.adapters.mail import smtp
from ptm_sync.adapters.mail.smtp import SmtpSender
from ptm_sync.config.settings import Secret, SmtpConfig
from ptm_sync.core.errors import (
    ConfigError,
    MailAuthFailed,
    MailRejected,
    MailUnavailable,
    UserError,
)
from tests.support.mailservers import SMTP_PASSWORD, SmtpSink
from tests.support.servers import free_port

SinkFactory = Callable[..., SmtpSink]
SENDER = "conferences@school.test"
PARENT = "parent@example.org"


def message(n: int = 1, body: str = "Your conference is confirmed.") -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {PARENT}\r\nSubject: Conference {n}\r\n"
        f"Message-ID: <meeting-{n}@school.test>\r\n\r\n{body}\r\n"
    ).encode()


def sender_for(sink: SmtpSink, **overrides: object) -> SmtpSender:
    return SmtpSender(sink.config(**overrides), tls_context=sink.client_context())


def test_plain_send_arrives_byte_exact(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    raw = message(body=".a line starting with a dot\r\n..and two")
    with sender_for(sink) as sender:
        sender.send(raw, sender=SENDER, recipients=[PARENT])
    [got] = sink.received
    assert got.raw == raw
    assert got.mail_from == SENDER
    assert got.rcpt_tos == (PARENT,)


def test_email_message_goes_out_with_crlf_and_without_its_bcc_header(
    smtp_sink: SinkFactory,
) -> None:
    sink = smtp_sink()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Bcc"] = SENDER, PARENT, "office@school.test"
    msg["Subject"] = "Elternsprechtag – Bestätigung"
    msg.set_content("Grüße\nund bis bald\n")
    with sender_for(sink) as sender:
        sender.send(msg, sender=SENDER, recipients=[PARENT, "office@school.test"])
    [got] = sink.received
    assert b"\n" not in got.raw.replace(b"\r\n", b"")
    assert got.rcpt_tos == (PARENT, "office@school.test")
    parsed = BytesParser(policy=default_policy).parsebytes(got.raw)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Elternsprechtag – Bestätigung"
    assert parsed.get_content().replace("\r\n", "\n") == "Grüße\nund bis bald\n"
    assert msg["Bcc"] == "office@school.test"  # the caller's message is left alone


def test_bare_line_feeds_in_bytes_become_crlf(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    with sender_for(sink) as sender:
        sender.send(b"Subject: x\n\nline one\nline two\n", sender=SENDER, recipients=[PARENT])
    assert sink.received[0].raw == b"Subject: x\r\n\r\nline one\r\nline two\r\n"


def test_starttls_with_login_delivers(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink("starttls", auth=True)
    with sender_for(sink) as sender:
        sender.send(message(), sender=SENDER, recipients=[PARENT])
    assert [m.raw for m in sink.received] == [message()]


def test_implicit_tls_with_login_delivers(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink("ssl", auth=True)
    with sender_for(sink) as sender:
        sender.send(message(), sender=SENDER, recipients=[PARENT])
    assert [m.raw for m in sink.received] == [message()]


def test_a_batch_of_50_messages_uses_one_connection(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink("starttls", auth=True)
    with sender_for(sink) as sender:
        for n in range(50):
            sender.send(message(n), sender=SENDER, recipients=[f"parent{n}@example.org"])
    assert len(sink.received) == 50
    assert [m.raw for m in sink.received] == [message(n) for n in range(50)]
    assert sink.connections == 1


def test_nothing_connects_before_the_first_message(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    with sender_for(sink):
        pass
    assert sink.connections == 0


def test_reconnects_once_when_the_server_dropped_the_idle_connection(
    smtp_sink: SinkFactory,
) -> None:
    sink = smtp_sink("starttls", auth=True)
    with sender_for(sink) as sender:
        sender.send(message(1), sender=SENDER, recipients=[PARENT])
        sink.drop_connections()
        sender.send(message(2), sender=SENDER, recipients=[PARENT])
        sender.send(message(3), sender=SENDER, recipients=[PARENT])
    assert [m.raw for m in sink.received] == [message(1), message(2), message(3)]
    assert sink.connections == 2


def test_temporary_refusal_is_retryable_and_the_connection_stays_usable(
    smtp_sink: SinkFactory,
) -> None:
    sink = smtp_sink()
    sink.refuse("busy@example.org", "451 4.3.0 Mailbox busy, try later")
    with sender_for(sink) as sender:
        with pytest.raises(MailUnavailable, match="451") as caught:
            sender.send(message(1), sender=SENDER, recipients=["busy@example.org"])
        assert caught.value.retryable
        sender.send(message(2), sender=SENDER, recipients=[PARENT])
    assert [m.raw for m in sink.received] == [message(2)]
    assert sink.connections == 1


def test_permanent_refusal_is_mail_rejected_and_nobody_gets_the_message(
    smtp_sink: SinkFactory,
) -> None:
    sink = smtp_sink()
    sink.refuse("gone@example.org", "550 5.1.1 No such user")
    with sender_for(sink) as sender:
        with pytest.raises(MailRejected, match=r"gone@example\.org: 550") as caught:
            sender.send(message(), sender=SENDER, recipients=[PARENT, "gone@example.org"])
        assert not caught.value.retryable
    assert sink.received == []


def test_wrong_password_is_mail_auth_failed_which_the_user_must_fix(
    smtp_sink: SinkFactory,
) -> None:
    sink = smtp_sink("starttls", auth=True)
    config = sink.config(password=Secret(key="mail.smtp.password", value="wrong"))
    with (
        SmtpSender(config, tls_context=sink.client_context()) as sender,
        pytest.raises(MailAuthFailed, match="refused the login") as caught,
    ):
        sender.send(message(), sender=SENDER, recipients=[PARENT])
    assert isinstance(caught.value, UserError)
    assert not caught.value.retryable
    assert sink.received == []


def test_login_without_tls_where_the_server_wants_it_says_to_enable_starttls(
    smtp_sink: SinkFactory,
) -> None:
    sink = smtp_sink("starttls", auth=True)
    with (
        sender_for(sink, starttls=False) as sender,
        pytest.raises(MailAuthFailed, match="starttls = true"),
    ):
        sender.send(message(), sender=SENDER, recipients=[PARENT])


def test_server_not_listening_is_mail_unavailable() -> None:
    config = SmtpConfig(host="127.0.0.1", port=free_port(), timeout=5.0)
    with SmtpSender(config) as sender, pytest.raises(MailUnavailable) as caught:
        sender.send(message(), sender=SENDER, recipients=[PARENT])
    assert caught.value.retryable


def test_starttls_missing_on_the_server_names_the_config_key(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    with (
        SmtpSender(sink.config(starttls=True)) as sender,
        pytest.raises(ConfigError, match=r"mail\.smtp\.starttls"),
    ):
        sender.send(message(), sender=SENDER, recipients=[PARENT])
    assert sink.received == []


def test_untrusted_certificate_is_refused(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink("ssl")
    with (
        SmtpSender(sink.config()) as sender,  # the system's CAs do not know the test CA
        pytest.raises(MailUnavailable, match="certificate"),
    ):
        sender.send(message(), sender=SENDER, recipients=[PARENT])
    assert sink.received == []


def test_neither_password_nor_body_reaches_the_log(
    smtp_sink: SinkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sink = smtp_sink("starttls", auth=True)
    caplog.set_level(logging.DEBUG, logger="ptm_sync")
    with sender_for(sink) as sender:
        sender.send(message(body="secret-body-text"), sender=SENDER, recipients=[PARENT])
        sink.drop_connections()
        sender.send(message(body="secret-body-text"), sender=SENDER, recipients=[PARENT])
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ptm_sync"))
    assert "reconnecting" in ours
    assert SMTP_PASSWORD not in ours
    assert "secret-body-text" not in ours


def test_check_finds_no_problem_and_sends_nothing(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink("starttls", auth=True)
    assert smtp.check(sink.config(), tls_context=sink.client_context()) == []
    assert sink.connections == 1
    assert sink.received == []


def test_check_reports_a_refused_login_on_one_line(smtp_sink: SinkFactory) -> None:
    sink = smtp_sink("starttls", auth=True)
    config = dataclasses.replace(
        sink.config(), password=Secret(key="mail.smtp.password", value="wrong")
    )
    [problem] = smtp.check(config, tls_context=sink.client_context())
    assert problem.startswith("mail.smtp: ")
    assert "refused the login" in problem
    assert "\n" not in problem


def test_check_reports_a_server_that_does_not_answer() -> None:
    config = SmtpConfig(host="127.0.0.1", port=free_port(), timeout=5.0)
    [problem] = smtp.check(config)
    assert problem.startswith("mail.smtp: SMTP server 127.0.0.1:")
