"""A feedback reply's own words: quotes, attributions and signatures left out (DESIGN §3),
and the feedback token that names the meeting."""

from __future__ import annotations

import re

import pytest

from ptm_sync.core import trust
from ptm_sync.core.imip.reply_text import own_words, reply_text, thread_ids


def message(body: str, *, kind: str = "plain", headers: str = "") -> bytes:
    return (
        "From: Pat Johnson <pat@example.net>\r\n"
        "To: conferences@lincoln.example.org\r\n"
        "Message-ID: <r1@example.net>\r\n"
        f"{headers}"
        f"Content-Type: text/{kind}; charset=utf-8\r\n\r\n{body}"
    ).encode()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # Gmail: the attribution wrapped over two lines, then the quote.
        (
            "Very helpful.\n\nOn Mon, Apr 12, 2027 at 5:00 PM Lincoln High School <\n"
            "conferences@lincoln.example.org> wrote:\n\n> Please tell us how it went\n",
            "Very helpful.",
        ),
        # Thunderbird/Apple: one attribution line; a signature.
        (
            "Thanks!\nAda was kind.\n\nOn 12.04.27 17:00, School wrote:\n> quoted\n-- \nPat\n",
            "Thanks!\nAda was kind.",
        ),
        # Outlook: no ">" marks, a separator and the old message's headers.
        (
            "It went well.\n\n-----Original Message-----\nFrom: School\nSubject: How was it?\n",
            "It went well.",
        ),
        ("It went well.\n________________________________\nFrom: School\n", "It went well."),
        # Bottom posting: the answer after the quote is kept.
        ("> How was it?\n\nVery good.\n", "Very good."),
        ("", ""),
    ],
)
def test_only_what_the_family_wrote_is_kept(text: str, words: str) -> None:
    assert own_words(text) == words


def test_html_without_a_plain_part_is_read_without_gmails_quote() -> None:
    html = (
        '<div dir="ltr">Great &amp; quick<br>thank you</div><div class="gmail_quote">'
        "<div>On Mon, School wrote:</div><blockquote><p>Please tell us</blockquote></div>"
    )
    assert reply_text(message(html, kind="html")) == "Great & quick\nthank you"


def test_a_long_answer_is_cut_with_an_ellipsis() -> None:
    text = reply_text(message("word " * 2000), limit=100)
    assert len(text) == 100 and text.endswith("…")


def test_thread_ids_are_in_reply_to_then_references_once_each() -> None:
    raw = message(
        "x",
        headers="In-Reply-To: <b@s>\r\nReferences: <a@s>\r\n <b@s>\r\n",
    )
    assert thread_ids(raw) == ("<b@s>", "<a@s>")
    assert thread_ids(b"") == ()


def test_the_feedback_token_is_url_safe_per_meeting_and_no_reply_token() -> None:
    secret = b"k" * 32
    first = trust.feedback_token(secret, "a-1@s")
    assert re.fullmatch(r"[a-z2-7]{32}", first)
    assert first == trust.feedback_token(secret, "a-1@s")
    assert first != trust.feedback_token(secret, "a-2@s")
    assert first != trust.feedback_token(b"j" * 32, "a-1@s")
    assert not first.startswith(trust.make_token(secret, "a-1@s"))
