"""Building and driving envelopes in tests, through the real services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store.blobs import BlobStore
from store.models import Envelope, EnvelopeRecipient, User
from tests.pdfs import contract_pdf
from web.services import envelopes as svc
from workflows.envelope_messages import Client as ClientInfo

BROWSER = ClientInfo(ip="203.0.113.7", user_agent="Mozilla/5.0 (test)", auth_method="none")


@dataclass
class Cast:
    sender: User
    cfo: User


def three_party(cast: Cast, **over: object) -> svc.EnvelopeIn:
    base: dict[str, object] = dict(
        title="MSA — Globex", document_name="msa.pdf", document=contract_pdf(20),
        message="Please sign the MSA.",
        recipients=[
            svc.RecipientIn("Ann Buyer", "ann@globex.test", routing_order=1),
            svc.RecipientIn("Ben Buyer", "ben@globex.test", routing_order=1),
            svc.RecipientIn(cast.cfo.name, cast.cfo.email, routing_order=2,
                            user_id=cast.cfo.id),
        ])
    base.update(over)
    return svc.EnvelopeIn(**base)  # type: ignore[arg-type]


async def send(sessions: sessionmaker[Session], client: Client, settings: Settings,
               cast: Cast, inp: svc.EnvelopeIn) -> int:
    with sessions() as s:
        sender = s.get(User, cast.sender.id)
        assert sender is not None
        env = await svc.create_envelope(s, client, settings, BlobStore(settings.blob_dir),
                                        sender, inp)
        return env.id


def recipients(sessions: sessionmaker[Session], envelope_id: int) -> dict[str, str]:
    with sessions() as s:
        return {r.email: r.status for r in s.scalars(select(EnvelopeRecipient).where(
            EnvelopeRecipient.envelope_id == envelope_id))}


async def act(sessions: sessionmaker[Session], client: Client, envelope_id: int, email: str,
              what: str = "sign", text: str = "") -> object:
    with sessions() as s:
        env = svc.get_envelope(s, envelope_id)
        r = next(r for r in env.recipients if r.email == email)
        if what == "sign":
            return await svc.sign(client, env, r, text or r.name, BROWSER)
        return await svc.decline(client, env, r, text, BROWSER)


def envelope(sessions: sessionmaker[Session], envelope_id: int) -> Envelope:
    with sessions() as s:
        env = s.get(Envelope, envelope_id)
        assert env is not None
        s.expunge(env)
        return env
