"""The demo's RFP: a newcomer's /rfps, workspace and answer repository show real content, made
through the upload page's use cases, and seeding again makes nothing twice."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.demo import STEPS, seed_records
from dealdesk.demo.rfp import FILE, LIBRARY, TITLE, USE, seed_rfp_records
from dealdesk.settings import Settings
from store.library import LibraryItem
from store.models import AuditEvent, User
from store.rfps import Rfp, RfpQuestion
from tests.test_rfp_files import ALASKA_FORMS
from web.paging import Listing
from web.services import rfp_answers, rfps


def _counts(sessions: sessionmaker[Session], settings: Settings) -> list[int]:
    with sessions() as s:
        rows = [s.scalar(select(func.count()).select_from(m)) or 0
                for m in (Rfp, RfpQuestion, LibraryItem, AuditEvent)]
    return [*rows, sum(1 for p in settings.blob_dir.rglob("*") if p.is_file())]


def test_the_demo_seeds_an_rfp_answered_from_the_library_once(
        sessions: sessionmaker[Session], settings: Settings) -> None:
    assert FILE.read_bytes() == ALASKA_FORMS  # the packaged copy of the test fixture
    assert "RFP answered from the content library" in [step.what for step in STEPS]
    assert seed_records(sessions)
    seed_rfp_records(sessions, settings)
    with sessions() as s:
        rep = s.scalars(select(User).where(User.email == "rep@demo.test")).one()
        rfp = s.scalars(select(Rfp).where(Rfp.title == TITLE)).one()
        assert (rfp.status, rfp.owner_id, rfp.kind) == ("approved", rep.id, "docx")
        items = {i.id: i for i in s.scalars(select(LibraryItem))}
        assert sorted(i.title for i in items.values()) == sorted(t for t, _, _ in LIBRARY)
        approved = {q.location: q for q in rfp.questions if q.status == "approved"}
        assert set(approved) == set(USE)
        suggested = rfps.suggestions(s, rep, rfp)
        for location, q in approved.items():
            item = items[q.library_item_id or 0]
            assert (item.title, q.answer) == (USE[location], item.body)
            assert item.id in [found.item.id for found in suggested[q.id]], location
        # Intake pre-filled what the library answers well; one such is left to confirm.
        assert any(q.status == "suggested" for q in rfp.questions)
        assert rfps.progress(rfp).answered == len(USE) < len(rfp.questions)
        hits = rfp_answers.search(s, rep, Listing("alaska license"))
        assert [h.question.text for h in hits.items] == ["Alaska Business License #:"]
        assert len(rfp_answers.search(s, rep, Listing()).items) == len(USE)

    before = _counts(sessions, settings)
    seed_rfp_records(sessions, settings)
    assert _counts(sessions, settings) == before
