"""How long after the last signer's click a three-party envelope is sealed.

    .venv/bin/python -m bench.envelope_seal [--n 5]

Starts its own Temporal dev server and a migrated temp SQLite store, runs ``dealdesk worker``
and ``dealdesk web`` as separate processes (as ``dealdesk up`` does), then sends ``n``
envelopes of a 20-page contract to two customer signers (routing order 1) and the CFO
(order 2), and signs them through the envelope service (the same Updates the signer pages
send). Timed per envelope: from the CFO's sign Update returning to the store showing the
envelope ``completed`` (document timestamp and validation data added, certificate of
completion made and sealed, the completion mail queued).

Baseline, measured in the same run on the same final document: the sealing work alone, in
this process (``signing.seal`` + rendering the certificate + sealing it), i.e. what the
envelope's last step costs without Temporal, the store and the mail around it.
Target: sealed within 2 s of the last click.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from bench._common import (
    bench_settings,
    deployed,
    finish,
    machine_note,
    pct,
    summary,
    temp_root,
    temporal_server,
    verdict,
)
from dealdesk.runtime import connect
from dealdesk.worker import open_pki
from documents import signing
from documents.certificate import (
    CompletionRecord,
    DocumentLine,
    RecipientLine,
    render_certificate,
)
from documents.pki import Pki
from documents.timestamps import timestamper
from store.blobs import BlobStore
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import Envelope, SignatureApplication, User
from tests.pdfs import contract_pdf
from tests.support import make_user
from web.services import envelopes as svc
from workflows.envelope_messages import Client as ClientInfo

TARGET_S = 2.0


async def run(n: int) -> int:
    print(machine_note("start"))
    with temp_root("dealdesk-bench-seal-") as root, temporal_server(root) as server:
        url = f"sqlite:///{root / 'dealdesk.db'}"
        upgrade(url)
        settings = bench_settings(root, url, server.address)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        with sessions.begin() as s:
            rep_id = make_user(s, "Rae Rep", "rep").id
            cfo = make_user(s, "Cleo CFO", "cfo")
            cfo_id, cfo_name, cfo_email = cfo.id, cfo.name, cfo.email
        pki = open_pki(settings)  # before the worker starts, so both use one PKI
        blobs = BlobStore(settings.blob_dir)
        client = await connect(settings)
        document = contract_pdf(20)
        e2e: list[float] = []
        direct: list[float] = []
        async with deployed(settings):
            for i in range(n + 1):  # the first one warms up
                with sessions() as s:
                    sender = s.get(User, rep_id)
                    assert sender is not None
                    env = await svc.create_envelope(s, client, settings, blobs, sender,
                                                    svc.EnvelopeIn(
                        title=f"MSA {i}", document_name="msa.pdf", document=document,
                        recipients=[svc.RecipientIn("Ann Buyer", "ann@buyer.example"),
                                    svc.RecipientIn("Ben Buyer", "ben@buyer.example"),
                                    svc.RecipientIn(cfo_name, cfo_email, routing_order=2,
                                                    user_id=cfo_id)]))
                    eid = env.id
                await sign_all(sessions, client, eid, ["ann@buyer.example",
                                                       "ben@buyer.example"])
                t_click = await sign_all(sessions, client, eid, [cfo_email])
                while True:
                    with sessions() as s:
                        status = s.scalar(select(Envelope.status).where(Envelope.id == eid))
                    if status == "completed":
                        break
                    if time.perf_counter() - t_click > 60:
                        raise RuntimeError(f"envelope {eid} not sealed after 60 s")
                    await asyncio.sleep(0.01)
                sealed_after = time.perf_counter() - t_click
                with sessions() as s:
                    signed_sha = signed_input(s, eid)
                t0 = time.perf_counter()
                await asyncio.to_thread(seal_directly, blobs.get(signed_sha), pki)
                if i:
                    e2e.append(sealed_after)
                    direct.append(time.perf_counter() - t0)
                print(f"envelope {i}: sealed {1000 * sealed_after:.0f} ms after the last click"
                      + ("" if i else " (warm-up, not counted)"))
        engine.dispose()
    print(summary("sealing work alone (in process)", direct))
    print(summary("last click -> envelope completed", e2e))
    print(f"ratio p95 completed/sealing work = {pct(e2e, 95) / pct(direct, 95):.2f}")
    print(f"target p95 < {TARGET_S:g} s: {verdict(pct(e2e, 95) < 1000 * TARGET_S)}")
    print(machine_note("end"))
    return 0


async def sign_all(sessions: sessionmaker[Session], client: Client, envelope_id: int,
                   emails: list[str]) -> float:
    """Sign as each of ``emails`` (in parallel) once it is their turn; returns the time the
    last Update returned."""
    async def one(email: str) -> None:
        for _ in range(2000):
            with sessions() as s:
                env = svc.get_envelope(s, envelope_id)
                r = next(r for r in env.recipients if r.email == email)
                if r.status == "sent":
                    await svc.sign(client, env, r, r.name,
                                   ClientInfo(ip="203.0.113.9", user_agent="bench"))
                    return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"{email} never got their turn")

    await asyncio.gather(*(one(e) for e in emails))
    return time.perf_counter()


def signed_input(s: Session, envelope_id: int) -> str:
    """The document as the last signer left it (the sealing step's input)."""
    row = s.scalar(select(SignatureApplication.input_sha256).where(
        SignatureApplication.envelope_id == envelope_id,
        SignatureApplication.idem_key.like("%:seal:%")))
    assert row is not None
    return row


def seal_directly(pdf: bytes, pki: Pki) -> None:
    """What seal_envelope computes, without the store around it."""
    ts = timestamper(pki)
    certs, crls = pki.validation_material()
    sealed = signing.seal(pdf, certs=certs, crls=crls, timestamper=ts)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    record = CompletionRecord(
        envelope_id="envelope-0", title="MSA", sender_name="Rae Rep",
        sender_email="rae@example.com", created_at=now, completed_at=now,
        documents=(DocumentLine("msa.pdf", 20, hashlib.sha256(pdf).hexdigest(),
                                hashlib.sha256(sealed).hexdigest()),),
        recipients=(RecipientLine("Ann Buyer", "ann@buyer.example", "signer", 1, "none",
                                  "signed", now),),
        events=())
    signing.seal_certificate(render_certificate(record),
                             signing.signer_for(pki.seal, pki.chain), ts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5, help="timed envelopes (default 5)")
    args = parser.parse_args()
    finish(asyncio.run(run(args.n)))


if __name__ == "__main__":
    main()
