"""The secret key outside production comes from var/secret_key (made once, 0600, shared),
never from a constant; production still refuses to start without one. Demo users each get
their own salted hash."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dealdesk.demo import PASSWORD, USERS, seed_records
from dealdesk.settings import Settings, with_secret_key
from store.models import User
from web.services.passwords import hashing_core, password_matches


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(environment="development", var_dir=tmp_path / "var")
    assert settings.secret_key == ""
    first = with_secret_key(settings)
    path = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 32 and path.read_text().strip() == first.secret_key
    assert with_secret_key(settings).secret_key == first.secret_key  # a restart: the same
    other = with_secret_key(Settings(environment="development", var_dir=tmp_path / "other"))
    assert other.secret_key != first.secret_key  # another installation: its own
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    """Bounded concurrency: eight starts racing to make the file all read the same key."""
    settings = Settings(environment="development", var_dir=tmp_path / "var")
    keys: list[str] = []
    gate = threading.Barrier(8)

    def start() -> None:
        gate.wait()
        keys.append(with_secret_key(settings).secret_key)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(keys) == 8 and len(set(keys)) == 1
    assert [p.name for p in (tmp_path / "var").iterdir()] == ["secret_key"]


def test_a_configured_key_is_used_and_no_file_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALDESK_SECRET_KEY", "k" * 40)
    settings = with_secret_key(Settings(var_dir=tmp_path / "var"))
    assert settings.secret_key == "k" * 40
    assert not (tmp_path / "var" / "secret_key").exists()


def test_production_refuses_to_start_without_a_real_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALDESK_PKI_PASSPHRASE", "p" * 32)
    for key in ("", "too-short", "dev-only-secret-change-me"):
        monkeypatch.setenv("DEALDESK_SECRET_KEY", key)
        with pytest.raises(ValidationError, match="DEALDESK_SECRET_KEY must be set"):
            Settings(environment="production", var_dir=tmp_path)
    assert not (tmp_path / "secret_key").exists()


def test_a_damaged_key_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("\n")
    with pytest.raises(ValueError, match="holds no usable secret key: delete it"):
        with_secret_key(Settings(environment="development", var_dir=tmp_path))


def test_demo_users_each_get_their_own_salted_hash(sessions: sessionmaker[Session]) -> None:
    assert seed_records(sessions)
    with sessions() as s:
        hashes = {u.email: u.password_hash for u in s.scalars(select(User))}
    assert set(hashes) == {email for email, *_ in USERS}
    assert len(set(hashes.values())) == len(USERS)
    with hashing_core():
        assert all(password_matches(h, PASSWORD) for h in hashes.values())
    assert not seed_records(sessions)  # seeded already: nothing changes
