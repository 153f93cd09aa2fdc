"""An auditor's reads are on the record too: each page an auditor opens and each API call
they make writes an ``auditor.viewed`` audit row naming what was looked at. A page's own
background refreshes (htmx requests: a live envelope every 2 s, the inbox badge) are not new
views and write nothing.

The row names the record the path is about (``/deals/12/history`` → ``deal:12``), so it shows
in that record's own history; a path about no one record (the audit log, a list) is filed
under the auditor (``user:7``).
"""

from __future__ import annotations

import re
import uuid

from sqlalchemy.orm import Session

from store import audit
from store.db import write_lock
from store.models import User
from store.who import Who

AUDITOR = "auditor"
_RECORDS = {"deals": "deal", "quotes": "quote", "envelopes": "envelope",
            "proposals": "proposal", "subscriptions": "subscription", "rfps": "rfp",
            "accounts": "account", "invoices": "invoice", "contracts": "contract"}
_ABOUT = re.compile(r"^(?:/api/v1)?/(" + "|".join(_RECORDS) + r")/([0-9]{1,19})(?:/|$)")
MAX_QUERY = 500


def watched(user: User, method: str, htmx: bool) -> bool:
    return AUDITOR in user.roles and method in ("GET", "HEAD") and not htmx


def record(session: Session, user: User, path: str, query: str) -> None:
    """One ``auditor.viewed`` row (committed by the caller)."""
    about = _ABOUT.match(path)
    name = audit.entity(_RECORDS[about[1]], about[2]) if about else audit.entity("user", user.id)
    write_lock(session)
    audit.append(session, event_key=f"view-{uuid.uuid4().hex}", actor=Who.user(user),
                 action="auditor.viewed", entity=name,
                 data={"path": path[:500], "query": query[:MAX_QUERY]})
