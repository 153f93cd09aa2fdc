"""The people and accounts the customer-health tests share: a CSM who owns Globex's health,
the deal desk, an admin, an auditor, a sales manager, a rep, and a second account."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.support import make_account, make_user


@pytest.fixture
def cast(sessions: sessionmaker[Session]) -> dict[str, object]:
    with sessions.begin() as s:
        people = {"csm": make_user(s, "Cass Csm", "csm"),
                  "desk": make_user(s, "Dee Desk", "deal_desk"),
                  "admin": make_user(s, "Ad Min", "admin"),
                  "auditor": make_user(s, "Aud Itor", "auditor"),
                  "manager": make_user(s, "Mo Manager", "sales_manager"),
                  "rep": make_user(s, "Rae Rep", "rep")}
        acc = make_account(s, "Globex <Health>")
        acc.csm_id = people["csm"].id
        other = make_account(s, "Initech")
        s.flush()
        cast: dict[str, object] = {**people, "account_id": acc.id, "other_id": other.id}
        s.expunge_all()
    return cast
