"""Upload limits checked from Content-Length, before anything parses the body.

FastAPI parses a route's ``File()`` and ``Form()`` parameters before any dependency runs, so
a page whose upload must be refused early takes its form through ``web.deps.FormDep``
instead and puts :func:`limit_upload`'s dependency first among its decorator's
``dependencies``: it runs ahead of the login and CSRF checks, which read the form. The
server enforces Content-Length framing, so the header bounds the body; reading the file at
most one byte over the limit then catches what the form's overhead let through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from dealdesk.settings import Settings
from web.deps import SettingsDep
from web.errors import TooLarge

MB = 1024 * 1024
"""``max_upload_mb``'s megabyte."""
FORM_OVERHEAD = 256 * 1024  # the other fields, multipart boundaries and headers


def limit_upload(limit_mb: Callable[[Settings], int], *, what: str,
                 field: str) -> Callable[[Request, Settings], Awaitable[None]]:
    """A dependency refusing (413, naming ``field``) a body longer than ``limit_mb`` MB of
    ``what`` and the form around it."""

    async def check(request: Request, settings: SettingsDep) -> None:
        length = request.headers.get("content-length", "")
        limit = limit_mb(settings)
        if length.isdigit() and int(length) > limit * MB + FORM_OVERHEAD:
            raise TooLarge(f"the upload is {int(length) / MB:.1f} MB; {what} may be up to "
                           f"{limit} MB: send a smaller file", field=field)

    return check
