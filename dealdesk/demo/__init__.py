"""Demo data: users for every role, accounts, the standard policy and catalog, quotes in
several inboxes (two built from the catalog, one of them won and invoiced), envelopes out
for signature, a content library with an RFP answered from it (``rfp.py``), and an account
that just dropped to critical health with its CSM's alert (``health.py``), and two
subscriptions renewing within 90 days, one of them at risk (``renewals.py``); with deals
in every stage, the last ones made by ``deals.py``."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.demo.contract import contract_pdf
from dealdesk.demo.deals import seed_deals
from dealdesk.demo.health import seed_health
from dealdesk.demo.proposal import seed_proposal
from dealdesk.demo.renewals import seed_renewals
from dealdesk.demo.rfp import seed_rfp
from dealdesk.settings import Settings
from dealdesk.tools import missing
from store.blobs import BlobStore
from store.db import write_lock
from store.models import Account, ApprovalTask, EnvelopeRecipient, Quote, User, UserRole
from web.services.catalog import save_catalog
from web.services.configurator import add_items, parse_selection
from web.services.envelopes import EnvelopeIn, RecipientIn, create_envelope, sign
from web.services.invoices import mark_won
from web.services.passwords import hash_many
from web.services.policies import save_policy
from web.services.quotes import QuoteFields, create_quote, submit_quote
from web.services.tasks import decide
from workflows.envelope_messages import Client as ClientInfo

PASSWORD = "demo"  # noqa: S105 - the documented demo password
USERS = [  # email, name, roles, manager
    ("cfo@demo.test", "Casey Chen", ["cfo"], None),
    ("manager@demo.test", "Morgan Miller", ["sales_manager"], "cfo@demo.test"),
    ("manager2@demo.test", "Sam Okafor", ["sales_manager"], "cfo@demo.test"),
    ("rep@demo.test", "Riley Rivera", ["rep"], "manager@demo.test"),
    ("dealdesk@demo.test", "Dana Desai", ["deal_desk"], "cfo@demo.test"),
    ("finance@demo.test", "Frances Fischer", ["finance"], "cfo@demo.test"),
    ("legal@demo.test", "Lee Larsen", ["legal"], "cfo@demo.test"),
    ("auditor@demo.test", "Avery Adams", ["auditor"], None),
    ("admin@demo.test", "Alex Admin", ["admin"], None),
    ("csm@demo.test", "Jordan Reyes", ["csm"], "cfo@demo.test"),
]
ACCOUNTS = ["Acme Corporation", "Globex", "Initech", "Umbrella Health", "Stark Industries",
            "Hooli", "Wayne Enterprises"]
# title, account, list, net, cost, term, non-standard terms, submit, approve first step
QUOTES = [
    ("Acme platform renewal", "Acme Corporation", 120_000, 102_000, 40_000, 12, [], True, False),
    ("Globex analytics expansion", "Globex", 200_000, 150_000, 70_000, 24, [], True, False),
    ("Initech data migration", "Initech", 80_000, 70_000, 30_000, 12, ["net 60"], True, False),
    ("Umbrella enterprise licence", "Umbrella Health", 320_000, 310_000, 90_000, 36, [], True,
     False),
    ("Stark global rollout", "Stark Industries", 1_400_000, 1_050_000, 500_000, 36,
     ["uncapped liability"], True, True),
    ("Hooli pilot", "Hooli", 40_000, 39_000, 12_000, 6, ["custom SLA"], True, False),
    ("Wayne security bundle", "Wayne Enterprises", 90_000, 72_000, 30_000, 12, [], False, False),
]


def seed_records(sessions: sessionmaker[Session]) -> bool:
    """Users, accounts and the policy; False when the demo was seeded already."""
    with sessions() as s:
        if s.scalar(select(User).where(User.email == "rep@demo.test")):
            return False
        # Each user's hash has its own salt (one shared hash would tell anyone who reads the
        # table that they share a password); hashed in parallel, before the write lock.
        hashes = hash_many([PASSWORD] * len(USERS))
        write_lock(s)
        if s.scalar(select(User).where(User.email == "rep@demo.test")):
            return False
        by_email: dict[str, User] = {}
        for (email, name, roles, manager), password_hash in zip(USERS, hashes, strict=True):
            u = User(email=email, name=name, password_hash=password_hash,
                     manager_id=by_email[manager].id if manager else None)
            u.role_rows = [UserRole(role=r) for r in roles]
            s.add(u)
            s.flush()
            by_email[email] = u
        for name in ACCOUNTS:
            s.add(Account(name=name, region="NA" if name != "Globex" else "EU"))
        source = (Path(__file__).parent / "policy.yaml").read_text()
        save_policy(s, source, by_email["admin@demo.test"])
        s.flush()
        save_catalog(s, (Path(__file__).parent / "catalog.yaml").read_text(),
                     by_email["admin@demo.test"], note="demo catalog")
        s.commit()
    return True


async def seed_quotes(sessions: sessionmaker[Session], client: Client,
                      settings: Settings) -> None:
    with sessions() as s:
        rep = s.scalar(select(User).where(User.email == "rep@demo.test"))
        manager = s.scalar(select(User).where(User.email == "manager@demo.test"))
        assert rep and manager
        for title, account, lst, net, cost, term, terms, submit, approve in QUOTES:
            write_lock(s)
            acc = s.scalar(select(Account).where(Account.name == account))
            assert acc is not None
            quote = create_quote(s, rep, QuoteFields(
                account_id=acc.id, title=title, currency="USD", list_amount=lst * 100,
                net_amount=net * 100, cost_amount=cost * 100, term_months=term,
                nonstandard_terms=terms))
            s.commit()
            if submit:
                await submit_quote(s, client, quote, rep, task_queue=settings.task_queue,
                                   prefix=settings.workflow_prefix)
                s.commit()
            if approve:
                task_id = await _first_open_task(sessions, quote.id)
                await decide(s, client, task_id, manager, "approve",
                             "Strategic account; discount justified by volume.")


async def seed_configured(sessions: sessionmaker[Session], client: Client,
                          settings: Settings) -> None:
    """Two quotes built from the catalog: a workstation fleet at 25% off, waiting for the
    sales manager and the deal desk; an analytics hub at list price, approved at once (no
    rule needs anyone), won and invoiced."""
    with sessions() as s:
        rep = s.scalar(select(User).where(User.email == "rep@demo.test"))
        assert rep
        for title, account, selection, discount, billing in (
                ("Initech engineering fleet", "Initech",
                 {"sku": "WS-9", "quantity": 12, "options": [
                     {"sku": "WS-BODY", "options": [{"sku": "CPU-32"}, {"sku": "GPU-PRO"}]},
                     {"sku": "SVC-ONSITE"}]}, "25", "one_time"),
                ("Hooli analytics hub", "Hooli",
                 {"sku": "ANL-HUB", "options": [{"sku": "ANL-SEAT", "quantity": 40}]}, "0",
                 "annual")):
            write_lock(s)
            acc = s.scalar(select(Account).where(Account.name == account))
            assert acc is not None
            quote = create_quote(s, rep, QuoteFields(
                account_id=acc.id, title=title, currency="USD", term_months=36,
                billing=billing))  # type: ignore[arg-type]
            add_items(s, quote, rep, [(parse_selection(selection), Decimal(discount))])
            s.commit()
            await submit_quote(s, client, quote, rep, task_queue=settings.task_queue,
                               prefix=settings.workflow_prefix)
            s.commit()
        hub = s.scalar(select(Quote).where(Quote.title == "Hooli analytics hub"))
        assert hub is not None
        s.commit()
        await _approved(sessions, hub.id)
        await mark_won(s, client, hub, rep, task_queue=settings.task_queue,
                       org_name=settings.org_name, prefix=settings.workflow_prefix)


async def seed_envelopes(sessions: sessionmaker[Session], client: Client,
                         settings: Settings) -> None:
    """Two envelopes: one waiting for both customer signers, one where the first customer
    has signed and the other still has to (the CFO countersigns after both)."""
    blobs = BlobStore(settings.blob_dir)
    with sessions() as s:
        rep = s.scalar(select(User).where(User.email == "rep@demo.test"))
        cfo = s.scalar(select(User).where(User.email == "cfo@demo.test"))
        assert rep and cfo
        for customer, people in (
                ("Stark Industries", [("Pepper Potts", "pepper@stark.example"),
                                      ("Happy Hogan", "happy@stark.example")]),
                ("Globex", [("Hank Scorpio", "hank@globex.example"),
                            ("Mindy Simmons", "mindy@globex.example")])):
            recipients = [RecipientIn(name, email, routing_order=1, anchor=f"customer{i}")
                          for i, (name, email) in enumerate(people, start=1)]
            recipients.append(RecipientIn(cfo.name, cfo.email, routing_order=2,
                                          user_id=cfo.id, anchor="countersign"))
            env = await create_envelope(s, client, settings, blobs, rep, EnvelopeIn(
                title=f"Master services agreement — {customer}",
                document_name=f"MSA {customer}.pdf",
                document=contract_pdf(customer, ["customer1", "customer2", "countersign"]),
                recipients=recipients, message="Please review and sign the MSA."))
            if customer == "Globex":
                signer = await _sent(sessions, env.id, people[0][1])
                await sign(client, env, signer, people[0][0],
                           ClientInfo(ip="198.51.100.23", user_agent="demo seed"))


async def _sent(sessions: sessionmaker[Session], envelope_id: int,
                email: str) -> EnvelopeRecipient:
    for _ in range(200):
        with sessions() as s:
            r = s.scalar(select(EnvelopeRecipient).where(
                EnvelopeRecipient.envelope_id == envelope_id, EnvelopeRecipient.email == email,
                EnvelopeRecipient.status == "sent"))
            if r is not None:
                s.expunge(r)
                return r
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{email} was never invited; is the worker running?")


async def _approved(sessions: sessionmaker[Session], quote_id: int) -> None:
    for _ in range(600):
        with sessions() as s:
            if s.scalar(select(Quote.status).where(Quote.id == quote_id)) == "approved":
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"quote {quote_id} was never approved; is the worker running?")


async def _first_open_task(sessions: sessionmaker[Session], quote_id: int) -> str:
    for _ in range(200):
        with sessions() as s:
            task_id = s.scalar(select(ApprovalTask.id).where(
                ApprovalTask.quote_id == quote_id, ApprovalTask.state == "open"))
        if task_id:
            return task_id
        await asyncio.sleep(0.05)
    raise RuntimeError(f"no task appeared for quote {quote_id}; is the worker running?")


@dataclass(frozen=True)
class DemoStep:
    """One part of the demo that runs workflows, and the tools it can't do without."""

    what: str
    """What it adds, as the skip notice names it."""
    run: Callable[[sessionmaker[Session], Client, Settings], Awaitable[None]]
    needs: tuple[str, ...] = ()
    """Names in dealdesk/tools.py's registry."""


