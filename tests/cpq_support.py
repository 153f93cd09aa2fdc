"""The cast of the configure-price-quote tests: the demo policy and catalog, the users they
name, and the accounts the catalog's price books belong to."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store.models import User
from tests.support import load_policy, make_account, make_user
from web.services.catalog import save_catalog

DEMO = Path(__file__).resolve().parents[1] / "dealdesk" / "demo"


class Cast:
    rep: User
    manager: User
    desk: User
    admin: User
    account: int
    stark: int
    globex: int


@pytest.fixture
def cast(sessions: sessionmaker[Session]) -> Cast:
    c = Cast()
    with sessions.begin() as s:
        c.rep = make_user(s, "Rae Rep", "rep")
        c.manager = make_user(s, "Mo Manager", "sales_manager")
        c.desk = make_user(s, "Dee Desk", "deal_desk")
        c.admin = make_user(s, "Ad Min", "admin")
        make_user(s, "Casey Chen", "cfo", email="cfo@demo.test")  # named in the demo policy
        c.account = make_account(s, "Initech").id
        c.stark = make_account(s, "Stark Industries").id
        globex = make_account(s, "Globex")
        globex.region = "EU"
        c.globex = globex.id
        load_policy(s, (DEMO / "policy.yaml").read_text())
        save_catalog(s, (DEMO / "catalog.yaml").read_text(), None)
        s.expunge_all()
    return c


