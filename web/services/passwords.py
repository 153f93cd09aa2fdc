"""Password hashes (argon2id).

Hashing and verifying cost about a tenth of a second of CPU each and block: call them on a
worker thread, never on the event loop. No more run at once than the machine has cores: a
burst of logins then waits its turn for a core instead of crowding out every other thread
(the event loop, the store's queries) with a dozen hashes at once.
"""

from __future__ import annotations

import functools
import os
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from web.errors import Invalid

MIN_LENGTH = 8
_hasher = PasswordHasher()
_cores = threading.BoundedSemaphore(os.cpu_count() or 2)


def hash_password(password: str) -> str:
    with _cores:
        return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not-a-real-password")


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash (an unknown email) it checks a dummy one,
    so an unknown email takes as long as a wrong password."""
    checked = password_hash or _dummy_hash()
    with _cores:
        try:
            matches = _hasher.verify(checked, password)
        except (VerificationError, InvalidHashError):
            return False
    return matches and password_hash is not None


def check_new_password(password: str, again: str, *, field: str = "new_password") -> None:
    if len(password) < MIN_LENGTH:
        raise Invalid(f"the new password needs at least {MIN_LENGTH} characters", field=field)
    if len(password) > 1000:
        raise Invalid("the new password is too long: use at most 1,000 characters", field=field)
    if password != again:
        raise Invalid("the two new passwords differ: type the same one twice",
                      field=f"{field}_again")
