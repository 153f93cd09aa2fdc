"""Settings from environment variables (prefix ``DEALDESK_``), read once per process.

No module-level singleton: callers ask :func:`get_settings` (cached) or build a
:class:`Settings` themselves in tests.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # the PKCS#11 stack is heavy: imported only when an HSM is configured
    from documents.hsm import HsmConfig


DEV_PKI_PASSPHRASE = "dev-only-pki-passphrase"  # noqa: S105 - refused in production


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEALDESK_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # Signs session cookies and form tokens. Empty outside production: var/secret_key, made
    # on first use (see with_secret_key).
    secret_key: str = ""
    # Sign-in sessions end after this long without a request, and at the latest this many
    # days after the login.
    session_idle_minutes: int = 12 * 60
    session_max_days: int = 7
    var_dir: Path = Path("var")
    database_url: str = ""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    temporal_http_port: int = 7243
    temporal_metrics_port: int = 7244
    task_queue: str = "deals"
    # Distinguishes workflow ids when several installations share one Temporal namespace.
    workflow_prefix: str = ""

    web_host: str = "127.0.0.1"
    web_port: int = 8000
    base_url: str = ""

    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_from: str = "dealdesk@localhost"

    # Signing. The PKI (root CA, issuing CA, TSA, seal) is created under var/pki on first use.
    org_name: str = "dealdesk"
    pki_passphrase: str = DEV_PKI_PASSPHRASE
    tsa_url: str = ""  # an external RFC 3161 TSA; empty: the app's own (see documents/timestamps)
    max_upload_mb: int = 25
    # The organisation seal's key in a PKCS#11 token (HSM) instead of var/pki/seal.key;
    # provision it with `dealdesk pki seal-hsm`.
    seal_pkcs11_module: str = ""
    seal_pkcs11_token: str = ""
    seal_pkcs11_pin: str = ""
    seal_pkcs11_key_label: str = "dealdesk-seal"
    # The venv (Debian python3 + uno + unoserver) of the warm LibreOffice; empty: .venv-uno.
    uno_venv: Path | None = None
    # Webhooks: envelope events POSTed to each URL, signed with HMAC-SHA256 (webhook_secret).
    webhook_urls: list[str] = []
    webhook_secret: str = ""
    # Who else gets every completed envelope (e.g. legal@, finance@).
    distribution_emails: list[str] = []

    @model_validator(mode="after")
    def _defaults_and_secrets(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'dealdesk.db'}"
        if not self.base_url:
            self.base_url = f"http://{self.web_host}:{self.web_port}"
        if self.environment == "production" and len(self.secret_key) < 32:
            raise ValueError(
                "DEALDESK_SECRET_KEY must be set to a random string of 32+ characters in production"
            )
        if self.environment == "production" and self.pki_passphrase == DEV_PKI_PASSPHRASE:
            raise ValueError("DEALDESK_PKI_PASSPHRASE must be set in production")
        if self.webhook_urls and len(self.webhook_secret) < 16:
            raise ValueError("DEALDESK_WEBHOOK_SECRET (16+ characters) is required when "
                             "DEALDESK_WEBHOOK_URLS is set")
        return self

    @property
    def hsm(self) -> HsmConfig | None:
        if not self.seal_pkcs11_module:
            return None
        from documents.hsm import HsmConfig

        return HsmConfig(self.seal_pkcs11_module, self.seal_pkcs11_token,
                         self.seal_pkcs11_pin, self.seal_pkcs11_key_label)

    @property
    def pki_dir(self) -> Path:
        return self.var_dir / "pki"

    @property
    def blob_dir(self) -> Path:
        return self.var_dir / "blobs"

    @property
    def cookies_secure(self) -> bool:
        return self.base_url.startswith("https://")


@functools.cache
def get_settings() -> Settings:
    return Settings()


def with_secret_key(settings: Settings) -> Settings:
    """``settings`` with a secret key: its own, or (outside production, where the validator
    requires one) the random key kept in ``var/secret_key`` (mode 0600), made on first use.
    Every process on the same var directory reads the same key, so sessions survive a restart
    of ``dealdesk web`` and forms signed by one web process verify in another."""
    if settings.secret_key:
        return settings
    return settings.model_copy(update={"secret_key": _key_file(settings.var_dir / "secret_key")})


def _key_file(path: Path) -> str:
    if not path.exists():
        _make_key_file(path)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path} holds no usable secret key: delete it and a new one is made")
    return key


def _make_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under a temporary name, then linked into place: of two processes starting
    # at once, one link wins and the other reads the winner's key.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48) + "\n")
    try:
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink()
