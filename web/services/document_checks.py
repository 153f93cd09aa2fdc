"""The documents behind the audit log, checked: ``dealdesk audit verify`` runs this after the
log's own checks.

- **Every stored document version is the one its hash names.** The blob store is content
  addressed, so a file whose bytes no longer hash to its name was replaced or damaged; the
  problem names the blob and the audit rows that cite it.
- **Every sealed PDF still validates**: each completed envelope's signed document and its
  certificate of completion, with pyHanko's diff analysis (documents/verify.py), trusting
  only the internal root; the problem names the envelope, the file and each failing
  signature.

Blocking (hashing, pyHanko): run it from a worker thread or the CLI.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from asn1crypto.x509 import Certificate
from sqlalchemy import select
from sqlalchemy.orm import Session

from documents.verify import UnreadablePdf, verify_pdf
from store.blobs import BlobMissing, BlobStore
from store.models import AuditEvent, Envelope

DOCUMENT_KEYS = ("sha256", "document_before", "document_after", "docx_sha256", "pdf_sha256",
                 "signed", "certificate")


@dataclass
class DocumentCheck:
    blobs: int = 0
    sealed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _citations(session: Session) -> dict[str, list[int]]:
    """Document hash → the audit rows that name it."""
    cited: dict[str, list[int]] = {}
    last = 0
    while batch := session.execute(select(AuditEvent.id, AuditEvent.data).where(
            AuditEvent.id > last).order_by(AuditEvent.id).limit(1000)).all():
        for row_id, data in batch:
            for key in DOCUMENT_KEYS:
                value = data.get(key) if isinstance(data, dict) else None
                if isinstance(value, str) and len(value) == 64:
                    cited.setdefault(value, []).append(row_id)
        last = batch[-1][0]
    return cited


def _stored(blobs: BlobStore) -> Iterator[tuple[str, bytes]]:
    if not blobs.root.is_dir():
        return
    for path in sorted(blobs.root.glob("??/*")):
        if path.is_file() and not path.name.startswith("."):
            yield path.name, path.read_bytes()


def check_documents(session: Session, blobs: BlobStore,
                    trust_roots: Sequence[Certificate]) -> DocumentCheck:
    result = DocumentCheck()
    cited = _citations(session)
    for name, data in _stored(blobs):
        result.blobs += 1
        actual = hashlib.sha256(data).hexdigest()
        if actual != name:
            rows = cited.get(name, [])
            named = f", named by audit row{'s' if len(rows) > 1 else ''} " + \
                ", ".join(map(str, rows[:10])) if rows else ""
            result.problems.append(f"document {name}{named}: its stored bytes hash to "
                                   f"{actual} (the file was replaced or damaged)")
    for env in session.scalars(select(Envelope).where(Envelope.final_sha256.is_not(None))
                               .order_by(Envelope.id)):
        for what, digest in (("signed PDF", env.final_sha256),
                             ("certificate of completion", env.certificate_sha256)):
            if digest is None:
                continue
            result.sealed += 1
            try:
                report = verify_pdf(blobs.get(digest), trust_roots)
            except BlobMissing:
                result.problems.append(f"envelope {env.id}'s {what} {digest}: not in the store")
                continue
            except UnreadablePdf as e:
                result.problems.append(f"envelope {env.id}'s {what} {digest}: unreadable ({e})")
                continue
            if not report.valid:
                failing = [f"signature {sig.field_name!r} ({sig.signer_name}): "
                           + "; ".join(sig.problems) for sig in report.signatures if not sig.ok]
                result.problems.append(f"envelope {env.id}'s {what} {digest}: "
                                       + "; ".join([*report.problems, *failing]))
    return result
