"""Who did something, as the audit log records it: one small value for every writer.

    Who.user(user)                          a signed-in person (anything with id, email, name)
    Who.system("worker:record_outcome")     a process acting on its own
    Who.recipient(name, email[, user_id])   an envelope's signer, approver or cc

The audit row stores the fields in their own columns and a label computed from them
(:attr:`Who.label`), and its hash covers both. Callers that still hold a plain string (the
labels written before the structured actor existed, or code not moved yet) go through
:meth:`Who.parse`: an email or ``Name <email>`` becomes a user (``store.audit.append`` fills
in the id and name from the users table), ``Name (user 7)`` a user by id, anything else a
system process of that name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["user", "system", "recipient"]
KINDS: tuple[Kind, ...] = ("user", "system", "recipient")
_ANGLE = re.compile(r"^(?P<name>.*?)\s*<(?P<email>[^<>\s]+@[^<>\s]+)>$")
_USER_ID = re.compile(r"^(?P<name>.*?)\s*\(user (?P<id>\d+)\)$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class Person(Protocol):
    """A user row or the web tier's Viewer: whatever carries these three."""

    @property
    def id(self) -> int: ...
    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Who:
    kind: Kind
    user_id: int | None = None
    """The internal user, when there is one (a recipient may be a countersigning user)."""
    email: str = ""
    name: str = ""
    process: str = ""
    """For ``system``: what acted, e.g. ``worker:seal_envelope``, ``workflow:approval_chain``."""

    @classmethod
    def user(cls, user: Person) -> Who:
        return cls("user", user.id, user.email, user.name)

    @classmethod
    def system(cls, process: str) -> Who:
        return cls("system", process=process)

    @classmethod
    def recipient(cls, name: str, email: str, user_id: int | None = None) -> Who:
        return cls("recipient", user_id, email, name)

    @classmethod
    def parse(cls, label: str) -> Who:
        """A plain-string actor, read as well as it can be (see the module docstring)."""
        text = label.strip()
        if m := _ANGLE.match(text):
            return cls("user", email=m["email"], name=m["name"].strip())
        if m := _USER_ID.match(text):
            return cls("user", int(m["id"]), name=m["name"].strip())
        if _EMAIL.match(text):
            return cls("user", email=text)
        return cls.system("" if text == "system" else text)

    @property
    def label(self) -> str:
        """The one text form, kept in the ``actor`` column: ``Name <email>`` for people,
        ``system:process`` for processes."""
        if self.kind == "system":
            return f"system:{self.process}" if self.process else "system"
        if self.email:
            return f"{self.name} <{self.email}>" if self.name else self.email
        return f"{self.name} (user {self.user_id})" if self.user_id is not None else self.name

    @property
    def display(self) -> str:
        """As pages show it: ``Name · email``, or ``System · process``."""
        if self.kind == "system":
            return f"System · {self.process}" if self.process else "System"
        parts = [p for p in (self.name, self.email) if p]
        shown = " · ".join(parts) or (f"user {self.user_id}" if self.user_id else "someone")
        return f"{shown} (signer)" if self.kind == "recipient" else shown

    def hashed(self) -> dict[str, Any]:
        """What the audit hash covers of it."""
        return {"kind": self.kind, "user_id": self.user_id, "email": self.email,
                "name": self.name, "process": self.process}


def is_system_label(label: str) -> bool:
    """Whether an actor label (old or new) names a process rather than a person."""
    return label == "system" or label.startswith("system:")
