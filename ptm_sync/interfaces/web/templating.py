"""The public pages' HTML from Jinja2 templates, and the site's static files.

Templates live in ``templates/`` beside this module and autoescape everything they are
given (a teacher's name holding ``<script>`` is shown, never run); static files live in
``static/`` and are served from a fixed list read at start-up, so no path from a request
ever reaches the file system.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined

#: Static files served at ``/static/<name>``: name → content type.
STATIC_TYPES = {"ptm.css": "text/css; charset=utf-8"}


@functools.cache
def environment() -> Environment:
    """The Jinja2 environment of the site (autoescaping on, undefined names an error)."""
    return Environment(
        loader=PackageLoader("ptm_sync.interfaces.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, context: Mapping[str, object]) -> bytes:
    """``template`` (a file name in ``templates/``) filled with ``context``, as UTF-8."""
    return environment().get_template(template).render(context).encode("utf-8")


@functools.cache
def static_files() -> dict[str, tuple[str, bytes]]:
    """Name → (content type, bytes) of every static file; read once."""
    folder = resources.files("ptm_sync.interfaces.web") / "static"
    return {name: (kind, (folder / name).read_bytes()) for name, kind in STATIC_TYPES.items()}
