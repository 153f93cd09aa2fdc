"""Files the app hands out: CSV answers, and ``Content-Disposition`` headers that are safe
whatever name a file came in with.

A download's name is often an uploader's text. :func:`content_disposition` runs it through
:func:`documents.filenames.safe_filename` (no path, no control or bidi characters, bounded) and
writes RFC 6266's two forms: ``filename*=UTF-8''…`` (percent-encoded, the name as it is) and
an ASCII ``filename="…"`` fallback for clients that don't read the first.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal
from urllib.parse import quote

from fastapi.responses import PlainTextResponse

from documents.filenames import safe_filename

_NOT_PLAIN = re.compile(r"[^A-Za-z0-9 ._()\-]+")


class CsvResponse(PlainTextResponse):
    """``text/csv`` (so the OpenAPI document says what the answer is)."""

    media_type = "text/csv"


def content_disposition(name: str, disposition: Literal["attachment", "inline"] = "attachment",
                        default: str = "download") -> str:
    """The header for a file called ``name``: RFC 6266, UTF-8 name and ASCII fallback."""
    safe = safe_filename(name, default)
    ascii_name = unicodedata.normalize("NFKD", safe).encode("ascii", "ignore").decode()
    ascii_name = _NOT_PLAIN.sub("_", ascii_name).strip(" ._") or default
    return (f'{disposition}; filename="{ascii_name}"; '
            f"filename*=UTF-8''{quote(safe, safe='')}")


def text_body(*media_types: str, description: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its raw body as text (a CSV, a YAML file)."""
    return {"requestBody": {"required": True, "description": description, "content": {
        media: {"schema": {"type": "string"}} for media in media_types}}}
