"""What a person wrote in a reply, without what they quoted (a feedback answer, DESIGN §3).
Pure: bytes in, text out.

:func:`reply_text` takes the message's own plain text (its HTML turned into text where it
has none), leaves out the quoted message (``>`` lines, the "On … wrote:" line before them,
Outlook's "Original Message" block, Gmail's quote), the signature after ``-- ``, and cuts
what is left to a bounded length.  :func:`thread_ids` gives the Message-IDs a reply names in
In-Reply-To and References (RFC 5322 §3.6.4).
"""

from __future__ import annotations

import re
from email.message import Message
from html.parser import HTMLParser

from ptm_sync.core.errors import Unusable
from ptm_sync.core.imip.parts import parse_message, raw_values, walk

#: Longest text kept of one reply (characters).
MAX_TEXT = 4000
_ELLIPSIS = "…"
_ID = re.compile(r"<[^<>\s]+>")
#: Where the quoted message starts in clients that do not mark it with ``>`` (Outlook).
_QUOTE_START = re.compile(
    r"^\s*(-{2,}\s*original message\s*-{2,}|_{10,}|-{2,}\s*forwarded message\s*-{2,})\s*$",
    re.IGNORECASE,
)
#: The line that introduces a quote: "On Mon, 12 Apr 2027 … wrote:", and its translations.
_ATTRIBUTION = re.compile(r"(wrote|schrieb|a écrit|escribió|scrisse|schreef)\s*:\s*$", re.I)
#: The usual signature delimiter (RFC 3676 §4.3).
_SIGNATURE = "-- "
#: HTML elements whose text is no part of what the person wrote.
_SKIPPED = frozenset({"blockquote", "style", "script", "head", "title"})
_BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "table"})


def thread_ids(raw: bytes) -> tuple[str, ...]:
    """The Message-IDs in In-Reply-To and References, in that order, once each (none for
    a message that cannot be read)."""
    try:
        msg = parse_message(raw, headers_only=True)
    except Unusable:
        return ()
    found: list[str] = []
    for name in ("In-Reply-To", "References"):
        for value in raw_values(msg, name):
            found += _ID.findall(value)
    return tuple(dict.fromkeys(found))


def reply_text(raw: bytes, limit: int = MAX_TEXT) -> str:
    """The text the sender wrote, quotes and signature left out, at most ``limit``
    characters ("" when there is none or the message cannot be read)."""
    try:
        msg = parse_message(raw)
    except Unusable:
        return ""
    plain, html = _bodies(msg)
    text = own_words(plain) if plain is not None else own_words(_html_text(html or ""))
    if len(text) > limit:
        text = text[: limit - len(_ELLIPSIS)].rstrip() + _ELLIPSIS
    return text


def own_words(text: str) -> str:
    """``text`` without its quoted lines, the line introducing them, what follows an
    Outlook separator and the signature; blank lines folded."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for line in lines:
        if _QUOTE_START.match(line) or line == _SIGNATURE or line.rstrip() == "--":
            break
        if line.lstrip().startswith(">"):
            _drop_attribution(kept)
            continue
        kept.append(line.rstrip())
    _drop_attribution(kept)
    folded = re.sub(r"\n{3,}", "\n\n", "\n".join(kept))
    return folded.strip()


def _drop_attribution(kept: list[str]) -> None:
    """Remove the "On … wrote:" line (maybe wrapped over two) ending ``kept``."""
    while kept and not kept[-1].strip():
        kept.pop()
    if kept and _ATTRIBUTION.search(kept[-1]):
        kept.pop()
        if kept and kept[-1].strip() and re.match(r"^\s*(on|am|le|el|il|op)\b", kept[-1], re.I):
            kept.pop()  # the first half of an attribution wrapped over two lines


def _bodies(msg: Message) -> tuple[str | None, str | None]:
    """The first plain and first HTML text of the message itself (not of an attached or
    forwarded message, not an attachment)."""
    plain: str | None = None
    html: str | None = None
    for part, forwarded in walk(msg):
        if forwarded or part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and plain is None:
            plain = _decoded(part)
        elif kind == "text/html" and html is None:
            html = _decoded(part)
    return plain, html


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", errors="replace")


class _Text(HTMLParser):
    """HTML to text: block elements end lines; quotes (``blockquote``, Gmail's
    ``gmail_quote``) and non-text elements are left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = " ".join(v or "" for k, v in attrs if k == "class")
        if self.skipping or tag in _SKIPPED or "gmail_quote" in classes:
            if tag not in ("br", "img", "hr", "meta", "link", "input"):
                self.skipping.append(tag)
            return
        if tag in _BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.skipping:
            if tag in self.skipping:  # elements left open inside it close with it
                while self.skipping.pop() != tag:
                    pass
            return
        if tag in _BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(re.sub(r"[ \t\r\n]+", " ", data))


def _html_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "\n".join(line.strip() for line in "".join(parser.out).split("\n"))
