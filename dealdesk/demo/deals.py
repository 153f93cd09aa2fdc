"""Demo: deals in the stages the other demo steps don't reach, each made through the real use
cases so its DealWorkflow moves it there: a new deal at intake, one whose contract is out for
signature (signing), one whose customer declined the envelope (back to contract, for a
second envelope), and one marked lost with its reason. The other steps leave deals at quote
(the unsubmitted Wayne quote), approval (the submitted quotes), proposal (Globex's proposal
in review) and won (the Hooli hub and the renewals' quotes)."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.demo.contract import contract_pdf
from dealdesk.settings import Settings
from store.blobs import BlobStore
from store.db import write_lock
from store.deals import Deal
from store.models import Account, EnvelopeRecipient, User
from web.services import deals
from web.services.envelopes import EnvelopeIn, RecipientIn, create_envelope, decline
from web.services.quotes import QuoteFields, create_quote
from workflows.envelope_messages import Client as ClientInfo

INTAKE = "Wayne Enterprises — campus security"
SIGNING = "Acme Corporation — order form 2027"
CONTRACT = "Initech — mutual NDA"
LOST = "Stark Industries — EMEA pilot"
LOST_REASON = "Chose a competitor on price; revisit at their next budget cycle."
SIGNERS = {SIGNING: ("Wile E. Coyote", "wile@acme.example"),
           CONTRACT: ("Bill Lumbergh", "bill@initech.example")}


def _deal(s: Session, rep: User, account: str, name: str, days_to_close: int) -> Deal:
    write_lock(s)
    acc = s.scalars(select(Account).where(Account.name == account)).one()
    deal = deals.create_deal(s, rep, deals.DealFields(
        account_id=acc.id, name=name, currency="USD",
        expected_close=dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days_to_close)))
    s.commit()
    return deal


async def seed_deals(sessions: sessionmaker[Session], client: Client,
                     settings: Settings) -> None:
    blobs = BlobStore(settings.blob_dir)
    with sessions() as s:
        if s.scalar(select(Deal.id).where(Deal.name == INTAKE)) is not None:
            return
        rep = s.scalars(select(User).where(User.email == "rep@demo.test")).one()
        cfo = s.scalars(select(User).where(User.email == "cfo@demo.test")).one()
        _deal(s, rep, "Wayne Enterprises", INTAKE, 75)
        for name, account, days in ((SIGNING, "Acme Corporation", 14),
                                    (CONTRACT, "Initech", 30)):
            deal = _deal(s, rep, account, name, days)
            signer, email = SIGNERS[name]
            env = await create_envelope(s, client, settings, blobs, rep, EnvelopeIn(
                title=name, document_name=f"{name}.pdf",
                document=contract_pdf(account, ["customer", "countersign"]),
                recipients=[RecipientIn(signer, email, routing_order=1, anchor="customer"),
                            RecipientIn(cfo.name, cfo.email, routing_order=2, user_id=cfo.id,
                                        anchor="countersign")],
                message="Please review and sign.", deal_id=deal.id))
            if name == CONTRACT:  # declined: the deal is back at contract for a new envelope
                recipient = await _invited(sessions, env.id, email)
                await decline(client, env, recipient, "Our counsel wants a two-year term; "
                              "please send a revised NDA.",
                              ClientInfo(ip="198.51.100.40", user_agent="demo seed"))
        write_lock(s)
        stark = s.scalars(select(Account).where(Account.name == "Stark Industries")).one()
        quote = create_quote(s, rep, QuoteFields(
            account_id=stark.id, title=LOST, currency="USD", list_amount=6_000_000,
            net_amount=5_400_000, cost_amount=2_000_000, term_months=12))
        s.commit()
        assert quote.deal_id is not None
        await deals.close_lost(s, client, rep, quote.deal_id, LOST_REASON,
                               task_queue=settings.task_queue, prefix=settings.workflow_prefix)


async def _invited(sessions: sessionmaker[Session], envelope_id: int,
                   email: str) -> EnvelopeRecipient:
    for _ in range(300):
        with sessions() as s:
            r = s.scalar(select(EnvelopeRecipient).where(
                EnvelopeRecipient.envelope_id == envelope_id, EnvelopeRecipient.email == email,
                EnvelopeRecipient.status == "sent"))
            if r is not None:
                s.expunge(r)
                return r
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{email} was never invited; is the worker running?")
