"""The errors a person can act on. Every one carries an HTTP status and a message naming
the problem; the app renders them as JSON for the API and as a page or fragment for the UI.

    AppError
    ├── Unauthenticated  401  not signed in, or the session or API token is over
    ├── NotFound         404  the thing named does not exist (or is not yours to see)
    ├── Forbidden        403  you may not do this
    ├── Conflict         409  the state moved on (already decided, chain ended, stale version)
    ├── Gone             410  it existed but is over (an expired link, an ended envelope)
    ├── TooLarge         413  an upload over the limit
    ├── Invalid          422  the input is wrong; ``field`` names where
    ├── TooManyTries     429  too many wrong codes or passwords; wait ``retry_after`` seconds
    └── Unavailable      503  a backing service (Temporal) cannot be reached; try again

The API answers each of them as :class:`ErrorOut`, and so does a request that breaks the
OpenAPI schema (422) or that the framework refuses (400, 404 for an unknown path, 405).
:data:`API_ERRORS` declares that body for every error status on the API routers, in place of
FastAPI's own ``HTTPValidationError`` (which the app never sends).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AppError(Exception):
    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Unauthenticated(AppError):
    status = 401


class NotFound(AppError):
    status = 404


class Forbidden(AppError):
    status = 403


class Conflict(AppError):
    status = 409


class Gone(AppError):
    status = 410


class TooLarge(AppError):
    status = 413


class Invalid(AppError):
    status = 422


class TooManyTries(AppError):
    status = 429

    def __init__(self, message: str, *, field: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after
        """Seconds to wait, sent as ``Retry-After``."""


class Unavailable(AppError):
    status = 503


class ErrorOut(BaseModel):
    """Every API error's body."""

    detail: str = Field(description="what is wrong and how to fix it")
    field: str | None = Field(None, description="the parameter or field at fault, if one is")


_STATUSES = (
    (400, "The request could not be read (e.g. a malformed multipart body)"),
    (401, "No valid API token: get one from POST /api/v1/auth/token"),
    (403, "Your roles do not allow this"),
    (404, "It does not exist, or is not yours to see"),
    (409, "The state moved on (already decided, not your turn, stale version)"),
    (410, "It existed but is over (an ended envelope)"),
    (413, "An upload over the limit"),
    (422, "The input is wrong: `field` names where"),
    (429, "Too many tries: wait and try again"),
    (503, "A backing service is unreachable: try again in a moment"),
)
API_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in _STATUSES}
"""``responses=`` of the API routers."""
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    for status, description in _STATUSES}
"""The same, for a route whose own answer is not JSON (a CSV): with ``model``, FastAPI would
state the errors in the route's media type."""
