"""The RFP workspace on PostgreSQL: the same upload, suggestion, answer, approve, download and
promote scenario as on SQLite (tests/test_rfps.py), plus parallel answers."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.settings import Settings
from tests.support import serve
from tests.test_rfp_files import ALASKA_FORMS
from tests.test_rfps import docx_scenario, upload
from tests.web_support import seed_people, token_client

pytestmark = pytest.mark.postgres


async def test_rfp_workspace_on_postgres(settings: Settings,
                                         sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        assert s.get_bind().dialect.name == "postgresql"
    people = seed_people(sessions)
    async with serve(settings) as url:
        await docx_scenario(url, people, sessions)
        rep = await token_client(url, people.rep)
        rfp_id = (await upload(rep, "forms.docx", ALASKA_FORMS)).json()["id"]
        qids = [q["id"] for q in (await rep.get(f"/api/v1/rfps/{rfp_id}")).json()["questions"]]
        results = await asyncio.gather(*(
            rep.put(f"/api/v1/rfps/{rfp_id}/questions/{qid}/answer", json={"text": f"a{n}"})
            for n, qid in enumerate(qids[:10])))
        assert [r.status_code for r in results] == [200] * 10
        await rep.aclose()
