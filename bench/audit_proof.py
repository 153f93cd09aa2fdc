"""An inclusion proof for one audit row in a 1,000,000-row transparency log: time and size.

    .venv/bin/python -m bench.audit_proof [--rows 1000000] [--proofs 500] [--naive 3]

Builds the log in a temporary SQLite store migrated to head: ``--rows`` real minimal audit
rows (``quote.viewed`` by ``system:bench`` on ``quote:{i}``, a one-key ``data``), each with
its chain hash, leaf index and leaf, and the complete subtrees they make, bulk-inserted with
Core ``executemany`` (computed with ``store.audit`` and ``store.merkle``, as ``audit.append``
would, only batched). Sampled proofs are checked against the root, so the bulk build is the
tree ``audit.append`` writes. Then, with one warm session, as a server would have:

- **measured**: ``store.transparency.inclusion_proof`` for random rows against the whole log
  (the row, then the O(log n) nodes of its path and of the root, in one query), and its size
  as compact JSON (index, size, leaf hash, path, root), the same with the leaf's text (the
  row's content and chain link) and raw (index, size, path, root);
- **baseline**: one indexed ``SELECT`` of the same rows by id (the floor of any proof);
- **naive**: the same proof recomputed from every leaf hash (``--naive`` runs; what a
  proof costs without the stored subtrees);
- ``audit.append`` at this size (own write transaction each), and the tree's part of it;
- with ``--verify``, the whole-log check's time (``audit.verify``, then
  ``transparency.verify_tree``).

Targets: a proof under 10 ms (p95) and under 2 KB (JSON; the size with the row's own text
is printed beside it: that part is the row, whatever proves it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time
from typing import Any

from sqlalchemy import insert, text

from bench._common import finish, machine_note, pct, summary, temp_root, verdict
from store import audit, merkle, transparency
from store.db import make_engine, make_session_factory, write_lock
from store.migrate import upgrade
from store.models import AuditEvent, AuditHead

TARGET_MS = 10.0
TARGET_BYTES = 2048
CHUNK = 20_000
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def build(url: str, rows: int) -> float:
    """The log of ``rows`` rows, bulk-inserted; returns the seconds it took."""
    t0 = time.perf_counter()
    engine = make_engine(url)
    prev = audit.GENESIS
    frontier: dict[merkle.Node, bytes] = {}
    with engine.begin() as conn:
        for lo in range(0, rows, CHUNK):
            events: list[dict[str, Any]] = []
            nodes: list[dict[str, Any]] = []
            for i in range(lo, min(lo + CHUNK, rows)):
                at = START + dt.timedelta(seconds=i)
                key, entity, data = f"bench-{i}", f"quote:{i}", {"n": i}
                content = audit._content(key, at, "system:bench", "quote.viewed", entity, data)
                row = audit.row_hash(prev, content)
                leaf = audit.canonical_json({"content": content, "prev_hash": prev,
                                             "row_hash": row}).encode()
                events.append({"event_key": key, "at": at, "actor": "system:bench",
                               "action": "quote.viewed", "entity": entity, "data": data,
                               "prev_hash": prev, "row_hash": row, "leaf_index": i})
                made = merkle.appended(i, merkle.leaf_hash(leaf), frontier)
                for node in merkle.left_siblings(i):
                    del frontier[node]
                frontier.update((n, h) for n, h in made if n[1] % 2 == 0)
                nodes += [{"l": lv, "i": ix, "h": h} for (lv, ix), h in made]
                prev = row
            conn.execute(insert(AuditEvent.__table__), events)
            conn.execute(text("INSERT INTO merkle_nodes (level, idx, hash) "
                              "VALUES (:l, :i, :h)"), nodes)
        conn.execute(insert(AuditHead.__table__).values(id=1, last_hash=prev, tree_size=rows))
    engine.dispose()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--proofs", type=int, default=500)
    ap.add_argument("--naive", type=int, default=3)
    ap.add_argument("--appends", type=int, default=200)
    ap.add_argument("--verify", action="store_true",
                    help="also time the whole-log check (chain, then tree), minutes at 1M")
    args = ap.parse_args()
    print(machine_note("start"))
    with temp_root("dealdesk-bench-audit-") as root:
        url = f"sqlite:///{root / 'audit.db'}"
        upgrade(url)
        print(f"built {args.rows:,} rows and their tree in {build(url, args.rows):.1f} s "
              f"({(root / 'audit.db').stat().st_size / 2**20:.0f} MiB on disk)")
        measure(url, args)
        print(machine_note("end"))
    finish()


def measure(url: str, args: argparse.Namespace) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    rng = random.Random(6962)
    with sessions() as s:
        ids = [rng.randint(1, args.rows) for _ in range(args.proofs)]  # ids are 1..rows
        size = transparency.tree_size(s)
        t0 = time.perf_counter()
        root = transparency.root_at(s, size)
        root_ms = 1000 * (time.perf_counter() - t0)
        for row_id in ids[:10]:  # warm-up, not counted
            transparency.inclusion_proof(s, row_id)
            s.expunge_all()
        proof_s, base_s, json_b, full_b, raw_b = [], [], [], [], []
        for row_id in ids:  # interleaved, so both see the same machine
            t0 = time.perf_counter()
            s.execute(text("SELECT * FROM audit_events WHERE id = :id"), {"id": row_id}).one()
            base_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            proof = transparency.inclusion_proof(s, row_id)
            proof_s.append(time.perf_counter() - t0)
            s.expunge_all()  # no identity-map hits: every proof reads its row
            assert proof.root_hash == root
            assert merkle.verify_inclusion(proof.leaf_index, size, merkle.leaf_hash(proof.leaf),
                                           proof.path, root)
            j, f, r = transparency.proof_size(proof)
            json_b.append(j)
            full_b.append(f)
            raw_b.append(r)
        naive_s = []
        for row_id in ids[:args.naive]:
            t0 = time.perf_counter()
            leaves = [bytes(h) for h, in s.execute(text(
                "SELECT hash FROM merkle_nodes WHERE level = 0 ORDER BY idx"))]
            index = s.get(AuditEvent, row_id).leaf_index  # type: ignore[union-attr]
            path = merkle.inclusion_path(
                index, size, lambda lo, hi, leaves=leaves: merkle.tree_hash(leaves[lo:hi]))
            naive_s.append(time.perf_counter() - t0)
            assert merkle.verify_inclusion(index, size, leaves[index], path, root)
    append_s, tree_s = appends(sessions, args.appends)
    if args.verify:
        with sessions() as s:
            t0 = time.perf_counter()
            assert audit.verify(s).ok
            t1 = time.perf_counter()
            assert transparency.verify_tree(s).ok
            t2 = time.perf_counter()
        print(f"whole-log check: chain {t1 - t0:.1f} s, tree {t2 - t1:.1f} s")
    engine.dispose()
    print(f"tree head at {size:,} leaves: {root_ms:.2f} ms ({len(merkle.root_nodes(size))} "
          "nodes)")
    print(summary("baseline: SELECT the row by id", base_s))
    print(summary("inclusion proof (row + nodes)", proof_s))
    if naive_s:
        print(summary("naive: recompute from all leaves", naive_s))
    print(f"proof size: JSON {min(json_b)}-{max(json_b)} bytes (leaf hash), "
          f"{min(full_b)}-{max(full_b)} bytes with the leaf's text (the row); raw "
          f"{min(raw_b)}-{max(raw_b)} bytes; path length {len(proof.path)}")
    print(summary("audit.append at this size", append_s))
    print(summary("  of which the tree (add_leaf)", tree_s))
    print(f"p95 proof / p95 SELECT = {pct(proof_s, 95) / pct(base_s, 95):.1f}x; "
          + (f"naive / proof = {pct(naive_s, 50) / pct(proof_s, 50):.0f}x" if naive_s else ""))
    print(f"{verdict(pct(proof_s, 95) < TARGET_MS)} proof p95 {pct(proof_s, 95):.2f} ms "
          f"< {TARGET_MS:.0f} ms")
    print(f"{verdict(max(json_b) < TARGET_BYTES)} proof size {max(json_b)} bytes JSON "
          f"< {TARGET_BYTES} bytes (with the row's text: {max(full_b)} bytes)")


def appends(sessions: Any, n: int) -> tuple[list[float], list[float]]:
    """``audit.append`` in its own write transaction, and the part spent in ``add_leaf``."""
    total: list[float] = []
    tree: list[float] = []
    real = transparency.add_leaf

    def timed(session: Any, index: int, leaf: bytes) -> None:
        t0 = time.perf_counter()
        real(session, index, leaf)
        tree.append(time.perf_counter() - t0)

    transparency.add_leaf = timed  # type: ignore[assignment]
    try:
        for i in range(n):
            t0 = time.perf_counter()
            with sessions() as s:
                write_lock(s)
                audit.append(s, event_key=f"bench-append-{i}", actor="system:bench",
                             action="quote.viewed", entity=f"quote:{i}", data={"n": i})
                s.commit()
            total.append(time.perf_counter() - t0)
    finally:
        transparency.add_leaf = real  # type: ignore[assignment]
    return total, tree


if __name__ == "__main__":
    main()
