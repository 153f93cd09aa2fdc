"""A worker SIGKILLed while it signs: the retry never adds a second signature, and the
envelope completes with a document that validates."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from subprocess import Popen

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from dealdesk.settings import Settings
from dealdesk.worker import open_pki
from store.blobs import BlobStore
from store.models import SignatureApplication
from tests.envelope_support import Cast, act, envelope, recipients, send, three_party
from tests.pdfs import pyhanko_verdicts
from tests.support import eventually
from web.services import envelopes as svc


async def signing_in_flight(client: Client, wid: str) -> bool:
    desc = (await client.get_workflow_handle(wid).describe()).raw_description
    return any(a.activity_type.name == "apply_signature"
               and a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
               for a in desc.pending_activities)


async def test_killing_the_worker_mid_signature_leaves_one_signature(
        sessions: sessionmaker[Session], client: Client, settings: Settings, cast: Cast,
        worker_process: Callable[[], Popen[bytes]]) -> None:
    first = worker_process()
    inp = three_party(cast, recipients=[svc.RecipientIn("Ann Buyer", "ann@globex.test")])
    eid = await send(sessions, client, settings, cast, inp)
    await eventually(lambda: recipients(sessions, eid)["ann@globex.test"] == "sent",
                     timeout=30)
    wid = envelope(sessions, eid).workflow_id

    signing = asyncio.create_task(act(sessions, client, eid, "ann@globex.test"))
    await eventually(lambda: signing_in_flight(client, wid), interval=0.005)
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert not signing.done()  # the signer's click is still waiting, not failed

    second = worker_process()
    await asyncio.wait_for(signing, timeout=60)  # the retry (after the attempt timed out)
    done = await eventually(lambda: envelope(sessions, eid).status == "completed"
                            and envelope(sessions, eid), timeout=60)
    assert second.poll() is None
    final = BlobStore(settings.blob_dir).get(done.final_sha256 or "")
    verdicts = await asyncio.to_thread(pyhanko_verdicts, final, open_pki(settings))
    assert len([v for v in verdicts if not v.timestamp]) == 1
    assert all(v.intact and v.valid and v.trusted for v in verdicts)
    with sessions() as s:
        applied = s.scalar(select(func.count()).select_from(SignatureApplication).where(
            SignatureApplication.envelope_id == eid,
            SignatureApplication.recipient_id.is_not(None)))
    assert applied == 1
