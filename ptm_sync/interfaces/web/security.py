"""What every answer of the web server carries, and who may read what: pure decisions.

The headers of :func:`security_headers` go on every response (DESIGN §7): a Content Security
Policy without inline script, no framing, no referrer (a personal link's token never leaks
to another site), no content sniffing, and HSTS when parents reach the site over https.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

#: The Content-Security-Policy of every page: scripts and styles from the site only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
#: One year, the HSTS preload list's minimum (RFC 6797 §6.1.1).
HSTS_SECONDS = 31_536_000
#: The largest request body accepted (bytes); larger is answered 413.
MAX_BODY_BYTES = 64 * 1024

_TOKEN = re.compile(r"^/f/[^/?#]+")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def security_headers(public_url: str) -> list[tuple[str, str]]:
    """(name, value) pairs for every response; HSTS only when ``public_url`` is https."""
    headers = [
        ("Content-Security-Policy", CSP),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
    ]
    if public_url.lower().startswith("https://"):
        headers.append(("Strict-Transport-Security", f"max-age={HSTS_SECONDS}"))
    return headers


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """The networks of ``[web] metrics_from``; raises ValueError on a malformed one (the
    config's rules have checked them by then)."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def may_read_metrics(client: str | None, allowed: Sequence[Network]) -> bool:
    """Whether a peer at address ``client`` (``None``: unknown) may read /metrics.

    An IPv4 address mapped into IPv6 (``::ffff:10.0.0.1``) counts as its IPv4 address.
    """
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in allowed)


def log_path(path: str) -> str:
    """``path`` as an access log may write it: a personal link's token as ``/f/***``."""
    return _TOKEN.sub("/f/***", path)
