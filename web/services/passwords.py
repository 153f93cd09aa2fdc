"""Password hashes (argon2id).

Hashing and verifying cost a tenth to a quarter of a second of one core each and block: call
them on a worker thread, never on the event loop. At most half the machine's cores hash at
once (one on a 2-core machine): a burst of logins then queues for its turn instead of taking
every core from the event loop and the store's queries. (A burst of 20 wrong passwords with
one hash per core at once pushed static files' p95 to about 300 ms on a loaded 2-core machine.)
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from web.errors import Invalid

MIN_LENGTH = 8
CORES = max(1, (os.cpu_count() or 2) // 2)
"""How many hashes run at once in this process."""
_hasher = PasswordHasher()
_cores = threading.BoundedSemaphore(CORES)


@contextlib.contextmanager
def hashing_core() -> Iterator[None]:
    """Hold one of the hashing cores (wait for one) while checking passwords."""
    with _cores:
        yield


def hash_password(password: str) -> str:
    with hashing_core():
        return _hasher.hash(password)


def hash_many(passwords: list[str]) -> list[str]:
    """Hash a batch on every core at once, each with its own salt: for work outside the web
    process (seeding demo users), where there is no event loop to keep a core for."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(_hasher.hash, passwords))


@functools.cache
def _dummy_hash() -> str:
    # Made by the first unknown email's check, inside its hashing core (so not through
    # hash_password, which would wait for a second core).
    return _hasher.hash("not-a-real-password")


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; hold :func:`hashing_core` while calling it. With no hash
    (an unknown email) it checks a dummy one, so an unknown email takes as long as a wrong
    password."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) \
            and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def check_new_password(password: str, again: str, *, field: str = "new_password") -> None:
    if len(password) < MIN_LENGTH:
        raise Invalid(f"the new password needs at least {MIN_LENGTH} characters", field=field)
    if len(password) > 1000:
        raise Invalid("the new password is too long: use at most 1,000 characters", field=field)
    if password != again:
        raise Invalid("the two new passwords differ: type the same one twice",
                      field=f"{field}_again")
