"""The audit log as a transparency log (store/transparency.py, web/services/transparency.py).

Rows appended through ``audit.append`` become leaves with their subtrees stored; every
inclusion and consistency proof of a 70-row log, at every size, equals the one recomputed
naively from the rows and verifies; a forger who rewrites a row *and* its chain is caught by
the tree, naming the row; one who rebuilds the tree too is caught by the signed tree heads
(the head is named, and the consistency proof from it fails); a changed node is named; two
heads issued on different days are consistent; rows written before migration 0019 get their
leaves; threads appending at once leave no gap; the CLI proves, checks and signs. The key
flow runs on PostgreSQL too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import sqlalchemy as sa
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.housekeeping import Housekeeping
from dealdesk.parts import tree_head_signer
from dealdesk.settings import Settings
from documents.detached_cms import validate_detached
from documents.pki import Pki
from documents.timestamps import internal_timestamper
from store import audit, merkle, transparency
from store.db import make_engine, make_session_factory, write_lock
from store.migrate import upgrade
from store.models import AuditEvent, AuditHead, MerkleNode, TreeHead
from tests.pg import PostgresServer
from web.services import transparency as heads

DEALDESK = Path(sys.executable).parent / "dealdesk"
DAY1 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
DAY2 = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def pki(pki_template: Path, tmp_path: Path) -> Pki:
    shutil.copytree(pki_template, tmp_path / "var" / "pki")
    s = Settings(environment="test", var_dir=tmp_path / "var")
    return Pki(s.pki_dir, s.pki_passphrase, org_name=s.org_name, base_url=s.base_url)


def append(store: sessionmaker[Session], n: int, start: int = 0) -> None:
    with store() as s:
        write_lock(s)
        for i in range(start, start + n):
            audit.append(s, event_key=f"t-{i}", actor="system:test", action="thing.done",
                         entity=audit.entity("quote", i), data={"i": i, "note": "ünï ✓"})
        s.commit()


def rows(s: Session) -> list[AuditEvent]:
    return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def rehash_chain(s: Session) -> None:
    """What a forger with database access does after changing a row: every hash recomputed,
    so the chain verifies again."""
    prev = audit.GENESIS
    for ev in rows(s):
        ev.prev_hash = prev
        ev.row_hash = prev = audit.row_hash(prev, audit.content_of(ev))
    head = s.get(AuditHead, 1)
    assert head is not None
    head.last_hash = prev


def rebuild_tree(s: Session) -> None:
    """…and then the tree, from the rewritten rows."""
    s.execute(delete(MerkleNode))
    s.execute(update(AuditEvent).values(leaf_index=None))
    s.execute(update(AuditHead).values(tree_size=0))
    s.expire_all()
    transparency.backfill(s)


def forge(store: sessionmaker[Session], row_id: int, *, tree: bool) -> None:
    with store() as s:
        write_lock(s)
        s.execute(text("UPDATE audit_events SET action = 'thing.forged' WHERE id = :id"),
                  {"id": row_id})
        s.expire_all()
        rehash_chain(s)
        if tree:
            rebuild_tree(s)
        s.commit()


# --- proofs against a naive recompute ------------------------------------------------------

def test_every_proof_of_a_70_row_log(store: sessionmaker[Session]) -> None:
    append(store, 70)
    with store() as s:
        evs = rows(s)
        leaves = [merkle.leaf_hash(transparency.leaf_bytes(ev)) for ev in evs]
        assert [ev.leaf_index for ev in evs] == list(range(70))
        assert transparency.verify_tree(s).ok
        for size in range(1, 71):
            root = merkle.tree_hash(leaves[:size])
            assert transparency.root_at(s, size) == root
            for ev in evs[:size]:
                proof = transparency.inclusion_proof(s, ev.id, size)
                naive = merkle.inclusion_path(ev.leaf_index or 0, size, lambda lo, hi:
                                              merkle.tree_hash(leaves[lo:hi]))
                assert proof.path == naive and proof.root_hash == root
                assert merkle.verify_inclusion(proof.leaf_index, size,
                                               merkle.leaf_hash(proof.leaf), proof.path, root)
            # Many rows' proofs read at once (the evidence bundle's way) are the same proofs.
            assert transparency.inclusion_proofs(s, evs[:size], size) == [
                transparency.inclusion_proof(s, ev.id, size) for ev in evs[:size]]
            for old in range(size + 1):
                path = transparency.consistency_proof(s, old, size)
                assert merkle.verify_consistency(old, size, merkle.tree_hash(leaves[:old]),
                                                 root, path)


def test_many_proofs_are_read_in_chunks(store: sessionmaker[Session],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    append(store, 30)
    monkeypatch.setattr(transparency, "PROOFS_PER_READ", 7)
    with store() as s:
        evs = rows(s)
        assert transparency.inclusion_proofs(s, evs, 30) == [
            transparency.inclusion_proof(s, ev.id, 30) for ev in evs]
        with pytest.raises(transparency.TreeError, match="not in a tree of 20 leaves"):
            transparency.inclusion_proofs(s, evs, 20)


def test_a_leaf_is_the_row_with_its_chain_link(store: sessionmaker[Session]) -> None:
    append(store, 3)
    with store() as s:
        ev = rows(s)[1]
        leaf = json.loads(transparency.leaf_bytes(ev))
        assert leaf == {"content": audit.content_of(ev), "prev_hash": ev.prev_hash,
                        "row_hash": ev.row_hash}
        assert audit.row_hash(leaf["prev_hash"], leaf["content"]) == leaf["row_hash"]
        with pytest.raises(transparency.TreeError, match="not in a tree of 1"):
            transparency.inclusion_proof(s, ev.id, 1)
        with pytest.raises(transparency.TreeError, match="has 3 leaves, not 4"):
            transparency.root_at(s, 4)


# --- tampering -----------------------------------------------------------------------------

def test_a_rewritten_row_and_chain_are_caught_by_the_tree(store: sessionmaker[Session]) -> None:
    append(store, 12)
    with store() as s:
        victim = rows(s)[5].id
    forge(store, victim, tree=False)
    with store() as s:
        assert audit.verify(s).ok  # the chain alone no longer tells
        check = transparency.verify_tree(s)
    assert not check.ok and check.bad_row_id == victim and check.bad_node == (0, 5)
    assert "its leaf hash (level 0, index 5) does not match the row" in check.problem


def test_deleted_and_reordered_rows_are_named(store: sessionmaker[Session]) -> None:
    append(store, 8)
    with store() as s:
        ids = [ev.id for ev in rows(s)]
        write_lock(s)
        s.execute(delete(AuditEvent).where(AuditEvent.id == ids[3]))
        s.commit()
        chain = audit.verify(s)
        assert not chain.ok and chain.bad_row_id == ids[4]
        rehash_chain(s)  # even with the chain rewritten, the tree names the next row
        s.commit()
        check = transparency.verify_tree(s)
        assert not check.ok and check.bad_row_id == ids[4]
        assert "it is leaf 4 but comes 3 in id order" in check.problem


def test_a_swapped_pair_of_rows_is_named(store: sessionmaker[Session]) -> None:
    append(store, 6)
    with store() as s:
        a, b = rows(s)[1].id, rows(s)[2].id
        write_lock(s)
        for frm, to in ((a, -1), (b, a), (-1, b)):
            s.execute(text("UPDATE audit_events SET id = :to WHERE id = :frm"),
                      {"frm": frm, "to": to})
        s.commit()
        s.expire_all()
        assert audit.verify(s).bad_row_id == a
        check = transparency.verify_tree(s)
        assert check.bad_row_id == a and "it is leaf 2 but comes 1" in check.problem


def test_a_changed_node_is_named(store: sessionmaker[Session]) -> None:
    append(store, 9)
    with store() as s:
        write_lock(s)
        s.execute(update(MerkleNode).where(MerkleNode.level == 2, MerkleNode.index == 1)
                  .values(hash=b"\x00" * 32))
        s.commit()
        check = transparency.verify_tree(s)
    assert not check.ok and check.bad_node == (2, 1)
    assert check.problem == "the node does not match its children"


# --- signed tree heads -----------------------------------------------------------------------

def key_flow(store: sessionmaker[Session], pki: Pki) -> None:
    """Two heads on different days are consistent and verify; a rewritten past (tree rebuilt
    and all) fails against the older head, which is named."""
    tsa = internal_timestamper(pki)
    append(store, 10)
    with store() as s:
        first = heads.issue_tree_head(s, pki, tsa, now=DAY1)
        assert first is not None and first.tree_size == 10
        assert heads.issue_tree_head(s, pki, tsa) is None  # the log has not grown
    append(store, 7, start=10)
    with store() as s:
        second = heads.issue_tree_head(s, pki, tsa, now=DAY2)
        assert second is not None and second.tree_size == 17
        result = heads.consistency_between(s, first.id, second.id)
        assert result["consistent"] and result["old"]["timestamp"].startswith("2026-11-02")
        check = heads.verify_log(s, pki.trust_roots())
        assert check.ok and check.rows == 17 and check.heads == 2, check
        proved = heads.prove_row(s, rows(s)[3].id, first.id)
        p = proved["proof"]
        assert p["tree_size"] == 10 and proved["head"]["root_hash"] == p["root_hash"]
        assert merkle.verify_inclusion(p["leaf_index"], 10, bytes.fromhex(p["leaf_hash"]),
                                       [bytes.fromhex(h) for h in p["audit_path"]],
                                       bytes.fromhex(first.root_hash))
        ev = rows(s)[3]  # as an export or evidence bundle carries it: JSON only
        row = json.loads(json.dumps({"id": ev.id, "content": audit.content_of(ev),
                                     "prev_hash": ev.prev_hash, "row_hash": ev.row_hash}))
        assert merkle.verify_row_inclusion(row, p, proved["head"])
        assert not merkle.verify_row_inclusion({**row, "row_hash": "0" * 64}, p, proved["head"])
        assert not merkle.verify_row_inclusion(row, p, heads.head_json(second))
        signed = json.loads(proved["head"]["signed"])
        assert (signed["tree_size"], signed["root_hash"]) == (10, first.root_hash)
        assert validate_detached(proved["head"]["signed"].encode(),
                                 bytes.fromhex(proved["head"]["signature"]),
                                 pki.trust_roots()).valid
        victim = rows(s)[2].id
    forge(store, victim, tree=True)
    with store() as s:
        assert transparency.verify_tree(s).ok  # rows, chain and tree agree with each other
        third = heads.issue_tree_head(s, pki, tsa, only_if_grown=False)
        assert third is not None
        assert not heads.consistency_between(s, first.id, third.id)["consistent"]
        check = heads.verify_log(s, pki.trust_roots())
    assert not check.ok and check.part == "head" and check.bad_head_id == first.id
    assert "its root is not the tree's at 10 leaves" in check.problem


def test_heads_are_consistent_and_a_forked_log_fails(store: sessionmaker[Session],
                                                    pki: Pki) -> None:
    key_flow(store, pki)


@pytest.mark.postgres
def test_key_flow_on_postgres(store: sessionmaker[Session], pki: Pki) -> None:
    with store() as s:
        assert s.get_bind().dialect.name == "postgresql"
    key_flow(store, pki)


def test_a_changed_head_fails_its_signature(store: sessionmaker[Session], pki: Pki) -> None:
    append(store, 5)
    with store() as s:
        head = heads.issue_tree_head(s, pki, internal_timestamper(pki), now=DAY1)
        assert head is not None
        signed = heads.check_head(s, head, pki.trust_roots())
        assert signed == ""
        head.issued_at = DAY2  # a head moved to another day
        assert heads.check_head(s, head, pki.trust_roots()) == (
            "the signature does not match the data")
        head.issued_at = DAY1
        body = transparency.head_bytes(head.tree_size, head.root_hash, head.issued_at)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 * 5)  # the seal has expired
        check = validate_detached(body, head.signature, pki.trust_roots(), moment=later)
        assert check.valid and check.timestamped_at is not None  # judged when it was stamped
        assert "Common Name: dealdesk Seal" in check.signer
        head.signature = head.signature[:-40] + bytes(40)
        assert heads.check_head(s, head, pki.trust_roots()) != ""
        s.rollback()
        ahead = heads.issue_tree_head(s, pki, internal_timestamper(pki), only_if_grown=False,
                                      now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        assert ahead is not None
        assert "after its timestamp" in heads.check_head(s, ahead, pki.trust_roots())


# --- migration and concurrency ---------------------------------------------------------------

OLD_ROWS = sa.table(  # audit_events as migration 0016 left it
    "audit_events", *(sa.column(c) for c in ("event_key", "actor", "action", "entity",
                                            "prev_hash", "row_hash")),
    sa.column("at", sa.DateTime(timezone=True)), sa.column("data", sa.JSON))


def migrate_old_rows(url: str) -> None:
    upgrade(url, "0016")
    engine = make_engine(url)
    prev = audit.GENESIS
    with engine.begin() as conn:
        for i in range(11):
            at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)
            content = audit._content(f"old-{i}", at, "system:old", "thing.done",
                                     f"quote-{i}", {"i": i})
            row = audit.row_hash(prev, content)
            conn.execute(sa.insert(OLD_ROWS).values(
                event_key=f"old-{i}", at=at, actor="system:old", action="thing.done",
                entity=f"quote-{i}", data={"i": i}, prev_hash=prev, row_hash=row))
            prev = row
        conn.execute(text("INSERT INTO audit_head (id, last_hash) VALUES (1, :h)"), {"h": prev})
    upgrade(url)
    store = make_session_factory(engine)
    append(store, 2)  # and new rows follow them
    with store() as s:
        evs = rows(s)
        assert [ev.leaf_index for ev in evs] == list(range(13))
        assert audit.verify(s).ok and transparency.verify_tree(s).ok
        leaves = [merkle.leaf_hash(transparency.leaf_bytes(ev)) for ev in evs]
        assert transparency.root_at(s, 13) == merkle.tree_hash(leaves)
    engine.dispose()


def test_rows_written_before_the_migration_get_leaves(tmp_path: Path) -> None:
    migrate_old_rows(f"sqlite:///{tmp_path / 'old.db'}")


@pytest.mark.postgres
def test_the_migration_on_postgres(postgres: PostgresServer) -> None:
    migrate_old_rows(postgres.create_database(f"t_{uuid.uuid4().hex[:12]}"))


def test_threads_appending_at_once_leave_no_gap(store: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(15):
                with store() as s:
                    write_lock(s)
                    audit.append(s, event_key=f"w{w}-{i}", actor="system:test",
                                 action="thing.done", entity=f"quote:{w}", data={"i": i})
                    s.commit()
        except BaseException as e:  # reported below, on the test's thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    with store() as s:
        assert [ev.leaf_index for ev in rows(s)] == list(range(60))
        assert audit.verify(s).ok and transparency.verify_tree(s).ok
        assert transparency.tree_size(s) == 60


def test_housekeeping_signs_a_head_hourly(store: sessionmaker[Session], pki: Pki,
                                          tmp_path: Path) -> None:
    append(store, 4)
    sign = tree_head_signer(Settings(environment="test", var_dir=tmp_path / "var"))
    chores = Housekeeping(cast(Client, None), store, "q", sign_head=sign)
    chores._sign_tree_head()
    append(store, 2, start=4)
    chores._sign_tree_head()  # within the hour: nothing
    with store() as s:
        assert [h.tree_size for h in s.scalars(select(TreeHead))] == [4]
        assert heads.verify_log(s, pki.trust_roots()).ok


# --- the command line ------------------------------------------------------------------------

def cli(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEALDESK_DATABASE_URL": database_url, "COLUMNS": "200",
           "DEALDESK_ENVIRONMENT": "test", "DEALDESK_VAR_DIR": str(cwd / "var")}
    return subprocess.run([str(DEALDESK), "audit", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_signs_proves_and_verifies(store: sessionmaker[Session], pki: Pki,
                                       database_url: str, tmp_path: Path) -> None:
    append(store, 6)
    signed = cli(database_url, tmp_path, "sign-head")
    assert signed.returncode == 0 and "tree head 1: 6 leaves" in signed.stdout, signed.stderr
    assert "has not grown" in cli(database_url, tmp_path, "sign-head").stdout
    append(store, 3, start=6)
    assert cli(database_url, tmp_path, "sign-head").returncode == 0
    with store() as s:
        row_id = rows(s)[4].id
    proved = cli(database_url, tmp_path, "prove", str(row_id), "--head", "1")
    assert proved.returncode == 0, proved.stderr
    out = json.loads(proved.stdout)
    assert out["head"]["id"] == 1 and out["proof"]["leaf_index"] == 4
    consistent = cli(database_url, tmp_path, "consistency", "1", "2")
    assert consistent.returncode == 0 and json.loads(consistent.stdout)["consistent"]
    ok = cli(database_url, tmp_path, "verify")
    assert ok.returncode == 0, ok.stderr
    assert "Merkle tree intact: 9 leaves; 2 signed tree heads valid" in ok.stdout
    with store() as s:
        write_lock(s)
        s.execute(update(TreeHead).where(TreeHead.id == 2).values(root_hash="00" * 32))
        s.commit()
    broken = cli(database_url, tmp_path, "verify")
    assert broken.returncode == 1
    assert "audit log BROKEN at tree head 2: its root is not the tree's" in broken.stderr
    missing = cli(database_url, tmp_path, "prove", "999")
    assert missing.returncode == 2 and "no audit row 999" in missing.stderr
