"""The audit log as a transparency log: an append-only Merkle tree over the audit rows, in
the manner of Certificate Transparency (RFC 9162; the math is store/merkle.py).

**Leaves.** Row ``leaf_index`` ``i`` (0, 1, 2… in id order, which is the chain's order) is
leaf ``i``. Its bytes (:func:`leaf_bytes`) are the canonical JSON of the row's hashed content
*and* its chain link, ``{"content": …, "prev_hash": …, "row_hash": …}``: a proof of one row
then also proves its place in the hash chain (the leaf carries enough to recompute its
``row_hash``), and a signed tree head commits to the chain's head as well as to every row.

**Storage.** Every complete subtree is a ``merkle_nodes`` row ``(level, index, hash)``, level 0
being the leaf hashes; appending leaf ``i`` writes its leaf and the subtrees it completes (two
rows on average), reading their left halves (one indexed query), inside the audit row's own
transaction and under the same ``audit_head`` lock (:func:`add_leaf`). A proof or a tree head
at any size reads only the O(log n) nodes store/merkle.py plans, in one query; a ragged right
edge is folded on demand.

:func:`verify_tree` checks the tree against the rows: every row's leaf index and leaf hash,
every stored node against its children, the count of nodes per level and the head's size.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, insert, or_, select, text
from sqlalchemy.orm import Session

from store import merkle
from store.audit import canonical_json, content_of
from store.models import AuditEvent, AuditHead, MerkleNode

BATCH = 1000
NODE_BATCH = 4096


class TreeError(Exception):
    """A proof or tree head asked for what the log doesn't hold (a row not in it, a size
    beyond it), or a node it needs is missing; the message says which."""


def leaf_bytes(ev: AuditEvent) -> bytes:
    """What leaf hash covers, for a stored row (see the module docstring)."""
    return canonical_json({"content": content_of(ev), "prev_hash": ev.prev_hash,
                           "row_hash": ev.row_hash}).encode()


def add_leaf(session: Session, index: int, leaf: bytes) -> None:
    """Store leaf ``index`` (its bytes) and the subtrees it completes. The caller holds the
    ``audit_head`` lock and appends in index order (``store.audit.append``)."""
    wanted = merkle.left_siblings(index)
    lefts = read_nodes(session, wanted) if wanted else {}
    made = merkle.appended(index, merkle.leaf_hash(leaf), lefts)
    session.execute(insert(MerkleNode), [{"level": lv, "index": i, "hash": h}
                                         for (lv, i), h in made])


def read_nodes(session: Session, wanted: Iterable[merkle.Node]) -> dict[merkle.Node, bytes]:
    """The stored hashes of these nodes, in one query; :class:`TreeError` if one is missing."""
    wanted = sorted(set(wanted))
    if not wanted:
        return {}
    by_level: dict[int, list[int]] = {}
    for level, index in wanted:
        by_level.setdefault(level, []).append(index)
    # One "level = l AND idx IN (…)" term per level, each an index search (a row-value IN,
    # (level, idx) IN (VALUES …), is a full scan on SQLite). Written as SQL text with the
    # integers inlined: they are ints computed here, and building the same query as an
    # expression cost more than running it.
    where = " OR ".join(f"(level = {int(level)} AND idx IN ({','.join(str(int(i)) for i in ix)}))"
                        for level, ix in by_level.items())
    rows = session.connection().execute(text(
        f"SELECT level, idx, hash FROM merkle_nodes WHERE {where}")).all()  # noqa: S608
    found = {(level, index): bytes(h) for level, index, h in rows}
    missing = [n for n in wanted if n not in found]
    if missing:
        level, index = missing[0]
        raise TreeError(f"node (level {level}, index {index}) is missing from merkle_nodes")
    return found


def tree_size(session: Session) -> int:
    """Leaves in the log now (its rows, once migrated)."""
    return session.scalar(select(AuditHead.tree_size).where(AuditHead.id == 1)) or 0


def _check_size(session: Session, size: int) -> None:
    current = tree_size(session)
    if not 0 <= size <= current:
        raise TreeError(f"the log has {current} leaves, not {size}")


def root_at(session: Session, size: int) -> bytes:
    """MTH of the first ``size`` leaves (RFC 9162 §2.1.1)."""
    _check_size(session, size)
    return merkle.root_hash(size, read_nodes(session, merkle.root_nodes(size)))


def _hashes(session: Session, ranges: list[merkle.Range]) -> list[bytes]:
    nodes = read_nodes(session, merkle.nodes_for(ranges))
    return [merkle.range_hash(lo, hi, nodes) for lo, hi in ranges]


@dataclass(frozen=True)
class InclusionProof:
    """That row ``row_id`` is leaf ``leaf_index`` of the tree of ``tree_size`` leaves whose
    root is ``root_hash``: check with ``merkle.verify_inclusion``."""

    row_id: int
    leaf_index: int
    tree_size: int
    leaf: bytes
    """The leaf's bytes (the row's canonical JSON with its chain link): hash it to check."""
    path: list[bytes]
    """The audit path, leaf side first."""
    root_hash: bytes

    def as_json(self) -> dict[str, Any]:
        return {"row_id": self.row_id, "leaf_index": self.leaf_index,
                "tree_size": self.tree_size, "leaf": self.leaf.decode(),
                "leaf_hash": merkle.leaf_hash(self.leaf).hex(),
                "audit_path": [h.hex() for h in self.path], "root_hash": self.root_hash.hex()}


def inclusion_proof(session: Session, row_id: int, size: int | None = None) -> InclusionProof:
    """The audit path of row ``row_id`` in the tree of ``size`` leaves (default: the whole
    log, as it is now). Reads the row and O(log n) nodes."""
    ev = session.get(AuditEvent, row_id)
    if ev is None or ev.leaf_index is None:
        raise TreeError(f"no audit row {row_id} in the log")
    current = tree_size(session)
    size = current if size is None else size
    if not 0 <= size <= current:
        raise TreeError(f"the log has {current} leaves, not {size}")
    if ev.leaf_index >= size:
        raise TreeError(f"row {row_id} is leaf {ev.leaf_index}: not in a tree of {size}")
    return _proofs(session, [ev], size)[0]


PROOFS_PER_READ = 500
"""Rows whose paths one node query reads (its SQL grows with them)."""


def inclusion_proofs(session: Session, events: Sequence[AuditEvent], size: int
                     ) -> list[InclusionProof]:
    """The audit paths of many rows (each a leaf of the tree of ``size`` leaves), reading the
    nodes their paths share once: an evidence bundle proves every row of a deal."""
    _check_size(session, size)
    for ev in events:
        if ev.leaf_index is None or ev.leaf_index >= size:
            raise TreeError(f"row {ev.id} is not in a tree of {size} leaves")
    return [proof for start in range(0, len(events), PROOFS_PER_READ)
            for proof in _proofs(session, events[start:start + PROOFS_PER_READ], size)]


def _proofs(session: Session, events: Sequence[AuditEvent], size: int) -> list[InclusionProof]:
    ranges = [merkle.inclusion_ranges(ev.leaf_index or 0, size) for ev in events]
    nodes = read_nodes(session, set(merkle.root_nodes(size)).union(
        *(merkle.nodes_for(r) for r in ranges)))
    root = merkle.root_hash(size, nodes)
    return [InclusionProof(ev.id, ev.leaf_index or 0, size, leaf_bytes(ev),
                           [merkle.range_hash(lo, hi, nodes) for lo, hi in path], root)
            for ev, path in zip(events, ranges, strict=True)]


def consistency_proof(session: Session, old: int, new: int) -> list[bytes]:
    """PROOF(old, D[new]) (RFC 9162 §2.1.4.1): the tree of ``new`` leaves extends the one of
    ``old`` leaves."""
    _check_size(session, new)
    if not 0 <= old <= new:
        raise TreeError(f"no consistency proof from {old} leaves to {new}")
    return _hashes(session, merkle.consistency_ranges(old, new))


LOG_ID = "dealdesk-audit-log/v1"
"""Names the log (and this leaf and head format) inside every signed tree head."""


def head_bytes(size: int, root_hex: str, issued_at: dt.datetime) -> bytes:
    """What a signed tree head's signature covers: canonical JSON of the log, its size, its
    root (hex) and the head's time (UTC, microseconds), rebuilt from a ``tree_heads`` row's
    columns to check it."""
    return canonical_json({
        "log": LOG_ID, "tree_size": size, "root_hash": root_hex,
        "timestamp": issued_at.astimezone(dt.UTC).isoformat(timespec="microseconds")}).encode()


def proof_size(proof: InclusionProof) -> tuple[int, int, int]:
    """Bytes of a proof: as compact JSON without the leaf's text (its hash only: what
    proves), the same with it (the row's content: what is proved), and raw (index and size
    8 bytes each, 32 per hash of the path and the root)."""
    full = proof.as_json()
    bare = {k: v for k, v in full.items() if k != "leaf"}
    return (len(json.dumps(bare, separators=(",", ":")).encode()),
            len(json.dumps(full, separators=(",", ":"), ensure_ascii=False).encode()),
            16 + 32 * (len(proof.path) + 1))


# --- backfill: rows written before the tree (migration 0019) -------------------------------

def _unplaced(session: Session) -> Iterator[list[AuditEvent]]:
    last = 0
    while True:
        batch = list(session.scalars(
            select(AuditEvent).where(AuditEvent.id > last, AuditEvent.leaf_index.is_(None))
            .order_by(AuditEvent.id).limit(BATCH)))
        if not batch:
            return
        yield batch
        last = batch[-1].id


def backfill(session: Session) -> int:
    """Give every row without a leaf its leaf, in id order after the existing ones, with the
    nodes they complete; returns how many. The frontier (the left halves still waiting for
    their right one) is kept in memory, so a batch costs two statements, not two per row.
    Runs in the caller's transaction; call it holding the write lock."""
    head = session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
    if head is None:
        return 0
    size = head.tree_size
    frontier = read_nodes(session, merkle.root_nodes(size))
    placed = 0
    for batch in _unplaced(session):
        rows: list[dict[str, Any]] = []
        for ev in batch:
            ev.leaf_index = size
            made = merkle.appended(size, merkle.leaf_hash(leaf_bytes(ev)), frontier)
            for node in merkle.left_siblings(size):
                del frontier[node]
            frontier.update((n, h) for n, h in made if n[1] % 2 == 0)
            rows += [{"level": lv, "index": i, "hash": h} for (lv, i), h in made]
            size += 1
        session.execute(insert(MerkleNode), rows)
        session.flush()
        placed += len(batch)
    head.tree_size = size
    session.flush()
    return placed


