"""Settings from environment variables (prefix ``DEALDESK_``), read once per process.

No module-level singleton: callers ask :func:`get_settings` (cached) or build a
:class:`Settings` themselves in tests.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # the PKCS#11 stack is heavy: imported only when an HSM is configured
    from documents.hsm import HsmConfig


DEV_SECRET = "dev-only-secret-change-me"  # noqa: S105 - refused outside development
DEV_PKI_PASSPHRASE = "dev-only-pki-passphrase"  # noqa: S105 - refused in production


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEALDESK_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    secret_key: str = DEV_SECRET
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
        if self.environment == "production" and (
            self.secret_key == DEV_SECRET or len(self.secret_key) < 32
        ):
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
