"""One audit vocabulary: a structured actor (``store.who.Who``) and entities named ``kind:id``.

Unit tests of the actor's forms and of reading old spellings; then a store migrated from
0005 with rows written the old way (free-text actors, ``quote-12`` entities) and rows written
after 0007: one chain that verifies (``store.audit.verify`` and ``dealdesk audit verify``),
filters that find old and new rows alike, and tampering with a new row's structured actor,
or an old row's label, caught and named. The audit page and API over the live app: one way
of showing who, either spelling of an entity, an actor filter, a hundred rows a page.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from store import audit
from store.db import make_engine, make_session_factory, write_lock
from store.migrate import upgrade
from store.models import AuditEvent
from store.who import Who, is_system_label
from tests.support import make_user
from tests.web_support import browser_session, token_client
from web.services import audit_log


def test_the_forms_of_an_actor() -> None:
    ann = Who.recipient("Ann Buyer", "ann@globex.test")
    assert (ann.label, ann.display) == ("Ann Buyer <ann@globex.test>",
                                        "Ann Buyer · ann@globex.test (signer)")
    job = Who.system("worker:seal_envelope")
    assert (job.label, job.display) == ("system:worker:seal_envelope",
                                        "System · worker:seal_envelope")
    assert is_system_label(job.label) and is_system_label("system")
    assert not is_system_label(ann.label)


@pytest.mark.parametrize(("label", "parsed"), [
    ("manager@demo.test", Who("user", email="manager@demo.test")),
    ("Ann <ann@x.test>", Who("user", email="ann@x.test", name="Ann")),
    ("Morgan Miller (user 3)", Who("user", 3, name="Morgan Miller")),
    ("system", Who("system")),
    ("envelope-4", Who.system("envelope-4")),
    ("worker:record_outcome", Who.system("worker:record_outcome")),
])
def test_old_labels_are_read_as_well_as_they_can_be(label: str, parsed: Who) -> None:
    assert Who.parse(label) == parsed


@pytest.mark.parametrize(("given", "spellings"), [
    ("quote:12", ("quote:12", "quote-12")),
    ("quote-12", ("quote:12", "quote-12")),
    ("user-3", ("user:3", "user-3")),
    ("envelope:7", ("envelope:7", "envelope-7")),
    ("quote-template-4", ("quote-template:4", "quote-template-4")),
    ("policy-standard-deals", ("policy:standard-deals", "policy-standard-deals")),
    ("invoice:INV-2026-000001", ("invoice:INV-2026-000001", "invoice-INV-2026-000001")),
    ("whatever", ("whatever",)),
])
def test_either_spelling_of_an_entity(given: str, spellings: tuple[str, ...]) -> None:
    assert audit.entity_spellings(given) == spellings


OLD_ROWS = [  # event_key, actor, action, entity: as versions before 0007 wrote them
    ("quote-12-created", "rep@x.test", "quote.created", "quote-12"),
    ("quote-12-v1#1", "Morgan Miller (user 2)", "task.approved", "quote-12"),
    ("quote-template-reset-x", "admin@x.test", "quote_template.reset", "quote-template"),
    ("envelope-4:sealed", "system", "envelope.sealed", "envelope:4"),
]


def _write_old_rows(url: str) -> None:
    """Rows hashed exactly as the code before the structured actor hashed them."""
    engine = make_engine(url)
    prev = audit.GENESIS
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    with engine.begin() as conn:
        for key, actor, action, entity in OLD_ROWS:
            content = {"event_key": key, "at": at.isoformat(timespec="microseconds"),
                       "actor": actor, "action": action, "entity": entity, "data": {"n": 1}}
            digest = audit.row_hash(prev, content)
            conn.execute(text(
                "INSERT INTO audit_events (event_key, at, actor, action, entity, data, "
                "prev_hash, row_hash) VALUES (:k, :at, :actor, :action, :entity, :data, "
                ":prev, :hash)"), {"k": key, "at": at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                                   "actor": actor, "action": action, "entity": entity,
                                   "data": '{"n": 1}', "prev": prev, "hash": digest})
            prev = digest
        conn.execute(text("INSERT INTO audit_head (id, last_hash) VALUES (1, :h)"),
                     {"h": prev})
    engine.dispose()


def _cli_verify(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEALDESK_DATABASE_URL": url, "DEALDESK_ENVIRONMENT": "test",
           "DEALDESK_VAR_DIR": str(cwd / "var"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "dealdesk", "audit", "verify"], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_old_and_new_rows_verify_together_and_tampering_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url, "0005")
    _write_old_rows(url)
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as s:
        write_lock(s)
        rep = make_user(s, "Rae Rep", "rep", email="rep@x.test")
        audit.append(s, event_key="quote-12-edit", actor=Who.user(rep), action="quote.edited",
                     entity=audit.entity("quote", 12), data={"version": 2})
        audit.append(s, event_key="quote-template-4", actor="admin@x.test",  # a plain string
                     action="quote_template.uploaded", entity=audit.entity("quote-template", 4),
                     data={})
        audit.append(s, event_key="envelope-4:x", actor=Who.recipient("Ann", "ann@x.test"),
                     action="envelope.viewed", entity=audit.entity("envelope", 4), data={})
        audit.append(s, event_key="by-email", actor="rep@x.test", action="quote.exported",
                     entity="quote:12", data={})
        s.commit()
        assert audit.verify(s) == audit.VerifyResult(True, 8)
        by_key = {e.event_key: e for e in s.scalars(select(AuditEvent))}
        # A plain email names that user when there is one; otherwise it stays an email.
        assert audit.who_of(by_key["by-email"]) == Who.user(rep)
        assert audit.who_of(by_key["quote-template-4"]) == Who("user", email="admin@x.test")
        assert audit.who_of(by_key["quote-12-created"]) is None  # an old row

        def keys(**filters: str) -> list[str]:
            return sorted(e.event_key for e in audit_log.events(s, **filters))

        both = ["by-email", "quote-12-created", "quote-12-edit", "quote-12-v1#1"]
        assert keys(entity="quote:12") == keys(entity="quote-12") == both
        assert keys(entity="quote-template") == ["quote-template-4", "quote-template-reset-x"]
        assert keys(actor="rep@x.test") == ["by-email", "quote-12-created", "quote-12-edit"]
        assert keys(actor="worker") == []
        page = audit_log.page(s, entity="quote-12")
        assert [r.id for r in page.rows] == sorted((r.id for r in page.rows), reverse=True)
        assert {r.who for r in page.rows} == {"Rae Rep · rep@x.test", "rep@x.test",
                                              "Morgan Miller (user 2)"}
    ok = _cli_verify(url, tmp_path)
    assert ok.returncode == 0 and "audit chain intact: 8 rows verified" in ok.stdout, ok.stderr

    forgeries = {  # a new row's structured actor, field by field; an old row's label
        "quote-12-edit": [("actor_kind", "'recipient'"), ("actor_user_id", "actor_user_id + 1"),
                          ("actor_email", "'mallory@x.test'"), ("actor_name", "'Mallory'"),
                          ("actor_kind", "NULL")],
        "envelope-4:x": [("actor_process", "'worker:x'"), ("actor_user_id", "7")],
        "quote-12-v1#1": [("actor", "'Someone Else (user 9)'")],
    }
    for key, changes in forgeries.items():
        with sessions() as s:
            row = s.scalar(select(AuditEvent).where(AuditEvent.event_key == key))
            assert row is not None
            row_id = row.id
        for column, value in changes:
            with engine.begin() as conn:
                original = conn.execute(text(f"SELECT {column} FROM audit_events WHERE id = :i"),
                                        {"i": row_id}).scalar()
                conn.execute(text(f"UPDATE audit_events SET {column} = {value} WHERE id = :i"),
                             {"i": row_id})
            with sessions() as s:
                result = audit.verify(s)
            assert (result.ok, result.bad_row_id) == (False, row_id), (key, column)
            broken = _cli_verify(url, tmp_path) if column == "actor_email" else None
            assert broken is None or (broken.returncode == 1 and
                                      f"BROKEN at row {row_id}" in broken.stdout + broken.stderr)
            with engine.begin() as conn:
                conn.execute(text(f"UPDATE audit_events SET {column} = :v WHERE id = :i"),
                             {"v": original, "i": row_id})
    with sessions() as s:
        assert audit.verify(s).ok
    engine.dispose()


async def test_the_audit_page_and_api_read_either_spelling_a_page_at_a_time(
        live_url: str, sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        write_lock(s)
        auditor = make_user(s, "Aud Itor", "auditor")
        desk = make_user(s, "Dee Desk", "deal_desk")
        for n in range(150):  # quote 7: old spelling first, then new; and a system process
            audit.append(s, event_key=f"e{n}", actor=Who.user(desk) if n % 3 else
                         Who.system("worker:seal_envelope"), action="quote.touched",
                         entity="quote-7" if n < 50 else audit.entity("quote", 7),
                         data={"n": n})
        s.commit()
        s.expunge_all()
    browser, _ = await browser_session(live_url, auditor)
    first = (await browser.get("/audit")).text
    assert first.count('<tr><td>') == 100 and "Older events →" in first
    assert "Dee Desk · " + desk.email in first and "System · worker:seal_envelope" in first
    older = re.search(r'href="(/audit\?before=\d+)">Older', first)
    assert older
    rest = (await browser.get(older.group(1))).text
    assert "← Newer events" in rest and "Older events" not in rest
    newer = re.search(r'href="(/audit\?after=\d+)">← Newer', rest)
    assert newer
    assert (await browser.get(newer.group(1))).text.count('<tr><td>') == 100
    pages = await asyncio.gather(*(browser.get("/audit", params={"entity": spelling,
                                                                 "before": str(before)})
                                   for spelling in ("quote-7", "quote:7")
                                   for before in (60, 120, 151, 200, 999)))
    counts = [p.text.count('<tr><td>') for p in pages]
    assert all(p.status_code == 200 for p in pages)
    assert counts[:5] == counts[5:] == [59, 100, 100, 100, 100]
    mine = (await browser.get("/audit", params={"actor": "worker:seal"})).text
    assert mine.count('<tr><td>') == 50
    await browser.aclose()

    api = await token_client(live_url, auditor)
    old = (await api.get("/api/v1/audit", params={"entity": "quote-7", "limit": 1000})).json()
    new = (await api.get("/api/v1/audit", params={"entity": "quote:7", "limit": 1000})).json()
    assert old == new and len(old) == 150
    assert old[60]["who"] == {"kind": "system", "user_id": None, "email": "", "name": "",
                              "process": "worker:seal_envelope"}
    assert old[61]["who"]["user_id"] == desk.id and old[61]["actor"] == \
        f"Dee Desk <{desk.email}>"
    await api.aclose()
