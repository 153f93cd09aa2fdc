"""The demo's RFP: the content library's first answers, and a customer's questionnaire taken
in by the same use cases as the upload page, so a newcomer's /rfps, its workspace and the
answer repository (/rfps/answers) show real content.

The questionnaire is a real public file (``questionnaires/``, its source and licence in the
MANIFEST.md beside it). Intake pre-fills what the library answers well (``suggested``, left
for the newcomer to confirm); the rep answers the questions of :data:`USE` with a library
item each, as the workspace's **Use** does (the item's use is counted), and legal approves,
which puts those answers in the repository. Nothing is made twice: an item or the RFP
already there is left alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store.blobs import BlobStore
from store.library import LibraryItem
from store.models import Account, User
from store.rfps import Rfp
from web.services import deals, library, rfps

FILE = Path(__file__).parent / "questionnaires" / \
    "alaska_ies_m2_submittal_forms_A-H_EARLIER_DRAFT.docx"
FILE_NAME = "Appendix 01 Submittal Forms A-H.docx"
"""Its name in the State's repository, as the rep would upload it."""
TITLE = "State of Alaska IES — submittal forms"
LIBRARY = [  # title, body, tags: what the company has answered before
    ("Company name", "Company name: Northwind Software, Inc.", ("company",)),
    ("Company address", "Address: Northwind Software, Inc., 100 Harbor Way, Suite 400, "
     "Seattle, WA 98101, USA", ("company",)),
    ("Tax ID", "Tax ID (federal Employer Identification Number): 12-3456789.",
     ("company", "tax")),
    ("Alaska business license number", "Our Alaska Business License # is 1234567, active "
     "and renewed every year.", ("licensing", "alaska")),
    ("Boycott of Israel certification", "True: the bidder certifies that it does not and "
     "will not participate in a boycott of Israel for the term of the contract.",
     ("certifications", "public sector")),
    ("Primary project manager", "Jordan Lee, PMP, Director of Delivery: the primary project "
     "manager for public-sector implementations.", ("delivery", "team")),
    ("Product manager approach", "Our product manager owns the backlog with the State's "
     "product owner: two-week sprints, a public roadmap, and every release demonstrated to "
     "users before it ships.", ("delivery", "agile", "submittal form")),
    ("Approach to user interface and user experience design", "User research with "
     "caseworkers and applicants first, then user interface prototypes tested every sprint; "
     "every screen meets WCAG 2.1 AA and the U.S. Web Design System patterns.",
     ("design", "accessibility", "submittal form")),
]

USE = {  # question (its location in the file) → the library item the rep answers it with
    "docx:t:1:r:0:c:1": "Company name",
    "docx:t:1:r:1:c:1": "Company address",
    "docx:t:1:r:2:c:1": "Tax ID",
    "docx:t:1:r:3:c:1": "Alaska business license number",
    "docx:t:5:r:17:c:2": "Boycott of Israel certification",
    "docx:t:12:r:0:c:0": "Approach to user interface and user experience design",
    "docx:t:13:r:0:c:0": "Product manager approach",
}


def _user(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise RuntimeError(f"no demo user {email}: seed the demo's records first")
    return user


def _library(session: Session, owner: User) -> dict[str, LibraryItem]:
    """The demo's items by title, made unless there."""
    have = {i.title: i for i in session.scalars(select(LibraryItem).where(
        LibraryItem.title.in_([title for title, _, _ in LIBRARY])))}
    for title, body, tags in LIBRARY:
        if title not in have:
            have[title] = library.create_item(session, owner,
                                              library.ItemFields(title, body, tags))
    return have


def seed_rfp_records(sessions: sessionmaker[Session], settings: Settings) -> None:
    """The library items, then the RFP, for a deal of its own, with answers confirmed and
    approved (blocking)."""
    with sessions() as s:
        rep, legal = _user(s, "rep@demo.test"), _user(s, "legal@demo.test")
        items = _library(s, legal)
        if s.scalar(select(Rfp.id).where(Rfp.title == TITLE)) is not None:
            return
        # The RFP is its own deal's first step: the deal sits at the rfp stage.
        account = s.scalars(select(Account).order_by(Account.id)).first()
        assert account is not None, "seed the demo's records first"
        deal = deals.create_deal(s, rep, deals.DealFields(account_id=account.id,
                                                          name=f"{account.name}: {TITLE}"[:200]))
        rfp = rfps.create_rfp(s, rep, FILE_NAME, FILE.read_bytes(), TITLE,
                              blobs=BlobStore(settings.blob_dir),
                              max_mb=rfps.limit_mb(settings), deal_id=deal.id)
        chosen = [(q.id, items[USE[q.location]]) for q in rfp.questions if q.location in USE]
        for qid, item in chosen:
            rfps.answer(s, rep, rfp.id, qid, item.body, item.id)
        rfps.approve_answers(s, legal, rfp.id)


async def seed_rfp(sessions: sessionmaker[Session], client: Client,
                   settings: Settings) -> None:
    """:func:`seed_rfp_records` as a demo step (it runs no workflow, so ``client`` is unused),
    on a worker thread: intake reads the file and ranks suggestions."""
    await asyncio.to_thread(seed_rfp_records, sessions, settings)
