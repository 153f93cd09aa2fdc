"""The hash-chained audit log (store/audit.py) after a real approval chain has written to it.

A finished chain verifies; its rows name their actors structurally (the person who acted,
with id and email, or the chain itself as a process) and their entities as ``kind:id``;
changing any content column of any row with plain SQL, the structured actor's included,
makes ``verify`` name that row; a forger who also rehashes the row is caught at the next row
(or at the chain head); deleting a row is caught; an ``event_key`` is written once however
often it is appended; and ``dealdesk audit verify`` exits 0, then 1 naming the bad row.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from dealdesk.settings import Settings
from store import audit
from store.db import write_lock
from store.models import AuditEvent, AuditHead, User
from store.who import Who
from tests.chain_fixtures import TWO_STEP_POLICY, Deal, outbox
from tests.support import eventually, load_policy, make_user

DEALDESK = Path(sys.executable).parent / "dealdesk"
# A new value for each content column, as SQL, that differs from whatever is stored.
FORGERIES = {
    "actor": "actor || ' (forged)'",
    "action": "action || '.forged'",
    "entity": "entity || '0'",
    "at": "'2001-02-03 04:05:06.000000'",
    "data": """'{"forged": true}'""",
    "actor_kind": "CASE WHEN actor_kind = 'user' THEN 'system' ELSE 'user' END",
    "actor_user_id": "COALESCE(actor_user_id, 0) + 1000",
    "actor_email": "COALESCE(actor_email, '') || 'x'",
    "actor_name": "COALESCE(actor_name, '') || 'x'",
    "actor_process": "COALESCE(actor_process, '') || 'x'",
}


@dataclass
class Team:
    rep: User
    mgr: User
    desk: User


@pytest.fixture
def team(sessions: sessionmaker[Session]) -> Team:
    with sessions.begin() as s:
        t = Team(make_user(s, "Rita Rep", "rep"), make_user(s, "Mo Manager", "sales_manager"),
                 make_user(s, "Dee Desk", "deal_desk"))
        load_policy(s, TWO_STEP_POLICY)
        s.expunge_all()
    return t


@pytest.fixture
async def row_ids(team: Team, sessions: sessionmaker[Session], client: Client, settings: Settings,
                  worker: str) -> list[int]:
    """Run one chain to approval with a comment; return the audit rows' ids."""
    rep, mgr, desk = team.rep, team.mgr, team.desk
    d = Deal(sessions, client, settings, rep, net_amount=7_500_000)
    await d.submit()
    [m] = await d.tasks("manager")
    await d.act(m, mgr, comment="Ünïcode ✓ and \"quotes\"")
    [dd] = await d.tasks("desk")
    await d.act(dd, desk)
    await d.status("approved")
    await eventually(lambda: outbox(sessions, ":outcome:"))  # the chain writes nothing after
    await eventually(lambda: _moved_on(sessions))  # nor does the deal's process after this

    with sessions() as s:
        return list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))


def _moved_on(sessions: sessionmaker[Session]) -> bool | None:
    """Whether the deal's process has moved the approved deal on to its proposal stage."""
    with sessions() as s:
        return any(e.data.get("to") == "proposal" for e in s.scalars(
            select(AuditEvent).where(AuditEvent.action == "deal.stage_changed"))) or None


def verify(sessions: sessionmaker[Session]) -> audit.VerifyResult:
    with sessions() as s:
        return audit.verify(s)


def sql(sessions: sessionmaker[Session], statement: str, **params: object) -> None:
    with sessions() as s:
        write_lock(s)
        s.execute(text(statement), params)
        s.commit()


def raw(sessions: sessionmaker[Session], column: str, row_id: int) -> object:
    with sessions() as s:
        return s.execute(text(f"SELECT {column} FROM audit_events WHERE id = :id"),
                         {"id": row_id}).scalar_one()


def test_a_finished_chain_verifies(sessions: sessionmaker[Session], row_ids: list[int]) -> None:
    result = verify(sessions)
    assert result == audit.VerifyResult(True, len(row_ids))
    with sessions() as s:
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
        last = s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        assert s.get(AuditHead, 1).last_hash == last.row_hash
    for action in ("policy.saved", "quote.created", "quote.submitted", "chain.started",
                   "step.opened", "task.approved", "chain.approved"):
        assert action in actions


def test_rows_name_who_acted_and_what_it_is_about(sessions: sessionmaker[Session],
                                                  row_ids: list[int], team: Team) -> None:
    with sessions() as s:
        rows = s.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        by_action = {r.action: r for r in rows}
    rep, mgr = (Who("user", u.id, u.email, u.name) for u in (team.rep, team.mgr))
    # A person in the web tier, a person through the workflow (the chain knows id and name;
    # the projection adds the email), and the chain acting on its own.
    assert audit.who_of(by_action["quote.created"]) == rep
    assert audit.who_of(by_action["quote.submitted"]) == rep
    assert audit.who_of(by_action["chain.started"]) == rep
    desk = Who("user", team.desk.id, team.desk.email, team.desk.name)
    approvals = [r for r in rows if r.action == "task.approved"]
    assert [audit.who_of(r) for r in approvals] == [mgr, desk]
    assert [r.actor for r in approvals] == [f"Mo Manager <{mgr.email}>",
                                            f"Dee Desk <{desk.email}>"]
    for action in ("step.opened", "chain.approved"):
        assert audit.who_of(by_action[action]) == Who.system("workflow:approval_chain")
        assert by_action[action].actor == "system:workflow:approval_chain"
    assert audit.who_of(by_action["policy.saved"]) == Who.system("cli:policies")
    quote_id = by_action["quote.created"].entity.split(":")[1]
    # A new quote opens its deal, whose process moves its stage as the chain starts and
    # ends (rows on the deal, by the deal's process); everything else is about the quote.
    deal_rows = [r for r in rows if r.action.startswith("deal.")]
    assert deal_rows[0].action == "deal.created" and len(deal_rows) >= 2
    assert {r.action for r in deal_rows[1:]} == {"deal.stage_changed"}
    assert {r.entity.split(":")[0] for r in deal_rows} == {"deal"}
    assert audit.who_of(deal_rows[1]) == Who.system("deal")
    assert {r.entity for r in rows if r.action != "policy.saved"
            and not r.action.startswith("deal.")} == {f"quote:{quote_id}"}
    assert by_action["policy.saved"].entity == "policy:two-step"