# --- checking the tree against the rows ----------------------------------------------------

@dataclass(frozen=True)
class TreeCheck:
    ok: bool
    leaves: int
    bad_row_id: int | None = None
    bad_node: merkle.Node | None = None
    problem: str = ""


def _level(session: Session, level: int, lo: int, hi: int) -> dict[int, bytes]:
    rows = session.execute(select(MerkleNode.index, MerkleNode.hash).where(
        MerkleNode.level == level, MerkleNode.index >= lo, MerkleNode.index < hi)).all()
    return {index: bytes(h) for index, h in rows}


def _check_leaves(session: Session) -> TreeCheck | int:
    """Every row, in id order, is the next leaf and hashes to its stored leaf; the count."""
    position = 0
    last = 0
    while True:
        batch = list(session.scalars(select(AuditEvent).where(AuditEvent.id > last)
                                     .order_by(AuditEvent.id).limit(NODE_BATCH)))
        if not batch:
            return position
        stored = _level(session, 0, position, position + len(batch))
        for ev in batch:
            if ev.leaf_index != position:
                return TreeCheck(False, position, ev.id, (0, position),
                                 f"it is leaf {ev.leaf_index} but comes {position} in id order: "
                                 "a row before it was deleted or rows were reordered")
            if stored.get(position) != merkle.leaf_hash(leaf_bytes(ev)):
                what = "is missing" if position not in stored else "does not match the row"
                return TreeCheck(False, position, ev.id, (0, position),
                                 f"its leaf hash (level 0, index {position}) {what}")
            position += 1
        last = batch[-1].id


