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
"""

from __future__ import annotations


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