def test_unsetting_the_structured_actor_is_caught(sessions: sessionmaker[Session],
                                                  row_ids: list[int]) -> None:
    """Without a kind a row hashes as an old one would: its stored hash no longer fits."""
    sql(sessions, "UPDATE audit_events SET actor_kind = NULL WHERE id = :id", id=row_ids[2])
    result = verify(sessions)
    assert (result.ok, result.bad_row_id) == (False, row_ids[2])


def test_editing_any_column_of_any_row_names_that_row(sessions: sessionmaker[Session],
                                                      row_ids: list[int]) -> None:
    for row_id in row_ids:
        for column, forged in FORGERIES.items():
            original = raw(sessions, column, row_id)
            sql(sessions, f"UPDATE audit_events SET {column} = {forged} WHERE id = :id",
                id=row_id)
            assert raw(sessions, column, row_id) != original
            result = verify(sessions)
            assert (result.ok, result.bad_row_id) == (False, row_id), (column, result)
            assert result.problem == "its content does not match its hash"
            sql(sessions, f"UPDATE audit_events SET {column} = :v WHERE id = :id",
                v=original, id=row_id)
    assert verify(sessions).ok  # every original restored byte for byte


def _rehash(sessions: sessionmaker[Session], row_id: int, actor: str) -> None:
    """Forge a row properly: change it and recompute its own hash from its prev_hash."""
    with sessions() as s:
        write_lock(s)
        ev = s.get(AuditEvent, row_id)
        assert ev is not None
        ev.actor = actor
        ev.row_hash = audit.row_hash(ev.prev_hash, audit.content_of(ev))
        s.commit()


def test_a_rehashed_forgery_is_caught_by_the_next_link(sessions: sessionmaker[Session],
                                                       row_ids: list[int]) -> None:
    middle = row_ids[len(row_ids) // 2]
    _rehash(sessions, middle, "someone else")
    result = verify(sessions)
    assert (result.ok, result.bad_row_id) == (False, row_ids[row_ids.index(middle) + 1])
    assert "prev_hash" in result.problem


def test_a_rehashed_last_row_is_caught_by_the_head(sessions: sessionmaker[Session],
                                                   row_ids: list[int]) -> None:
    _rehash(sessions, row_ids[-1], "someone else")
    result = verify(sessions)
    assert (result.ok, result.bad_row_id) == (False, None)
    assert "head" in result.problem


def test_deleting_rows_is_detected(sessions: sessionmaker[Session], row_ids: list[int]) -> None:
    middle = row_ids[len(row_ids) // 2]
    sql(sessions, "DELETE FROM audit_events WHERE id = :id", id=middle)
    result = verify(sessions)
    assert (result.ok, result.bad_row_id) == (False, row_ids[row_ids.index(middle) + 1])
    assert result.problem == "its prev_hash does not match the row before"


def test_deleting_the_last_row_is_detected(sessions: sessionmaker[Session],
                                           row_ids: list[int]) -> None:
    sql(sessions, "DELETE FROM audit_events WHERE id = :id", id=row_ids[-1])
    result = verify(sessions)
    assert (result.ok, result.bad_row_id) == (False, None)
    assert result.problem == "the chain head does not match the last row"


def test_appending_the_same_event_key_twice_writes_one_row(
        sessions: sessionmaker[Session], row_ids: list[int]) -> None:
    def append(actor: str) -> AuditEvent | None:
        with sessions() as s:
            write_lock(s)
            ev = audit.append(s, event_key="export-42", actor=actor, action="quote.exported",
                              entity="quote:1", data={"format": "pdf"})
            s.commit()
            return ev

    first = append("alice@test.example")
    assert first is not None and first.id > row_ids[-1]
    assert append("mallory@test.example") is None
    with sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.event_key == "export-42")).all()
        assert [r.actor for r in rows] == ["alice@test.example"]  # nobody by that email
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == len(row_ids) + 1
    assert verify(sessions).ok


def run_cli(database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if not DEALDESK.exists():
        pytest.fail(f"{DEALDESK} is missing: run .venv/bin/pip install -e . --no-deps")
    env = {**os.environ, "DEALDESK_DATABASE_URL": database_url, "COLUMNS": "200",
           "DEALDESK_ENVIRONMENT": "test", "DEALDESK_VAR_DIR": str(cwd / "var")}
    return subprocess.run([str(DEALDESK), "audit", "verify"], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_audit_verify(sessions: sessionmaker[Session], row_ids: list[int],
                          database_url: str, tmp_path: Path) -> None:
    ok = run_cli(database_url, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert f"audit chain intact: {len(row_ids)} rows verified" in ok.stdout

    bad_id = row_ids[3]
    sql(sessions, "UPDATE audit_events SET data = '{}' WHERE id = :id", id=bad_id)
    broken = run_cli(database_url, tmp_path)
    assert broken.returncode == 1
    assert f"audit chain BROKEN at row {bad_id}: its content does not match its hash" in (
        broken.stdout + broken.stderr)
