"""Demo: a proposal for the Globex quote, put together from content-library sections, the
quote's pricing and a section written for it, and submitted: it waits for the deal desk
(the discount) and then legal (our own wording, security commitments) under the demo
policy's proposal rules."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store.blobs import BlobStore
from store.library import LibraryItem
from store.models import Quote, User
from store.proposals import Proposal
from web.services import library, proposals

TITLE = "Globex analytics expansion — proposal"
QUOTE = "Globex analytics expansion"
SECTIONS = [  # title, kind, tags, body: the library's standard proposal sections
    ("About Northwind Software", "section", ("company",),
     "Northwind Software builds analytics for mid-market finance teams. Since 2009 we have "
     "served more than 400 customers in 14 countries.\n\n- 98% renewal rate\n- 24/7 support "
     "in English, German and Spanish"),
    ("Security and compliance", "section", ("security",),
     "Customer data is encrypted at rest (AES-256) and in transit (TLS 1.3). We hold SOC 2 "
     "Type II and ISO 27001 certifications, renewed every year, and run an annual "
     "third-party penetration test."),
    ("Customer story: Initech", "case_study", ("case study", "finance"),
     "Initech consolidated twelve spreadsheets into one analytics workspace and cut its "
     "month-end close from nine days to five."),
]
OWN_TEXT = ("Implementation plan", "Week 1–2: connect the data warehouse and single sign-on."
            "\n\nWeek 3–6: build the finance dashboards with Globex's controllers.\n\n"
            "- Go-live review in week 7\n- Hypercare for 30 days")


def _items(s: Session, owner: User) -> dict[str, LibraryItem]:
    have = {i.title: i for i in s.scalars(select(LibraryItem).where(
        LibraryItem.title.in_([t for t, *_ in SECTIONS])))}
    for title, kind, tags, body in SECTIONS:
        if title not in have:
            have[title] = library.create_item(s, owner, library.ItemFields(
                title, body, tags, kind))
    return have


def _draft(sessions: sessionmaker[Session]) -> tuple[User, int] | None:
    """The draft with its sections (committed), unless the demo already has it."""
    with sessions() as s:
        rep = s.scalars(select(User).where(User.email == "rep@demo.test")).one()
        legal = s.scalars(select(User).where(User.email == "legal@demo.test")).one()
        items = _items(s, legal)
        s.commit()
        if s.scalar(select(Proposal.id).where(Proposal.title == TITLE)) is not None:
            return None
        quote = s.scalars(select(Quote).where(Quote.title == QUOTE)).one()
        p = proposals.create_proposal(s, rep, proposals.ProposalFields(
            title=TITLE, account_id=quote.account_id, quote_id=quote.id,
            customer_signer="Hank Scorpio", customer_signer_title="Chief Financial Officer"))
        sections = [proposals.SectionIn(kind="library", item_id=items[t].id)
                    for t, *_ in SECTIONS[:2]]
        sections += [proposals.SectionIn(kind="text", title=OWN_TEXT[0], body=OWN_TEXT[1]),
                     proposals.SectionIn(kind="pricing"), proposals.SectionIn(kind="bom"),
                     proposals.SectionIn(kind="library", item_id=items[SECTIONS[2][0]].id)]
        proposals.set_sections(s, rep, p.id, sections)
        s.commit()
        s.expunge(rep)
        return rep, p.id


async def seed_proposal(sessions: sessionmaker[Session], client: Client,
                        settings: Settings) -> None:
    made = await asyncio.to_thread(_draft, sessions)
    if made is None:
        return
    rep, proposal_id = made
    with sessions() as s:
        await proposals.submit(s, client, rep, proposal_id, blobs=BlobStore(settings.blob_dir),
                               org_name=settings.org_name, task_queue=settings.task_queue,
                               prefix=settings.workflow_prefix)
