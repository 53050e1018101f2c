"""Data-driven requests: ``{field}`` placeholders in the http target's URL, headers and body,
filled from each call's work item (the way Gatling feeders and vegeta's targets fill theirs).

A placeholder is ``{name}`` with a plain name (letters, digits, underscores): a JSON body such
as ``{"a": 1}`` has none. The fields are the item's body fields (a map's), ``id`` and ``body``
(``Work.fields``): text goes in as it is (percent-encoded in the URL), anything else as JSON.
The scheme, host and port stay fixed (one connection pool); a call without an item sends the
request as written. A field the item lacks fails the call as ``Template: no field 'name'``.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

from pusher_farm.errors import InvalidOption, TargetError

__all__ = ["RequestTemplate", "call_name", "has_placeholders"]

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def has_placeholders(*texts: str | None) -> bool:
    return any(t is not None and _FIELD.search(t) for t in texts)


class _Text:
    """One text with placeholders: literal pieces and field names, alternating."""

    def __init__(self, text: str) -> None:
        self.pieces = _FIELD.split(text)  # literal, name, literal, name, ..., literal
        self.names = self.pieces[1::2]

    def fill(self, fields: dict[str, Any], encode: Any) -> str:
        out = []
        for i, piece in enumerate(self.pieces):
            if i % 2 == 0:
                out.append(piece)
                continue
            if piece not in fields:
                raise TargetError(f"Template: no field {piece!r}")
            value = fields[piece]
            out.append(encode(value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))))
        return "".join(out)


def _same(text: str) -> str:
    return text


def _url_piece(text: str) -> str:
    return quote(text, safe="")


class RequestTemplate:
    """The URL, headers and body of a request, with placeholders (see the module docstring)."""

    def __init__(self, url: str, headers: list[tuple[str, str]], body: str | None) -> None:
        parts = urlsplit(url)
        if _FIELD.search(f"{parts.scheme}://{parts.netloc}"):
            raise InvalidOption(f"{url!r}: placeholders may fill the path and query, not the scheme, host or port")
        self.url = _Text(url)
        self.headers = [(name, _Text(value)) for name, value in headers]
        self.body = _Text(body) if body is not None else None

    def fill(self, item: Any) -> tuple[str, list[tuple[str, str]], bytes | None]:
        """(url, headers, body) for ``item``; ``TargetError`` for a field it lacks or a header
        value that would break the request."""
        fields = item.fields()
        url = self.url.fill(fields, _url_piece)
        headers = []
        for name, value in self.headers:
            text = value.fill(fields, _same)
            if any(c in text for c in "\r\n\0"):
                raise TargetError(f"Template: header {name!r} would hold a line break")
            headers.append((name, text))
        body = self.body.fill(fields, _same).encode() if self.body is not None else None
        return url, headers, body


def call_name(method: str, url: str) -> str:
    """``GET /users/{id}``: the method and the URL's path and query as written (placeholders
    kept), without scheme and host; the whole URL when it has no path."""
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    path = rest[slash:] if slash >= 0 else "/"
    return f"{method} {path}"[:256]
