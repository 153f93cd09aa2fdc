"""The library's search on PostgreSQL (tsvector, ts_rank_cd, ts_headline): the same
scenario as on SQLite (tests/library_support.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.library_support import search_scenario
from tests.support import serve
from tests.web_support import seed_people, token_client

pytestmark = pytest.mark.postgres


async def test_search_on_postgres(settings, sessions: sessionmaker[Session]) -> None:  # type: ignore[no-untyped-def]
    with sessions() as s:
        assert s.get_bind().dialect.name == "postgresql"
    people = seed_people(sessions)
    async with serve(settings) as url:
        rep = await token_client(url, people.rep)
        await search_scenario(rep)
        r = await rep.get("/api/v1/library/suggest", params={"q": "Do you support SAML?"})
        assert r.status_code == 200 and r.json()[0]["title"] == "Single sign-on (SSO)"
        await rep.aclose()
