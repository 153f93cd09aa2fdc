"""A deal's evidence bundle: a zip an auditor can check offline with ``python verify.py``.

What it holds (``manifest.json`` lists every file with its SHA-256):

    README.txt                what this is and how to check it
    verify.py                 the checker (documents/evidence_verify.py): Python + pyHanko
    manifest.json             the deal, the files and their hashes, the audit row ids
    manifest.p7s              the manifest's detached CMS signature by the organisation seal,
                              timestamped by the internal TSA
    timeline.json / .pdf      the merged timeline (web/services/deal_history.py)
    audit/rows.jsonl          the deal's audit rows: id, hashed content, prev and row hash
    audit/tree_head.json      a signed tree head of the audit log that holds every one of them
    audit/proofs.json         each row's inclusion proof against that head (RFC 9162)
    merkle.py                 the tree math verify.py checks the proofs with (store/merkle.py)
    documents/<sha256>.<ext>  every document version the rows name that the store holds
    signed/envelope-N.pdf     each completed envelope's sealed PDF, and its certificate of
    signed/envelope-N-certificate.pdf    completion
    pki/*.pem, pki/*.crl      the internal CA, TSA and seal certificates and the CAs' CRLs
    histories/<id>.<run>.json the deal's workflow runs' histories (archive, else Temporal)

The seal's signature over the manifest makes the whole bundle one claim: change, add or drop
any file and the manifest no longer matches; change the manifest and the signature fails.
The same use case serves the download button, ``GET /api/v1/deals/{id}/evidence`` and
``dealdesk audit export``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import inspect
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from pyhanko.sign import signers
from pyhanko.sign.timestamps import TimeStamper
from sqlalchemy import select
from sqlalchemy.orm import Session

from documents import evidence_verify, signing, timeline_pdf
from documents.detached_cms import sign_detached
from documents.hsm import HsmConfig, HsmSeal
from documents.pki import Pki
from store import audit, merkle
from store.blobs import BlobMissing, BlobStore
from store.db import in_session
from store.deals import Deal
from store.models import Envelope, TreeHead, User
from store.transparency import inclusion_proofs
from web.errors import NotFound
from web.services import deal_history, deals, transparency
from web.services.transparency import issue_tree_head, latest_head

FORMAT = 1


@dataclass
class Collected:
    """What the store holds for the bundle, read in one transaction."""

    deal_id: int
    deal_name: str
    account: str
    rows: list[dict[str, Any]]
    entries: list[deal_history.Entry]
    head: dict[str, Any]
    proofs: dict[str, dict[str, Any]]
    files: dict[str, bytes] = field(default_factory=dict)


def _extension(data: bytes) -> str:
    return "pdf" if data.startswith(b"%PDF") else "docx" if data.startswith(b"PK") else "bin"


def collect(session: Session, user: User | None, deal_id: int, blobs: BlobStore,
            head: TreeHead) -> Collected:
    """The deal's audit rows in the signed ``head`` with their inclusion proofs, timeline
    entries and document bytes (blocking: a thread). With no user (the operator at the CLI,
    who holds the database anyway) any deal."""
    deal = deals.visible(session, user, deal_id) if user else session.get(Deal, deal_id)
    if deal is None:
        raise NotFound(f"no deal {deal_id}")
    links = deals.linked(session, deal)
    events = [ev for ev in deal_history.audit_rows(session, deal.id, links)
              if ev.leaf_index is not None and ev.leaf_index < head.tree_size]
    rows = [{"id": ev.id, "prev_hash": ev.prev_hash, "row_hash": ev.row_hash,
             "content": audit.content_of(ev)} for ev in events]
    proofs = {str(p.row_id): p.as_json()
              for p in inclusion_proofs(session, events, head.tree_size)}
    entries = deal_history.with_version_hashes([deal_history.audit_entry(ev) for ev in events])
    found = Collected(deal.id, deal.name, deal.account.name, rows, entries,
                      transparency.head_json(head), proofs)
    for digest in deal_history.document_hashes(entries):
        try:
            data = blobs.get(digest)
        except BlobMissing:
            continue
        found.files[f"documents/{digest}.{_extension(data)}"] = data
    for env in session.scalars(select(Envelope).where(
            Envelope.id.in_([e.id for e in links.envelopes]))):
        for suffix, sealed in (("", env.final_sha256), ("-certificate", env.certificate_sha256)):
            if sealed:
                try:
                    found.files[f"signed/envelope-{env.id}{suffix}.pdf"] = blobs.get(sealed)
                except BlobMissing:
                    continue
    return found


def _pki_files(pki: Pki) -> dict[str, bytes]:
    files = {f"pki/{name}.pem": ident.cert.public_bytes(serialization.Encoding.PEM)
             for name, ident in (("root", pki.root), ("issuing", pki.issuing),
                                 ("tsa", pki.tsa), ("seal", pki.seal))}
    files |= {f"pki/{which}.crl": pki.crl(which) for which in ("root", "issuing")}
    return files


README = """dealdesk evidence bundle for deal {deal_id}: {deal_name} ({account})
Exported {created} UTC.