def _check_nodes(session: Session, size: int) -> TreeCheck | None:
    """Every stored node of level 1 and up is the hash of its two children (checked level by
    level, so each level rests on the one below, and level 0 on the rows)."""
    level = 1
    while size >> level:
        count = size >> level
        for lo in range(0, count, NODE_BATCH):
            hi = min(lo + NODE_BATCH, count)
            parents = _level(session, level, lo, hi)
            children = _level(session, level - 1, 2 * lo, 2 * hi)
            for i in range(lo, hi):
                left, right = children.get(2 * i), children.get(2 * i + 1)
                if left is None or right is None:
                    return TreeCheck(False, size, None, (level - 1, 2 * i + (left is not None)),
                                     "a node is missing")
                if parents.get(i) != merkle.node_hash(left, right):
                    what = "is missing" if i not in parents else "does not match its children"
                    return TreeCheck(False, size, None, (level, i), f"the node {what}")
        level += 1
    extra = session.execute(select(MerkleNode.level, MerkleNode.index).where(or_(
        *(and_(MerkleNode.level == lv, MerkleNode.index >= size >> lv)
          for lv in range(level)), MerkleNode.level >= level)).limit(1)).first()
    if extra is not None:
        return TreeCheck(False, size, None, (extra[0], extra[1]),
                         f"a node lies beyond the {size} leaves of the log")
    return None


def verify_tree(session: Session) -> TreeCheck:
    """Check the whole tree against the rows; the first problem, precisely named."""
    leaves = _check_leaves(session)
    if isinstance(leaves, TreeCheck):
        return leaves
    nodes = _check_nodes(session, leaves)
    if nodes is not None:
        return nodes
    recorded = tree_size(session)
    if recorded != leaves:
        return TreeCheck(False, leaves, None, None,
                         f"the head records {recorded} leaves; the log has {leaves} rows")
    return TreeCheck(True, leaves)
