"""Signed tree heads of the audit log's transparency log, and the check of the whole log.

A **signed tree head** (STH) is ``(tree_size, root_hash, timestamp)``: the root of the first
``tree_size`` leaves (store/transparency.py) at a moment, as canonical JSON
(``store.transparency.head_bytes``), sealed by the organisation (the seal's file key, or the
HSM's signer) in a detached CMS signature that carries an RFC 3161 timestamp from the
configured TSA (documents/detached_cms.py). Heads are kept in ``tree_heads``. The worker's
housekeeping issues one hourly when the log has grown; ``dealdesk audit sign-head`` issues
one on demand. Two heads prove the log only grew between them by a consistency proof
(:func:`consistency_between`); a rewritten past fails it.

:func:`verify_log` is ``dealdesk audit verify``: the chain (``store.audit.verify``), the tree
against the rows (``store.transparency.verify_tree``), then every head: its root equal to the
tree at its size, its signature and timestamp valid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import x509 as asn1_x509
from pyhanko.sign import signers
from pyhanko.sign.timestamps.api import TimeStamper
from sqlalchemy import select
from sqlalchemy.orm import Session

from documents import signing
from documents.detached_cms import sign_detached, validate_detached
from documents.pki import Pki
from store import audit, merkle, transparency
from store.db import write_lock
from store.models import AuditEvent, TreeHead

CLOCK_SKEW = dt.timedelta(minutes=5)
"""How far a head's own time may run ahead of its TSA token's (an external TSA's clock)."""


def latest_head(session: Session) -> TreeHead | None:
    return session.scalar(select(TreeHead).order_by(TreeHead.id.desc()).limit(1))


def issue_tree_head(session: Session, pki: Pki, tsa: TimeStamper, *,
                    seal: Callable[[], signers.Signer] | None = None,
                    now: dt.datetime | None = None, only_if_grown: bool = True
                    ) -> TreeHead | None:
    """Sign the log's current head and store it; None when ``only_if_grown`` and the latest
    head already has this size. ``seal`` makes the signer (default: the PKI's seal key; the
    worker passes its HSM's). Ends any transaction ``session`` had, reads the root, signs with
    no transaction open (an external TSA may take seconds), then commits the head in a write
    transaction of its own."""
    if session.in_transaction():
        session.commit()
    size = transparency.tree_size(session)
    last = latest_head(session)
    if only_if_grown and last is not None and last.tree_size == size:
        session.commit()
        return None
    root = transparency.root_at(session, size).hex()
    session.commit()
    issued_at = now or dt.datetime.now(dt.UTC)
    signer = seal() if seal else signing.signer_for(pki.seal, pki.chain)
    signature = sign_detached(transparency.head_bytes(size, root, issued_at), signer, tsa)
    write_lock(session)
    head = TreeHead(tree_size=size, root_hash=root, issued_at=issued_at, signature=signature)
    session.add(head)
    session.commit()
    return head


def head_json(head: TreeHead) -> dict[str, Any]:
    """A head as handed out: its fields, the exact bytes its signature covers (``signed``:
    a checker verifies the signature over these and reads size and root from them, with no
    canonical JSON to rebuild) and the signature (DER CMS, hex)."""
    signed = transparency.head_bytes(head.tree_size, head.root_hash, head.issued_at)
    return {"id": head.id, "tree_size": head.tree_size, "root_hash": head.root_hash,
            "timestamp": head.issued_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "signed": signed.decode(), "signature": head.signature.hex()}


def _head(session: Session, head_id: int) -> TreeHead:
    head = session.get(TreeHead, head_id)
    if head is None:
        raise transparency.TreeError(f"no tree head {head_id}")
    return head


def prove_row(session: Session, row_id: int, head_id: int | None = None) -> dict[str, Any]:
    """The inclusion proof of one row in a signed head (default: the latest head that holds
    it; with no such head, the log as it is now, unsigned), as JSON."""
    if head_id is not None:
        head: TreeHead | None = _head(session, head_id)
    else:
        ev = session.get(AuditEvent, row_id)
        if ev is None or ev.leaf_index is None:
            raise transparency.TreeError(f"no audit row {row_id} in the log")
        head = session.scalar(select(TreeHead).where(TreeHead.tree_size > ev.leaf_index)
                              .order_by(TreeHead.id.desc()).limit(1))
    proof = transparency.inclusion_proof(session, row_id,
                                         head.tree_size if head is not None else None)
    if head is not None and proof.root_hash.hex() != head.root_hash:
        raise transparency.TreeError(f"tree head {head.id} does not match the log")
    return {"proof": proof.as_json(), "head": head_json(head) if head is not None else None}


def consistency_between(session: Session, old_id: int, new_id: int) -> dict[str, Any]:
    """The consistency proof from one signed head to a later one, and whether it verifies."""
    old, new = _head(session, old_id), _head(session, new_id)
    proof = transparency.consistency_proof(session, old.tree_size, new.tree_size)
    ok = merkle.verify_consistency(old.tree_size, new.tree_size, bytes.fromhex(old.root_hash),
                                   bytes.fromhex(new.root_hash), proof)
    return {"old": head_json(old), "new": head_json(new),
            "consistency_path": [h.hex() for h in proof], "consistent": ok}


@dataclass(frozen=True)
class LogCheck:
    """``dealdesk audit verify``'s verdict: the first problem found, named precisely."""

    ok: bool
    rows: int
    heads: int = 0
    part: str = ""
    """Where the problem is: ``chain``, ``tree`` or ``head``."""
    bad_row_id: int | None = None
    bad_node: merkle.Node | None = None
    bad_head_id: int | None = None
    problem: str = ""


def check_head(session: Session, head: TreeHead,
               trust_roots: Sequence[asn1_x509.Certificate]) -> str:
    """What is wrong with one head ("" if nothing): its root against the tree at its size,
    then its signature and timestamp, and that it does not claim a time after its stamp
    (a head may be stamped later than it says, never earlier)."""
    size = transparency.tree_size(session)
    if head.tree_size > size:
        return f"it claims {head.tree_size} leaves; the log has {size}"
    if transparency.root_at(session, head.tree_size).hex() != head.root_hash:
        return (f"its root is not the tree's at {head.tree_size} leaves: the log's past "
                "differs from what was signed")
    check = validate_detached(
        transparency.head_bytes(head.tree_size, head.root_hash, head.issued_at),
        head.signature, trust_roots)
    if not check.valid:
        return check.problem
    assert check.timestamped_at is not None  # a valid check has a trusted timestamp
    if head.issued_at - check.timestamped_at > CLOCK_SKEW:
        return (f"it claims {head.issued_at:%Y-%m-%d %H:%M:%S} UTC, after its timestamp "
                f"({check.timestamped_at:%Y-%m-%d %H:%M:%S} UTC)")
    return ""


def verify_log(session: Session, trust_roots: Sequence[asn1_x509.Certificate]) -> LogCheck:
    chain = audit.verify(session)
    if not chain.ok:
        return LogCheck(False, chain.rows, part="chain", bad_row_id=chain.bad_row_id,
                        problem=chain.problem)
    tree = transparency.verify_tree(session)
    if not tree.ok:
        return LogCheck(False, tree.leaves, part="tree", bad_row_id=tree.bad_row_id,
                        bad_node=tree.bad_node, problem=tree.problem)
    heads = list(session.scalars(select(TreeHead).order_by(TreeHead.id)))
    for head in heads:
        problem = check_head(session, head, trust_roots)
        if problem:
            return LogCheck(False, chain.rows, len(heads), part="head", bad_head_id=head.id,
                            problem=problem)
    return LogCheck(True, chain.rows, len(heads))
