"""The ``dealdesk`` command against a real store: migrate, users create (audited), policies
load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.models import AuditEvent, Policy, User

POLICY = """
name: cli
steps:
  - {key: manager, name: Sales manager, approvers: [{role: sales_manager}]}
rules:
  - {id: discount, when: [{fact: discount_pct, op: gt, value: 10}], add: [manager]}
"""


def dealdesk(database_url: str, *args: str, password: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEALDESK_DATABASE_URL": database_url,
           "DEALDESK_NEW_PASSWORD": password}
    return subprocess.run([sys.executable, "-m", "dealdesk", *args], env=env, text=True,
                          capture_output=True, timeout=60, check=False)


def test_users_and_policies(database_url: str, sessions: sessionmaker[Session],
                            tmp_path: Path) -> None:
    assert dealdesk(database_url, "migrate").returncode == 0
    ok = dealdesk(database_url, "users", "create", "boss@x.test", "--name", "Bo Ss",
                  "--role", "cfo", password="s3cret-pass")
    assert ok.returncode == 0, ok.stderr
    ok = dealdesk(database_url, "users", "create", "mo@x.test", "--name", "Mo", "--role",
                  "sales_manager", "--role", "finance", "--manager", "boss@x.test",
                  password="s3cret-pass")
    assert ok.returncode == 0, ok.stderr
    dup = dealdesk(database_url, "users", "create", "MO@x.test", "--name", "Mo", "--role",
                   "rep", password="s3cret-pass")
    assert dup.returncode == 2 and "exists already" in dup.stderr
    bad = dealdesk(database_url, "users", "create", "z@x.test", "--name", "Z", "--role",
                   "janitor", password="s3cret-pass")
    assert bad.returncode == 2 and "unknown role" in bad.stderr
    with sessions() as s:
        mo = s.scalar(select(User).where(User.email == "mo@x.test"))
        assert mo is not None and mo.roles == {"sales_manager", "finance"}
        assert mo.manager is not None and mo.manager.email == "boss@x.test"
        assert s.scalar(select(User).where(User.email == "z@x.test")) is None
        # One audit row per user made, by the CLI as a process.
        created = s.scalars(select(AuditEvent).where(AuditEvent.action == "user.created")
                            .order_by(AuditEvent.id)).all()
        assert [(e.entity, e.actor, e.actor_kind, e.data["email"]) for e in created] == [
            (f"user:{mo.manager.id}", "system:cli:users", "system", "boss@x.test"),
            (f"user:{mo.id}", "system:cli:users", "system", "mo@x.test")]

    good, broken = tmp_path / "p.yaml", tmp_path / "bad.yaml"
    good.write_text(POLICY)
    broken.write_text(POLICY.replace("sales_manager", "janitor"))
    for expected_version in (1, 2):
        r = dealdesk(database_url, "policies", "load", str(good))
        assert r.returncode == 0 and f"version {expected_version}" in r.stdout, r.stderr
    r = dealdesk(database_url, "policies", "load", str(broken))
    assert r.returncode == 2 and "unknown role 'janitor'" in r.stderr
    with sessions() as s:
        assert [p.version for p in s.scalars(select(Policy).order_by(Policy.id))] == [1, 2]