STEPS = (
    DemoStep("quotes waiting for approval", seed_quotes),
    DemoStep("quotes built from the catalog", seed_configured),
    # The contract's signature fields go where its [[sign:…]] anchors are: pdftotext.
    DemoStep("envelopes out for signature", seed_envelopes, needs=("pdftotext",)),
    DemoStep("RFP answered from the content library", seed_rfp),
    DemoStep("proposal in review", seed_proposal),
    DemoStep("account health with a CSM alert", seed_health),
    # After the health step: Umbrella Health's renewal is at risk because it dropped.
    DemoStep("subscriptions renewing within 90 days", seed_renewals),
    # The stages the steps above don't reach: intake, signing, contract (a declined
    # envelope), lost. Its envelopes' signature fields need pdftotext too.
    DemoStep("deals at intake, signing, contract and lost", seed_deals, needs=("pdftotext",)),
)


async def seed_workflows(sessions: sessionmaker[Session], client: Client, settings: Settings,
                         say: Callable[[str], None]) -> list[str]:
    """Run every step it can; returns what was skipped. A step that lacks a tool is skipped
    up front; one that fails is reported (its traceback goes to ``var/demo.log``) and the
    next one runs anyway: a half-seeded demo beats none."""
    skipped = []
    for step in STEPS:
        absent = missing(names=step.needs)
        if absent:
            tools = ", ".join(f"{t.name} ({t.install})" for t in absent)
            say(f"Skipped the demo's {step.what}: missing {tools}. Install it, then start "
                "again with an empty var/ directory to have them.")
            skipped.append(step.what)
            continue
        try:
            await step.run(sessions, client, settings)
        except Exception as e:
            log = settings.var_dir / "demo.log"
            with log.open("a") as f:
                f.write(f"{step.what}:\n{traceback.format_exc()}\n")
            say(f"Skipped the rest of the demo's {step.what}: {e} (details in {log})")
            skipped.append(step.what)
    return skipped


__all__ = [
    "PASSWORD",
    "STEPS",
    "DemoStep",
    "seed_configured",
    "seed_deals",
    "seed_envelopes",
    "seed_health",
    "seed_proposal",
    "seed_quotes",
    "seed_records",
    "seed_renewals",
    "seed_rfp",
    "seed_workflows",
]