Check it offline (Python 3.11+ and pyHanko only):

    python -m venv v && v/bin/pip install pyhanko
    v/bin/python verify.py

verify.py exits 0 only if every check holds, and names each failure. It checks that the
manifest is signed by the organisation seal with a trusted timestamp, that every file is the
one the manifest names, that every audit row's hash matches its content, that every row is
in the audit log's signed tree head (its Merkle inclusion proof, RFC 9162), that document
files hash to their names and every signed PDF is named by an audit row, and that every
signature in every signed PDF validates up to pki/root.pem (pyHanko, with diff analysis).

timeline.pdf is the readable timeline; timeline.json the same with every field.
"""


def assemble(found: Collected, pki: Pki, histories: list[deal_history.History],
             created: dt.datetime) -> tuple[dict[str, bytes], bytes]:
    """Every file but the signature, and the manifest's bytes (blocking: a thread)."""
    entries = deal_history.merged(found.entries, histories)
    files = dict(found.files)
    files["verify.py"] = inspect.getsource(evidence_verify).encode()
    files["merkle.py"] = inspect.getsource(merkle).encode()
    files["audit/tree_head.json"] = json.dumps(found.head, indent=1).encode()
    files["audit/proofs.json"] = json.dumps(found.proofs, indent=1).encode()
    files["README.txt"] = README.format(deal_id=found.deal_id, deal_name=found.deal_name,
                                        account=found.account,
                                        created=created.strftime("%Y-%m-%d %H:%M")).encode()
    files["timeline.json"] = json.dumps([asdict(e) for e in entries], indent=1,
                                        default=str, ensure_ascii=False).encode()
    files["timeline.pdf"] = timeline_pdf.render_timeline(
        f"Timeline of {found.deal_name}",
        f"Deal {found.deal_id} · {found.account} · {len(entries)} entries · exported "
        f"{created:%Y-%m-%d %H:%M} UTC",
        [(str(n), e.at.strftime("%Y-%m-%d %H:%M:%S"), e.who, e.what, e.subject)
         for n, e in enumerate(entries)])
    files["audit/rows.jsonl"] = "".join(
        json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in found.rows).encode()
    files |= {f"histories/{run.workflow_id}.{run.run_id}.json": json.dumps(run.events).encode()
              for run in histories}
    files |= _pki_files(pki)
    manifest = {
        "bundle": "dealdesk evidence", "format": FORMAT,
        "deal": {"id": found.deal_id, "name": found.deal_name, "account": found.account},
        "created_at": created.isoformat(), "audit_rows": [r["id"] for r in found.rows],
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    return files, json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False).encode()


def zipped(files: dict[str, bytes], manifest: bytes, signature: bytes, root: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in sorted({**files, "manifest.json": manifest,
                                  "manifest.p7s": signature}.items()):
            z.writestr(f"{root}/{name}", data)
    return out.getvalue()


@contextlib.contextmanager
def seal_signer(pki: Pki, hsm: HsmConfig | None) -> Iterator[signers.Signer]:
    """The organisation seal's signer: its key in the HSM when one is configured."""
    if hsm is None:
        yield signing.signer_for(pki.seal, pki.chain)
        return
    token = HsmSeal(pki, hsm)
    try:
        yield token.signer()
    finally:
        token.close()


async def export(session: Session, user: User | None, deal_id: int, *, blobs: BlobStore,
                 pki: Pki, seal: signers.Signer, tsa: TimeStamper,
                 histories: list[deal_history.History]) -> tuple[str, bytes]:
    """``(file name, zip bytes)`` of the deal's evidence bundle."""
    # A head that holds every row so far: the one the worker signed, if the log hasn't grown.
    await in_session(session, issue_tree_head, pki, tsa, seal=lambda: seal)
    head = await in_session(session, latest_head)
    assert head is not None
    found = await in_session(session, collect, user, deal_id, blobs, head)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    files, manifest = await asyncio.to_thread(assemble, found, pki, histories, created)
    signature = await asyncio.to_thread(sign_detached, manifest, seal, tsa)
    root = f"evidence-deal-{deal_id}-{created:%Y%m%dT%H%M%SZ}"
    return f"{root}.zip", await asyncio.to_thread(zipped, files, manifest, signature, root)
